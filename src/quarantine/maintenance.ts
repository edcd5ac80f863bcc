/*
 * The gateway's quarantine housekeeping, run in every process that handles mail:
 * - every purge interval, messages stored longer ago than the retention are removed (held
 *   and released alike), with crash debris;
 * - every RECOUNT_MS, the count and size gauges are recounted from the folder, and the lines
 *   appended to events.log since the last look (releases and deletes done with the
 *   `moat quarantine` tool, purges by any process) are counted.
 *
 * Several processes (cluster workers, nodes sharing a folder) may purge at once: removal is
 * by unlink, and only the process whose unlink succeeded logs the purge, so nothing is
 * counted twice in events.log. Failures are logged and retried at the next tick; they never
 * reach a client.
 *
 * LIMITATION: a recount reads every record; with tens of thousands of held messages, raise
 * the retention's strictness or expect a few hundred milliseconds of disk reads per minute.
 */

import { open, stat } from 'node:fs/promises';
import { log } from '../observability/decision-log';
import {
  countQuarantineEvent, QUARANTINE_EVENTS, setQuarantineUsage, type QuarantineEventLabel,
} from '../observability/metrics-quarantine';
import { formatAge } from './age';
import type { QuarantineStore } from './store';

export const RECOUNT_MS = 30_000;

export interface MaintenanceOptions {
  retentionMs: number;
  purgeIntervalMs: number;
  recountMs?: number;
}

export class QuarantineMaintenance {
  private timers: NodeJS.Timeout[] = [];
  private eventsOffset: number | null = null;
  private running = false;

  constructor(
    private readonly store: QuarantineStore, private readonly options: MaintenanceOptions,
  ) {}

  /** Starts the timers (they never keep the process alive) and recounts once right away. */
  start(): void {
    if (this.timers.length > 0) return;
    const every = (ms: number, task: () => Promise<void>): void => {
      const timer = setInterval(() => void this.guard(task), ms);
      timer.unref();
      this.timers.push(timer);
    };
    every(this.options.recountMs ?? RECOUNT_MS, () => this.recount());
    if (this.options.retentionMs > 0) {
      every(this.options.purgeIntervalMs, async () => {
        await this.purge();
      });
    }
    void this.guard(async () => {
      if (this.options.retentionMs > 0) await this.purge();
      await this.recount();
    });
  }

  stop(): void {
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [];
  }

  /** Purge by retention now; returns how many messages went. */
  async purge(): Promise<number> {
    if (this.options.retentionMs <= 0) return 0;
    const purged = await this.store.purge(this.options.retentionMs, 'retention');
    if (purged.length > 0) {
      log('info', 'quarantine', 'purged quarantined messages past retention', {
        count: purged.length, retention: formatAge(this.options.retentionMs),
        ids: purged.slice(0, 20).map((record) => record.id),
      });
    }
    return purged.length;
  }

  /** Gauges from the folder, counters from the new lines of events.log. */
  async recount(): Promise<void> {
    const usage = await this.store.usage();
    setQuarantineUsage('held', usage.held.count, usage.held.bytes);
    setQuarantineUsage('released', usage.released.count, usage.released.bytes);
    await this.readEvents();
  }

  private async readEvents(): Promise<void> {
    const size = await stat(this.store.eventsLog).then((info) => info.size, () => 0);

    // The first look only notes where the log ends: counters count from process start.
    if (this.eventsOffset === null || size < this.eventsOffset) {
      this.eventsOffset = this.eventsOffset === null ? size : 0;
      if (size === this.eventsOffset) return;
    }
    if (size === this.eventsOffset) return;

    const handle = await open(this.store.eventsLog, 'r');
    let text: string;
    try {
      const buffer = Buffer.alloc(size - this.eventsOffset);
      await handle.read(buffer, 0, buffer.length, this.eventsOffset);
      text = buffer.toString('utf8');
    } finally {
      await handle.close();
    }

    // Only whole lines; a line still being appended is read next time.
    const complete = text.slice(0, text.lastIndexOf('\n') + 1);
    this.eventsOffset += Buffer.byteLength(complete);
    for (const line of complete.split('\n')) {
      const event = parseEvent(line);
      if (event) countQuarantineEvent(event);
    }
  }

  private async guard(task: () => Promise<void>): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      await task();
    } catch (error) {
      log('warn', 'quarantine', 'quarantine housekeeping failed; retrying at the next tick', {
        dir: this.store.dir, error: error instanceof Error ? error.message : String(error),
      });
    } finally {
      this.running = false;
    }
  }
}

function parseEvent(line: string): QuarantineEventLabel | null {
  if (!line.startsWith('{')) return null;
  try {
    const event = (JSON.parse(line) as { event?: unknown }).event;
    return QUARANTINE_EVENTS.find((known) => known === event) ?? null;
  } catch {
    return null;
  }
}
