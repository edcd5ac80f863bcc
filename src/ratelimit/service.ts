/*
 * The rate limits of this process: the counter store chosen by the configuration, the limiter,
 * the concurrent-connection leases it holds, and the logs and metrics of store trouble.
 *
 * Store: Redis (or a Redis Cluster with ratelimit.redis_cluster) when redis.url is set, shared
 * by every gateway node; otherwise this process's memory, per node. Leases of open connections
 * are renewed every third of ratelimit.connection_lease, so a node that dies stops renewing and
 * its connections stop counting one lease later; a Redis that restarts empty gets the open
 * connections back at the next renewal.
 *
 * Store failure: the check lets the mail through (fail-open), counts
 * moat_ratelimit_fail_open_total per limit, and writes a warn line, at most one per
 * LOG_EVERY_MS with the number of failures in between, so an outage does not flood the log.
 */

import { randomBytes } from 'node:crypto';
import type { MoatConfig } from '../config/types';
import { log } from '../observability/decision-log';
import {
  countFailOpen, countStoreError, observeStoreSeconds, type StoreFailureKind,
} from '../observability/metrics-ratelimit';
import type { LimitEvent } from './limits';
import { RateLimiter, type EventSubjects, type LimitOutcome } from './limiter';
import { MemoryCounterStore } from './memory-store';
import { RedisCounterStore } from './redis-store';
import { CounterStoreError, type CounterStore } from './store';

const LOG_EVERY_MS = 5000;
/** Never written: removing a member from it is a cheap, harmless round trip for the probe. */
const PROBE_KEY = 'moat:rl:{probe}:health';
/** How long start-up waits for Redis before letting the first checks fail open. */
const CONNECT_WAIT_MS = 2000;

export class RateLimitService {
  readonly limiter: RateLimiter;
  readonly store: CounterStore;
  /** Unique across nodes and restarts: entry ids are `<node>:<sequence>`. */
  private readonly nodeId = `${process.pid.toString(36)}${randomBytes(4).toString('hex')}`;
  private sequence = 0;
  private readonly leases = new Map<string, { key: string; member: string }>();
  private readonly renewTimer: NodeJS.Timeout;
  private lastWarnAt = 0;
  private suppressed = 0;
  /** Settles once connected or CONNECT_WAIT_MS after start(); checks wait for it. */
  private starting: Promise<void> | null = null;

  constructor(private readonly config: Pick<MoatConfig, 'redisUrl' | 'rateLimit'>) {
    const settings = config.rateLimit;
    this.store = config.redisUrl
      ? new RedisCounterStore({
        url: config.redisUrl, cluster: settings.redisCluster, timeoutMs: settings.redisTimeoutMs,
        onClientError: (error) => this.warn('redis client error; reconnecting by itself',
          { error: error.message }),
      })
      : new MemoryCounterStore();
    this.limiter = new RateLimiter(settings, this.store);
    this.renewTimer = setInterval(() => this.renewLeases(),
      Math.max(1000, Math.floor(settings.connectionLeaseMs / 3)));
    this.renewTimer.unref();
  }

  /** Connects to Redis (waiting a little so the first mail is counted); never throws. */
  async start(): Promise<void> {
    if (this.starting) return this.starting;
    const store = this.store;
    this.starting = store instanceof RedisCounterStore
      ? store.connect(CONNECT_WAIT_MS) : Promise.resolve();
    await this.starting;
    log('info', 'ratelimit', 'rate limits ready', {
      store: this.store.kind, limits: this.config.rateLimit.limits.map((spec) => spec.name),
      shared: this.store.kind !== 'memory',
    });
  }

  /** A fresh entry id for an event that is not a connection. */
  eventId(): string {
    this.sequence += 1;
    return `${this.nodeId}:${this.sequence.toString(36)}`;
  }

  /** The entry id of a connection (its concurrent-connection entry). */
  connectionMember(connectionUuid: string): string {
    return `${this.nodeId}:c:${connectionUuid}`;
  }

  async check(event: LimitEvent, subjects: EventSubjects): Promise<LimitOutcome> {
    if (this.starting) await this.starting;
    const startedAt = process.hrtime.bigint();
    const outcome = await this.limiter.check(event, subjects);
    if (outcome.checked.length > 0) {
      observeStoreSeconds(event, this.store.kind,
        Number(process.hrtime.bigint() - startedAt) / 1e9);
    }

    // Fail-open: each limit whose store call failed is counted and (throttled) logged.
    for (const failure of outcome.failures) {
      const kind = failureKind(failure.error);
      countStoreError('take', kind);
      for (const limit of failure.limits) countFailOpen(limit, kind);
      this.warn('rate-limit store failed; mail let through (fail-open)', {
        event, limits: failure.limits, kind, error: failure.error.message,
        deadline_ms: this.config.rateLimit.redisTimeoutMs,
      });
    }
    if (outcome.lease) this.leases.set(subjects.member, outcome.lease);
    return outcome;
  }

  /** The connection closed: its concurrent entry goes (or expires after the lease). */
  async connectionClosed(member: string): Promise<void> {
    const lease = this.leases.get(member);
    if (!lease) return;
    this.leases.delete(member);
    try {
      await this.store.release(lease.key, lease.member);
    } catch (error) {
      countStoreError('release', failureKind(error));
    }
  }

  /** Health probe (moat_dependency_up{dependency="redis"}): one store round trip. */
  async probe(): Promise<{ ok: boolean; detail: string }> {
    await this.start();
    try {
      await this.store.release(PROBE_KEY, 'probe');
      return { ok: true, detail: `${this.store.kind} answers` };
    } catch (error) {
      return { ok: false, detail: error instanceof Error ? error.message : String(error) };
    }
  }

  /** Open connections holding a concurrent entry in this process. */
  get openLeases(): number {
    return this.leases.size;
  }

  async close(): Promise<void> {
    clearInterval(this.renewTimer);
    await this.store.close();
  }

  private renewLeases(): void {
    const leaseMs = this.config.rateLimit.connectionLeaseMs;
    for (const lease of this.leases.values()) {
      this.store.renew(lease.key, lease.member, leaseMs).catch((error: unknown) => {
        countStoreError('renew', failureKind(error));
      });
    }
  }

  private warn(msg: string, fields: Record<string, unknown>): void {
    const now = Date.now();
    if (now - this.lastWarnAt < LOG_EVERY_MS) {
      this.suppressed += 1;
      return;
    }
    log('warn', 'ratelimit', msg, { ...fields, store: this.store.kind,
      similar_since_last_line: this.suppressed });
    this.lastWarnAt = now;
    this.suppressed = 0;
  }
}

function failureKind(error: unknown): StoreFailureKind {
  return error instanceof CounterStoreError && /no answer within/.test(error.message)
    ? 'timeout' : 'error';
}

let service: RateLimitService | null = null;

/** This process's rate limits, made on first use from the runtime's configuration. */
export function rateLimits(config: Pick<MoatConfig, 'redisUrl' | 'rateLimit'>): RateLimitService {
  service ??= new RateLimitService(config);
  return service;
}

/** At the end of a drain: closes the Redis client, which would keep the process alive. */
export async function closeRateLimits(): Promise<void> {
  // The service stays: a connection still closing then meets a closed store, which fails open
  // like a Redis outage, instead of a new client reconnecting and holding the process.
  await service?.close();
}
