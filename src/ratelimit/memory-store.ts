/*
 * The counter store without Redis: the same sliding-window log and leases as the Lua script
 * (redis-store.ts), kept in this process's memory.
 *
 * Used when redis.url is empty. Keys are dropped once their newest entry has expired, when
 * touched and by a sweep.
 *
 * LIMITATION: counts are per node. Two gateways (or two Haraka workers) each count on their
 * own, so a client spreading its mail over N of them gets N times each limit.
 */

import type { CounterCheck, CounterStore, TakeResult } from './store';

interface CounterKey {
  /** Entry id → score (event time, or lease end). */
  entries: Map<string, number>;
  expiresAt: number;
}

const SWEEP_EVERY_MS = 60_000;

export class MemoryCounterStore implements CounterStore {
  readonly kind = 'memory';
  private readonly keys = new Map<string, CounterKey>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(private readonly clock: () => number = Date.now) {
    this.sweeper = setInterval(() => this.sweep(), SWEEP_EVERY_MS);
    this.sweeper.unref();
  }

  /** One process, one group: every check of an event goes into one take(). */
  groupOf(_key: string): string {
    return '';
  }

  async take(checks: CounterCheck[], member: string): Promise<TakeResult> {
    const now = this.clock();
    const counts: number[] = [];

    // Drop what has aged out, then find the first check without room.
    for (const [index, check] of checks.entries()) {
      const counter = this.prune(check, now);
      const count = counter?.entries.size ?? 0;
      if (count >= check.maximum) {
        return { allowed: false, refusedIndex: index, counts: [...counts, count],
          retryAfterMs: retryAfter(check, counter, now) };
      }
      counts.push(count);
    }

    // Every check has room: each gets the entry.
    for (const check of checks) {
      const counter = this.keys.get(check.key) ?? { entries: new Map(), expiresAt: 0 };
      const score = check.counting === 'window' ? now : now + check.periodMs;
      counter.entries.set(member, score);
      counter.expiresAt = now + check.periodMs;
      this.keys.set(check.key, counter);
    }
    return { allowed: true, refusedIndex: -1, counts, retryAfterMs: 0 };
  }

  async renew(key: string, member: string, leaseMs: number): Promise<void> {
    const now = this.clock();
    const counter = this.keys.get(key) ?? { entries: new Map(), expiresAt: 0 };
    counter.entries.set(member, now + leaseMs);
    counter.expiresAt = now + leaseMs;
    this.keys.set(key, counter);
  }

  async release(key: string, member: string): Promise<void> {
    const counter = this.keys.get(key);
    if (!counter) return;
    counter.entries.delete(member);
    if (counter.entries.size === 0) this.keys.delete(key);
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
    this.keys.clear();
  }

  /** Keys held right now (for tests: keys must go away on their own). */
  get size(): number {
    this.sweep();
    return this.keys.size;
  }

  private prune(check: CounterCheck, now: number): CounterKey | undefined {
    const counter = this.keys.get(check.key);
    if (!counter) return undefined;
    if (counter.expiresAt <= now) {
      this.keys.delete(check.key);
      return undefined;
    }
    // Window entries sit in time order (a Map keeps insertion order): stop at the first young
    // one. Leases are renewed in place, out of order, so all of them are looked at.
    const windowed = check.counting === 'window';
    const floor = windowed ? now - check.periodMs : now;
    for (const [member, score] of counter.entries) {
      if (score <= floor) counter.entries.delete(member);
      else if (windowed) break;
    }
    return counter;
  }

  private sweep(): void {
    const now = this.clock();
    for (const [key, counter] of this.keys) {
      if (counter.expiresAt <= now) this.keys.delete(key);
    }
  }
}

function retryAfter(check: CounterCheck, counter: CounterKey | undefined, now: number): number {
  if (check.counting !== 'window' || !counter) return 0;
  const oldest = counter.entries.values().next().value ?? now;
  return Math.max(0, oldest + check.periodMs - now);
}
