/*
 * Collects garbage while a process is busy and its resident size passes smtp.memory_high.
 *
 * Large messages make V8 churn its old generation: objects of a message in flight (the lines of
 * its first megabyte, stream chunks waiting for the disk or a scanner) outlive two young
 * collections, move to the old generation and die there. V8 puts every page a major collection
 * empties into a pool for reuse and gives the pool back only in a collection that aims to
 * reduce memory, which under load it never makes; the pool is counted in the resident size and
 * in no heap figure. With 50 messages of 20 MB arriving at once, a full-pipeline gateway's pool
 * reached 106-126 MB while its whole V8 heap was 57-61 MB, and the process sat at 350-420 MB
 * (probe of 2026-12-04, the benchmark's memory run; the young generation's size changed
 * nothing). One `last-resort` collection in the middle of that burst took 62-68 ms and brought
 * the process from 307 to 204 MB; the pool refilled in about two seconds.
 *
 * So once a second, while connections are open, the process reads its resident size, and
 * above the mark it collects (the same collection as the idle one, then an allocator trim:
 * ./context.ts). A collection that leaves the process above the mark means the memory is in
 * use, not pooled: the next one waits twice as long, up to a minute, so a process that
 * legitimately holds more than the mark does not pause every second for nothing; the wait
 * starts over once a reading is below the mark. The checks stop at the first one that finds no
 * connection open and none opened since the one before (short connections one after another
 * keep them going), and the idle collection (./idle-collection.ts) takes over.
 *
 * Needs: the collector and the reader it is given. Decides nothing about mail; a collection
 * pauses every connection of the process for its duration.
 */

import { unrefInterval, type Schedule } from './timers';

export const CHECK_EVERY_MS = 1000;
const LONGEST_WAIT_MS = 60_000;

export class HighWaterCollector {
  private timer: { cancel(): void } | null = null;
  private stopped = false;
  private open = 0;
  private openedSinceCheck = false;
  /** A collection waits this long after the previous one (0 after a reading below the mark). */
  private waitMs = 0;
  private lastCollectionAt = -Infinity;

  /**
   * @param collect    one collection and trim
   * @param readRss    the process's resident size, in bytes
   * @param highBytes  the mark; 0 switches this off
   * @param now        milliseconds, for the waits between collections
   */
  constructor(
    private readonly collect: () => void,
    private readonly readRss: () => number,
    private readonly highBytes: number,
    private readonly now: () => number = () => performance.now(),
    private readonly schedule: Schedule = unrefInterval,
  ) {}

  /** A connection was opened: checks run from now on while there is traffic. */
  connectionOpened(): void {
    this.open += 1;
    this.openedSinceCheck = true;
    if (this.timer || this.stopped || this.highBytes <= 0) return;
    this.timer = this.schedule(() => this.check(), CHECK_EVERY_MS);
  }

  /** `stillOpen`: the connections left in this process. */
  connectionClosed(stillOpen: number): void {
    this.open = stillOpen;
  }

  /** Draining or shutting down: no more checks. */
  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
    this.timer = null;
  }

  private check(): void {
    if (this.open === 0 && !this.openedSinceCheck) {
      // Quiet: no more checks until the next connection, and the waits start over.
      this.timer?.cancel();
      this.timer = null;
      this.waitMs = 0;
      return;
    }
    this.openedSinceCheck = false;
    if (this.readRss() <= this.highBytes) {
      this.waitMs = 0;
      return;
    }
    const now = this.now();
    // Half a check of slack: timers fire a little early or late.
    if (now - this.lastCollectionAt < this.waitMs - CHECK_EVERY_MS / 2) return;
    this.lastCollectionAt = now;
    this.collect();
    if (this.readRss() > this.highBytes) {
      this.waitMs = Math.min(Math.max(this.waitMs * 2, 2 * CHECK_EVERY_MS), LONGEST_WAIT_MS);
    }
  }
}
