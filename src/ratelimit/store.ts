/*
 * What a rate-limit counter store does, whichever holds the counts (Redis, Redis Cluster, or
 * this process's memory).
 *
 * Every key is a sorted set of entries. A windowed limit keeps one entry per counted event,
 * scored with the time it happened; entries older than the window are dropped before counting
 * (a sliding-window log: "at most MAX in any WINDOW", exact). A concurrent limit keeps one entry
 * per open connection, scored with the time its lease runs out; a node that dies stops renewing
 * and its entries fall out after the lease. A key expires on its own once its newest entry has.
 *
 * take() is atomic over all the checks it is given: either every check has room and each gets
 * the entry, or none is touched and the first full check is reported. The store's own clock
 * (Redis TIME) is the only clock, so gateways with skewed clocks still agree.
 */

export interface CounterCheck {
  key: string;
  counting: 'window' | 'concurrent';
  maximum: number;
  /** The window (window) or the lease (concurrent), in milliseconds. */
  periodMs: number;
}

export interface TakeResult {
  allowed: boolean;
  /** Index into the checks of the first full one; -1 when allowed. */
  refusedIndex: number;
  /** Entries each check held before this event (up to the refused one). */
  counts: number[];
  /** For a full window: milliseconds until its oldest entry leaves the window. */
  retryAfterMs: number;
}

export interface CounterStore {
  /** `redis`, `redis-cluster` or `memory`, for logs. */
  readonly kind: string;
  /**
   * Checks that may go into one take() call share a group: one hash slot in a cluster, one
   * group for everything otherwise.
   */
  groupOf(key: string): string;
  take(checks: CounterCheck[], member: string): Promise<TakeResult>;
  /** Pushes a concurrent entry's lease forward (adding it again if it had gone). */
  renew(key: string, member: string, leaseMs: number): Promise<void>;
  /** Removes an entry: a closed connection, or an event rolled back. */
  release(key: string, member: string): Promise<void>;
  close(): Promise<void>;
}

/** A store did not answer, or answered with an error. */
export class CounterStoreError extends Error {
  constructor(
    readonly store: string,
    readonly operation: string,
    readonly keys: string[],
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${store} ${operation} ${keys.join(' ')}: ${message}`, options);
    this.name = 'CounterStoreError';
  }
}
