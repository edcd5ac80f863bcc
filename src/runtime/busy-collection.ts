/*
 * Collects garbage every smtp.busy_collect (30 s) while a process has traffic.
 *
 * Two kinds of memory a busy process keeps without using it, and that only this gives back:
 * glibc keeps what the process freed inside its arenas (the trim after the collection returns
 * it: ./allocator-trim.ts), and V8 keeps the pages its old generation empties in a pool it
 * releases only in a collection meant to reduce memory, which under load it never makes
 * (./memory-high-water.ts has the probe). In a 30-minute soak at 10 connections, with the
 * trim alone every 30 s, the resident size went 183 -> 205 MB in the first nine minutes with the
 * V8 heap flat at 61 MB: V8's pages held 101 MB of it, so ~40 MB was the pool.
 *
 * The collection is the idle one's (`last-resort`, 55-85 ms), so every connection of the
 * process waits that long once per interval; at 30 s that is 0.2-0.3 % of the time. It runs only
 * after an interval in which a connection was opened: a quiet process has nothing new to give
 * back (its idle collection did it).
 *
 * Needs: the collector it is given. Decides nothing about mail.
 */

import { unrefInterval, type Schedule } from './timers';

export class BusyCollector {
  private trafficSeen = false;
  private timer: { cancel(): void } | null = null;
  private stopped = false;

  /**
   * @param collect     one collection and trim
   * @param intervalMs  0 switches this off
   */
  constructor(
    private readonly collect: () => void,
    private readonly intervalMs: number,
    private readonly schedule: Schedule = unrefInterval,
  ) {}

  /** A connection was opened; starts the timer the first time. */
  connectionOpened(): void {
    this.trafficSeen = true;
    if (this.timer || this.stopped || this.intervalMs <= 0) return;
    this.timer = this.schedule(() => this.tick(), this.intervalMs);
  }

  /** Draining or shutting down: no more collections. */
  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
    this.timer = null;
  }

  private tick(): void {
    if (!this.trafficSeen) return;
    this.trafficSeen = false;
    this.collect();
  }
}
