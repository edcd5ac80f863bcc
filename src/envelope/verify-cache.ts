/*
 * A small in-process cache of the internal server's answers to recipient checks.
 *
 * Each entry lives for the TTL it was stored with (recipients.ts uses a long one for accepted
 * addresses and a short one for unknown ones, so a new mailbox works soon). The cache holds at
 * most `maxEntries`; when full, the entry used least recently goes first (a Map keeps insertion
 * order, and a hit re-inserts its key). The clock is injected so tests can move time.
 *
 * LIMITATION: each Haraka worker has its own cache, so with N workers the internal server may
 * be asked up to N times for one address per TTL.
 */

export interface CacheEntry<Value> {
  value: Value;
  storedAt: number;
  expiresAt: number;
}

export class VerifyCache<Value> {
  private readonly entries = new Map<string, CacheEntry<Value>>();

  constructor(private readonly maxEntries: number, private readonly now: () => number) {}

  get size(): number {
    return this.entries.size;
  }

  /** The live entry for the key, marked as recently used; expired entries are dropped. */
  get(key: string): CacheEntry<Value> | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    this.entries.delete(key);
    if (entry.expiresAt <= this.now()) return undefined;

    this.entries.set(key, entry);
    return entry;
  }

  /** Store for ttlMs; a TTL of zero or less, or a cache of size zero, stores nothing. */
  set(key: string, value: Value, ttlMs: number): void {
    if (ttlMs <= 0 || this.maxEntries <= 0) return;

    const storedAt = this.now();
    this.entries.delete(key);
    this.entries.set(key, { value, storedAt, expiresAt: storedAt + ttlMs });

    // Evict the least recently used entries once over the bound.
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next();
      if (oldest.done === true) break;
      this.entries.delete(oldest.value);
    }
  }

  has(key: string): boolean {
    const entry = this.entries.get(key);
    return entry !== undefined && entry.expiresAt > this.now();
  }

  clear(): void {
    this.entries.clear();
  }
}
