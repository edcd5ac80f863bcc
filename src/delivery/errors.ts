/*
 * Error classes of the delivery step. Each carries where it happened (which downstream, which
 * SMTP stage) and the underlying cause, so the forwarder can pick a reply and the log can say
 * exactly what went wrong. None of these messages is shown to an internet client.
 */

/** What went wrong while talking to the downstream. */
export type DownstreamFailure = 'connect' | 'timeout' | 'closed' | 'tls' | 'protocol';

/** The step of the SMTP dialogue in progress when a failure happened. */
export type SmtpStage =
  | 'connect'
  | 'greeting'
  | 'ehlo'
  | 'starttls'
  | 'mail'
  | 'rcpt'
  | 'data'
  | 'final-dot'
  | 'rset'
  | 'quit';

/** Stages before the connection is ready for a transaction: failing here means "unreachable". */
const SESSION_STAGES: ReadonlySet<SmtpStage> = new Set(['connect', 'greeting', 'ehlo', 'starttls']);

export class DownstreamError extends Error {
  constructor(
    readonly failure: DownstreamFailure,
    readonly stage: SmtpStage,
    readonly downstream: string,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(`downstream ${downstream} ${failure} during ${stage}: ${detail}`, options);
    this.name = 'DownstreamError';
  }

  /** True when the connection never became usable for a transaction. */
  get beforeSession(): boolean {
    return SESSION_STAGES.has(this.stage);
  }
}

/** The message handed to us is not fit to send (bare CR or LF, unreadable stream). */
export class MessageInputError extends Error {
  constructor(
    detail: string,
    /** Byte offset into the raw message where the problem was found, or -1. */
    readonly offset: number,
    options?: { cause?: unknown },
  ) {
    super(`message input refused: ${detail}${offset >= 0 ? ` at byte ${offset}` : ''}`, options);
    this.name = 'MessageInputError';
  }
}

/** A delivery class was built with a configuration it cannot work with. */
export class DeliveryConfigError extends Error {
  constructor(
    readonly setting: string,
    detail: string,
  ) {
    super(`delivery configuration ${setting}: ${detail}`);
    this.name = 'DeliveryConfigError';
  }
}
