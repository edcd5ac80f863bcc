/*
 * The shapes shared by every way Moat hands an accepted message on: to the downstream mail
 * server over SMTP (forwarder.ts) or into a local Maildir (maildir.ts).
 *
 * A DeliveryResult is what the Haraka queue plugin turns into the reply to the internet client:
 * `code`, `enhanced` and `text` are safe to relay as they are (printable ASCII, short, no
 * internal host names in Moat's own texts). `detail` is for the log only.
 */
import type { Readable } from 'node:stream';

export interface DeliveryEnvelope {
  /** Envelope sender; '' is the null sender (bounces). */
  sender: string;
  recipients: string[];
}

export interface RecipientResult {
  recipient: string;
  code: number;
  enhanced: string;
  text: string;
  /** True only when the message was delivered for this recipient. */
  accepted: boolean;
}

export type DeliveryOutcome = 'delivered' | 'partial' | 'tempfail' | 'rejected';

export interface DeliveryResult {
  outcome: DeliveryOutcome;
  code: number;
  /** Enhanced status code (e.g. "2.0.0"); '' when the downstream sent none. */
  enhanced: string;
  /** Safe to relay to the internet client. */
  text: string;
  recipients: RecipientResult[];
  durationMs: number;
  /** True when the message travelled over TLS to the downstream. */
  tls: boolean;
  /** 'host:port' of the downstream, or 'maildir:<path>'. */
  downstream: string;
  /** What happened, for the log: never shown to the client. */
  detail: string;
}

/** Opens the raw message (CRLF line endings, not dot-stuffed) from its start. */
export type MessageSource = () => Readable;

export interface Delivery {
  deliver(
    envelope: DeliveryEnvelope,
    openMessage: MessageSource,
    sizeBytes: number,
  ): Promise<DeliveryResult>;
  close(): Promise<void>;
}

/** Metrics hook: event, its outcome word, and how long it took. Must not throw. */
export type DeliveryObserver = (
  event: 'connect' | 'reuse' | 'deliver' | 'verify',
  outcome: string,
  seconds: number,
) => void;
