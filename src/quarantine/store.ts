/*
 * The quarantine: messages Moat answered 250 for but holds back from the internal server
 * until an administrator releases or deletes them.
 *
 * One folder (default `<state>/quarantine`), two files per message:
 *   <id>.eml   the message bytes as Moat received them (CRLF, not dot-stuffed), beginning
 *              with the Received line Moat's SMTP engine adds, exactly what a delivery would
 *              have carried before Moat's own X-headers
 *   <id>.json  the record: envelope, client, verdict and reasons, every check result, the
 *              headers Moat would have added, size, SHA-256, timestamps and any release
 *   tmp/       files being written; events.log: one JSON line per store, release, delete
 *              and purge, for the audit trail and the gateway's counters
 * A message exists once its .json is in place. store() writes and fsyncs both files under
 * tmp/, renames the .eml and then the .json into place and fsyncs the folder before it
 * resolves: the 250 the sender gets means the message survives a crash.
 *
 * Untrusted input: everything in a record came from the client; ids are checked against
 * ID_PATTERN before they are used in a path, so `moat quarantine show ../../etc` cannot escape.
 *
 * LIMITATION: no free-space check; a full disk fails store() and the sender gets 451 4.3.0.
 * LIMITATION: events.log grows without bound; rotate it with logrotate (copytruncate).
 */

import { randomBytes, createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import {
  appendFile, mkdir, open, readdir, readFile, rename, stat, unlink, writeFile,
} from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { CheckResult } from '../verdict/verdict';
import type { SmtpReply } from '../verdict/reasons';
import { QuarantineIoError, QuarantineNotFoundError, QuarantineIdError } from './errors';
import { summarizeHeaders } from './headers';

/** `20261203-194512-3f9a0c1b2d4e`: UTC date and time stored, then 48 random bits. */
export const ID_PATTERN = /^\d{8}-\d{6}-[0-9a-f]{12}$/;

/** Debris in tmp/ (a crash mid-write) and orphaned .eml files are removed after this. */
const DEBRIS_AGE_MS = 3_600_000;

export type QuarantineStatus = 'held' | 'released';

export interface ReleaseRecord {
  by: string;
  at: string;
  /** Recipients the released copy went to. */
  to: string[];
  /** The internal server's reply, e.g. `250 2.0.0 Ok`. */
  reply: string;
  /** Where it went: `host:port` or `maildir:<path>`. */
  downstream: string;
}

export interface QuarantineRecord {
  version: 1;
  id: string;
  status: QuarantineStatus;
  /** When the gateway stored it (ISO 8601, UTC); retention counts from here. */
  storedAt: string;
  /** When the client started the transaction. */
  receivedAt: string;
  /** The gateway node that stored it. */
  node: string;
  /** Moat's transaction id, as in the decision log. */
  messageId: string;
  envelope: { from: string; to: string[] };
  client: Record<string, unknown>;
  verdict: { action: string; reason: string; reply: SmtpReply; decidedBy: string | null };
  /** Every reason code a check gave, the deciding one first. */
  reasons: string[];
  results: CheckResult[];
  /** Headers Moat would have added to a delivered copy (not in the .eml). */
  addedHeaders: Array<[string, string]>;
  /** Header From and Subject, printable and cut, for listings. */
  headerFrom: string;
  subject: string;
  size: number;
  sha256: string;
  releases: ReleaseRecord[];
}

/** What the delivery step knows when it quarantines a message. */
export interface StoreInput {
  messageId: string;
  receivedAt: Date;
  envelope: { from: string; to: string[] };
  client: Record<string, unknown>;
  verdict: QuarantineRecord['verdict'];
  results: CheckResult[];
  addedHeaders: Array<[string, string]>;
}

export interface ListFilter {
  /** Only records whose reasons include this code. */
  reason?: string;
  /** Only records stored at least this long ago. */
  olderThanMs?: number;
  /** Default: held only. */
  status?: QuarantineStatus | 'any';
}

export interface QuarantineUsage {
  held: { count: number; bytes: number };
  released: { count: number; bytes: number };
}

export type QuarantineEvent = 'stored' | 'released' | 'deleted' | 'purged';

export interface StoreOptions {
  /** Node name written into records and events; default the host name. */
  node?: string;
  now?: () => Date;
}

export class QuarantineStore {
  private readonly node: string;
  private readonly now: () => Date;
  private prepared: Promise<void> | null = null;

  constructor(readonly dir: string, options: StoreOptions = {}) {
    this.node = options.node ?? hostname();
    this.now = options.now ?? (() => new Date());
  }

  /** Writes the message and its record durably; resolves only once both are on disk. */
  async store(input: StoreInput, openMessage: () => Readable): Promise<QuarantineRecord> {
    const storedAt = this.now();
    const id = newId(storedAt);
    const tmpEml = join(this.dir, 'tmp', `${id}.eml`);
    const tmpJson = join(this.dir, 'tmp', `${id}.json`);

    try {
      await this.prepare();

      // The bytes, hashed and measured on the way; the first 64 KiB give From and Subject.
      const written = await writeStream(tmpEml, openMessage());
      const record: QuarantineRecord = {
        version: 1, id, status: 'held',
        storedAt: storedAt.toISOString(), receivedAt: input.receivedAt.toISOString(),
        node: this.node, messageId: input.messageId,
        envelope: { from: input.envelope.from, to: [...input.envelope.to] },
        client: input.client,
        verdict: input.verdict,
        reasons: reasonsOf(input.verdict.reason, input.results),
        results: input.results,
        addedHeaders: input.addedHeaders,
        ...summarizeHeaders(written.head),
        size: written.size, sha256: written.sha256,
        releases: [],
      };
      await writeDurably(tmpJson, `${JSON.stringify(record, null, 2)}\n`);

      // Into place: the .json last, because its presence is what makes the message exist.
      await rename(tmpEml, this.emlPath(id));
      await rename(tmpJson, this.jsonPath(id));
      await syncFolder(this.dir);
      await this.event('stored', id, {});
      return record;
    } catch (error) {
      await Promise.all([tmpEml, tmpJson, this.emlPath(id)].map(removeQuietly));
      throw new QuarantineIoError('store', id, this.dir, { cause: error });
    }
  }

  /** Records, oldest first. */
  async list(filter: ListFilter = {}): Promise<QuarantineRecord[]> {
    const records: QuarantineRecord[] = [];
    const cutoff = filter.olderThanMs === undefined
      ? null : this.now().getTime() - filter.olderThanMs;
    for (const id of await this.ids()) {
      // One damaged record must not hide all the others; `show ID` reports it.
      const record = await this.read(id).catch(() => null);
      if (!record) continue;
      const status = filter.status ?? 'held';
      if (status !== 'any' && record.status !== status) continue;
      if (filter.reason && !record.reasons.includes(filter.reason)) continue;
      if (cutoff !== null && Date.parse(record.storedAt) > cutoff) continue;
      records.push(record);
    }
    return records;
  }

  async get(id: string): Promise<QuarantineRecord> {
    checkId(id);
    const record = await this.read(id);
    if (!record) throw new QuarantineNotFoundError(id, this.dir);
    return record;
  }

  /** The stored bytes, from the start; throws QuarantineNotFoundError for an unknown id. */
  async openMessage(id: string): Promise<Readable> {
    await this.get(id);
    return createReadStream(this.emlPath(id));
  }

  async readMessage(id: string): Promise<Buffer> {
    await this.get(id);
    return readFile(this.emlPath(id));
  }

  /**
   * Takes the per-message lock (a `<id>.lock` file created exclusively), so two
   * administrators releasing the same message cannot both deliver it. Returns the unlock.
   */
  async lock(id: string, purpose: string): Promise<() => Promise<void>> {
    await this.get(id);
    const path = join(this.dir, `${id}.lock`);
    try {
      await writeFile(path, `${JSON.stringify({ purpose, node: this.node, pid: process.pid,
        at: this.now().toISOString() })}\n`, { flag: 'wx' });
    } catch (error) {
      throw new QuarantineIoError('lock', id, this.dir, { cause: error });
    }
    return () => removeQuietly(path);
  }

  async recordRelease(id: string, release: ReleaseRecord): Promise<QuarantineRecord> {
    const record = await this.get(id);
    const updated: QuarantineRecord = {
      ...record, status: 'released', releases: [...record.releases, release],
    };
    const tmpJson = join(this.dir, 'tmp', `${id}.json`);
    try {
      await writeDurably(tmpJson, `${JSON.stringify(updated, null, 2)}\n`);
      await rename(tmpJson, this.jsonPath(id));
      await syncFolder(this.dir);
    } catch (error) {
      await removeQuietly(tmpJson);
      throw new QuarantineIoError('release', id, this.dir, { cause: error });
    }
    await this.event('released', id, { by: release.by, to: release.to, reply: release.reply });
    return updated;
  }

  /** Removes a message and its record; `by` is written to the events log. */
  async delete(id: string, by: string): Promise<QuarantineRecord> {
    const record = await this.get(id);
    await this.remove(id);
    await this.event('deleted', id, { by });
    return record;
  }

  /** Removes everything stored more than olderThanMs ago, held or released; returns them. */
  async purge(olderThanMs: number, by: string): Promise<QuarantineRecord[]> {
    const purged: QuarantineRecord[] = [];
    for (const record of await this.list({ olderThanMs, status: 'any' })) {
      if (!(await this.remove(record.id))) continue;
      await this.event('purged', record.id, { by, stored_at: record.storedAt });
      purged.push(record);
    }
    await this.removeDebris();
    return purged;
  }

  /** Count and bytes by status, from the records (one small read per message). */
  async usage(): Promise<QuarantineUsage> {
    const usage: QuarantineUsage = {
      held: { count: 0, bytes: 0 }, released: { count: 0, bytes: 0 },
    };
    for (const record of await this.list({ status: 'any' })) {
      usage[record.status].count += 1;
      usage[record.status].bytes += record.size;
    }
    return usage;
  }

  get eventsLog(): string {
    return join(this.dir, 'events.log');
  }

  private async prepare(): Promise<void> {
    this.prepared ??= (async () => {
      await mkdir(join(this.dir, 'tmp'), { recursive: true, mode: 0o750 });
    })();
    try {
      await this.prepared;
    } catch (error) {
      this.prepared = null;
      throw error;
    }
  }

  private async ids(): Promise<string[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (error) {
      if (isMissing(error)) return [];
      throw new QuarantineIoError('list', null, this.dir, { cause: error });
    }
    return names
      .filter((name) => name.endsWith('.json'))
      .map((name) => name.slice(0, -'.json'.length))
      .filter((id) => ID_PATTERN.test(id))
      .sort();
  }

  /** The record, or null when it is gone (purged or deleted meanwhile). */
  private async read(id: string): Promise<QuarantineRecord | null> {
    let text: string;
    try {
      text = await readFile(this.jsonPath(id), 'utf8');
    } catch (error) {
      if (isMissing(error)) return null;
      throw new QuarantineIoError('read', id, this.dir, { cause: error });
    }
    try {
      return JSON.parse(text) as QuarantineRecord;
    } catch (error) {
      throw new QuarantineIoError('read', id, this.dir, { cause: error });
    }
  }

  /** True when this call removed the record (another node or process may have raced us). */
  private async remove(id: string): Promise<boolean> {
    try {
      await unlink(this.jsonPath(id));
    } catch (error) {
      if (isMissing(error)) return false;
      throw new QuarantineIoError('delete', id, this.dir, { cause: error });
    }
    await removeQuietly(this.emlPath(id));
    await syncFolder(this.dir).catch(() => undefined);
    return true;
  }

  /** Half-written files from a crash, and .eml files whose record never arrived. */
  private async removeDebris(): Promise<void> {
    const cutoff = this.now().getTime() - DEBRIS_AGE_MS;
    const candidates: string[] = [];
    try {
      for (const name of await readdir(join(this.dir, 'tmp'))) {
        candidates.push(join(this.dir, 'tmp', name));
      }
      for (const name of await readdir(this.dir)) {
        const id = name.replace(/\.(eml|lock)$/, '');
        if (name === id || !ID_PATTERN.test(id)) continue;
        if ((await this.read(id)) === null || name.endsWith('.lock')) {
          candidates.push(join(this.dir, name));
        }
      }
    } catch (error) {
      if (isMissing(error)) return;
      throw error;
    }
    for (const path of candidates) {
      const info = await stat(path).catch(() => null);
      if (info && info.mtimeMs < cutoff) await removeQuietly(path);
    }
  }

  private async event(event: QuarantineEvent, id: string, fields: Record<string, unknown>) {
    const line = JSON.stringify({
      ts: this.now().toISOString(), event, id, node: this.node, ...fields,
    });
    // The audit line is best effort: the message itself is already safe (or gone).
    await appendFile(this.eventsLog, `${line}\n`, { mode: 0o640 }).catch(() => undefined);
  }

  private emlPath(id: string): string {
    return join(this.dir, `${id}.eml`);
  }

  private jsonPath(id: string): string {
    return join(this.dir, `${id}.json`);
  }
}

/** Throws QuarantineIdError unless id has the shape of a quarantine id. */
export function checkId(id: string): void {
  if (!ID_PATTERN.test(id)) throw new QuarantineIdError(id);
}

function newId(at: Date): string {
  const stamp = at.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return `${stamp}-${randomBytes(6).toString('hex')}`;
}

function reasonsOf(deciding: string, results: CheckResult[]): string[] {
  const reasons = [deciding];
  for (const result of results) {
    if (result.reason && !reasons.includes(result.reason)) reasons.push(result.reason);
  }
  return reasons;
}

const HEAD_BYTES = 64 * 1024;

async function writeStream(path: string, message: Readable) {
  const handle = await open(path, 'wx', 0o640);
  const hash = createHash('sha256');
  const head: Buffer[] = [];
  let headBytes = 0;
  let size = 0;
  try {
    for await (const chunk of message) {
      const bytes = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string);
      hash.update(bytes);
      size += bytes.length;
      if (headBytes < HEAD_BYTES) {
        head.push(bytes.subarray(0, HEAD_BYTES - headBytes));
        headBytes += Math.min(bytes.length, HEAD_BYTES - headBytes);
      }
      await handle.write(bytes);
    }
    await handle.sync();
  } finally {
    await handle.close();
  }
  return { size, sha256: hash.digest('hex'), head: Buffer.concat(head) };
}

async function writeDurably(path: string, text: string): Promise<void> {
  const handle = await open(path, 'w', 0o640);
  try {
    await handle.writeFile(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function syncFolder(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function removeQuietly(path: string): Promise<void> {
  await unlink(path).catch(() => undefined);
}

function isMissing(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | null)?.code === 'ENOENT';
}
