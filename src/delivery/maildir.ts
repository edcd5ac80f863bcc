/*
 * Local delivery when no downstream is configured: every accepted message goes into one Maildir
 * at <stateDir>/maildir, for a trial run or a gateway that only collects mail.
 *
 * The message is stored as given (raw bytes, CRLF line endings), preceded by a Return-Path line
 * with the envelope sender. The file is written under tmp/, fsynced, renamed into new/, and the
 * new/ directory is fsynced; only then does deliver() resolve, so a 250 to the client means the
 * message survives a crash. Any error leaves no file behind in new/ and answers 451 4.3.0.
 *
 * Needs: a writable state directory. Recipients are not told apart: one copy for all of them.
 *
 * LIMITATION: no quota or free-space check; a full disk shows as 451 4.3.0 per message.
 */
import { mkdir, open, rename, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';

import type {
  Delivery,
  DeliveryEnvelope,
  DeliveryResult,
  MessageSource,
  RecipientResult,
} from './types';

let deliveryCounter = 0;

export class MaildirDelivery implements Delivery {
  readonly maildir: string;
  private readonly host: string;
  private prepared: Promise<void> | null = null;

  constructor(stateDir: string) {
    this.maildir = path.join(stateDir, 'maildir');
    // Maildir names may not contain '/' or ':'; encode them as the maildir convention does.
    this.host = hostname().replace(/\//g, '\\057').replace(/:/g, '\\072');
  }

  async deliver(
    envelope: DeliveryEnvelope,
    openMessage: MessageSource,
    sizeBytes: number,
  ): Promise<DeliveryResult> {
    const started = performance.now();
    const downstream = `maildir:${this.maildir}`;
    const result = (delivered: boolean, detail: string): DeliveryResult => {
      const answer = delivered
        ? { code: 250, enhanced: '2.0.0', text: 'Message stored' }
        : { code: 451, enhanced: '4.3.0', text: 'Temporary local problem, try again later' };
      const recipients = envelope.recipients.map((recipient): RecipientResult => ({
        recipient, ...answer, accepted: delivered,
      }));
      return {
        outcome: delivered ? 'delivered' : 'tempfail', ...answer, recipients, detail,
        durationMs: Math.round(performance.now() - started), tls: false, downstream,
      };
    };

    try {
      const name = await this.store(envelope.sender, openMessage);
      return result(true, `stored as new/${name} (${sizeBytes} bytes announced)`);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      return result(false, `maildir write failed: ${reason}`);
    }
  }

  async close(): Promise<void> {
    // Nothing stays open between deliveries.
  }

  private async store(sender: string, openMessage: MessageSource): Promise<string> {
    await this.prepare();
    const name = this.uniqueName();
    const tmpPath = path.join(this.maildir, 'tmp', name);
    const newPath = path.join(this.maildir, 'new', name);

    // Write and fsync the file under tmp/.
    const file = await open(tmpPath, 'wx', 0o600);
    try {
      const returnPath = sender.replace(/[\x00-\x1f\x7f<>]/g, '');
      await file.write(Buffer.from(`Return-Path: <${returnPath}>\r\n`));
      for await (const chunk of openMessage()) {
        await file.write(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk), 'latin1'));
      }
      await file.sync();
    } catch (error) {
      await file.close().catch(() => undefined);
      await unlink(tmpPath).catch(() => undefined);
      throw error;
    }
    await file.close();

    // Publish it in new/ and make the rename itself durable.
    await rename(tmpPath, newPath);
    const directory = await open(path.join(this.maildir, 'new'), 'r');
    try {
      await directory.sync();
    } finally {
      await directory.close();
    }
    return name;
  }

  private prepare(): Promise<void> {
    this.prepared ??= Promise.all(['tmp', 'new', 'cur'].map((sub) =>
      mkdir(path.join(this.maildir, sub), { recursive: true, mode: 0o700 }))).then(() => undefined);
    // A failed attempt (e.g. state directory missing at start) is retried next time.
    this.prepared.catch(() => {
      this.prepared = null;
    });
    return this.prepared;
  }

  private uniqueName(): string {
    const now = Date.now();
    const seconds = Math.floor(now / 1000);
    const micros = (now % 1000) * 1000 + Math.floor(Math.random() * 1000);
    deliveryCounter++;
    return `${seconds}.M${micros}P${process.pid}Q${deliveryCounter}.${this.host}`;
  }
}
