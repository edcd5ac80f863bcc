/*
 * Gives memory back when this process goes quiet.
 *
 * V8 frees what a burst of mail left behind (parsed messages, socket and stream Buffers) at its
 * next major collection, and after a burst that may not come for as long as traffic stays low:
 * its memory reducer only follows a major collection V8 made by itself. A full-pipeline gateway
 * that had moved 36 000 messages sat at ~230 MB resident for as long as it stayed quiet, 30-60
 * MB of it Buffers of messages long answered (probe of 2026-12-04). So once no SMTP connection
 * has been open for smtp.idle_collect, and connections came and went since the last time, the
 * process collects once, in the quiet, where the pause delays nobody. Under steady traffic it
 * never runs; a connection arriving while the collection runs waits for it (tens of ms).
 *
 * Needs: the collector it is given (collectGarbage(), which needs --expose-gc and otherwise
 * does nothing). Decides nothing about mail.
 */

import { unrefTimeout, type Schedule } from './timers';

export class IdleCollector {
  /** Connections opened since the last collection: nothing to give back without them. */
  private usedSinceCollection = false;
  private pending: { cancel(): void } | null = null;
  private stopped = false;

  /**
   * @param collect   one major collection; its return value is ignored
   * @param idleMs    quiet time before collecting; 0 switches this off
   */
  constructor(
    private readonly collect: () => void,
    private readonly idleMs: number,
    private readonly schedule: Schedule = unrefTimeout,
  ) {}

  /** A connection was registered: the process is not idle. */
  connectionOpened(): void {
    this.usedSinceCollection = true;
    this.pending?.cancel();
    this.pending = null;
  }

  /** A connection went away; `stillOpen` are the ones left in this process. */
  connectionClosed(stillOpen: number): void {
    if (this.stopped || this.idleMs <= 0 || stillOpen > 0 || !this.usedSinceCollection) return;
    this.pending?.cancel();
    this.pending = this.schedule(() => {
      this.pending = null;
      this.usedSinceCollection = false;
      this.collect();
    }, this.idleMs);
  }

  /** Draining: no collection is left waiting, and none is planned again. */
  stop(): void {
    this.stopped = true;
    this.pending?.cancel();
    this.pending = null;
  }
}
