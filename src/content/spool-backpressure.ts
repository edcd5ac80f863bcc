/*
 * Backpressure from Haraka's spool file to the sending client.
 *
 * Past smtp.spool_after Haraka writes a message to disk while it arrives, but it never slows the
 * client down: what the disk has not taken yet waits in memory (the stream's `buffered`). Fifty
 * clients sending large messages over a fast network then hold most of those messages in
 * memory anyway. This step stops reading the client's socket while more than `highBytes` wait
 * for the disk, and reads again once no more than `lowBytes` do. TCP then slows the client.
 *
 * Decides nothing about the mail; needs nothing but the stream's counters. Untrusted input: none
 * (the counters are Haraka's). LIMITATION: there is no drain event to wait for, so the
 * stream is looked at every `pollMs` while reading is paused.
 */

/** What this step reads of Haraka's message stream. */
export interface SpoolingStream {
  /** True once the message passed spool_after and goes to disk. */
  spooling: boolean;
  /** Octets handed to the stream that are not written to disk yet. */
  buffered: number;
}

export interface PausableSocket {
  pause(): void;
  resume(): void;
}

export interface BackpressureLimits {
  highBytes: number;
  lowBytes: number;
  pollMs: number;
}

export const DEFAULT_BACKPRESSURE: BackpressureLimits = {
  highBytes: 1024 * 1024, lowBytes: 256 * 1024, pollMs: 5,
};

export class SpoolBackpressure {
  private timer: NodeJS.Timeout | null = null;
  /** Times reading was paused, for the evidence. */
  pauses = 0;

  /**
   * @param receiving  true while the connection still reads the message: once it has moved on
   *                   (the final dot was read), Haraka pauses and resumes the socket itself.
   */
  constructor(
    private readonly stream: SpoolingStream,
    private readonly socket: PausableSocket,
    private readonly receiving: () => boolean,
    private readonly limits: BackpressureLimits = DEFAULT_BACKPRESSURE,
  ) {}

  get paused(): boolean {
    return this.timer !== null;
  }

  /** After each line stored: pauses the socket when the disk has fallen behind. */
  afterLine(): void {
    if (this.paused || !this.stream.spooling) return;
    if (this.stream.buffered <= this.limits.highBytes) return;
    this.socket.pause();
    this.pauses += 1;
    this.timer = setInterval(() => this.check(), this.limits.pollMs);
  }

  /** The transaction ended: no more watching; a socket we paused mid-message is read again. */
  stop(): void {
    if (!this.timer) return;
    clearInterval(this.timer);
    this.timer = null;
    if (this.receiving()) this.socket.resume();
  }

  private check(): void {
    if (this.stream.buffered > this.limits.lowBytes && this.receiving()) return;
    this.stop();
  }
}
