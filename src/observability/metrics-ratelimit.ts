/*
 * Metrics of the rate limits, on Moat's one registry (./metrics.ts).
 *
 * Labels take only limit names from src/ratelimit/limits.ts, event names and the store kind:
 * bounded sets. The store histogram is the Redis time each SMTP event costs (one or a few
 * script calls); summed over an event's connect, mail and rcpt it is the cost per message.
 */

import { Counter, Histogram } from 'prom-client';
import { LIMIT_KINDS } from '../ratelimit/limits';
import { boundedLabel, registry } from './metrics';

export type StoreFailureKind = 'timeout' | 'error';

const hitsTotal = new Counter({
  name: 'moat_ratelimit_hits_total',
  help: 'Events refused by a rate limit, by limit name.',
  labelNames: ['limit'] as const,
  registers: [registry],
});

const failOpenTotal = new Counter({
  name: 'moat_ratelimit_fail_open_total',
  help: 'Rate-limit checks let through because the counter store failed or was too slow.',
  labelNames: ['limit', 'kind'] as const,
  registers: [registry],
});

const storeErrorsTotal = new Counter({
  name: 'moat_ratelimit_store_errors_total',
  help: 'Counter store operations (take, renew, release) that failed or missed the deadline.',
  labelNames: ['operation', 'kind'] as const,
  registers: [registry],
});

const storeSeconds = new Histogram({
  name: 'moat_ratelimit_store_seconds',
  help: 'Time the counter store (Redis) took for the rate-limit checks of one SMTP event.',
  labelNames: ['event', 'store'] as const,
  buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
  registers: [registry],
});

// Every series a dashboard or alert reads exists from start-up, at 0: "no hits", not "no data".
for (const kind of LIMIT_KINDS) {
  hitsTotal.inc({ limit: kind.name }, 0);
  for (const failure of ['timeout', 'error'] as const) {
    failOpenTotal.inc({ limit: kind.name, kind: failure }, 0);
  }
}
for (const operation of ['take', 'renew', 'release'] as const) {
  for (const failure of ['timeout', 'error'] as const) {
    storeErrorsTotal.inc({ operation, kind: failure }, 0);
  }
}

export function countLimitHit(limit: string): void {
  hitsTotal.inc({ limit: boundedLabel('limit', limit) });
}

export function countFailOpen(limit: string, kind: StoreFailureKind): void {
  failOpenTotal.inc({ limit: boundedLabel('limit', limit), kind });
}

export function countStoreError(operation: 'take' | 'renew' | 'release', kind: StoreFailureKind)
  : void {
  storeErrorsTotal.inc({ operation, kind });
}

export function observeStoreSeconds(event: string, store: string, seconds: number): void {
  storeSeconds.observe({ event: boundedLabel('event', event), store: boundedLabel('store', store) },
    seconds);
}
