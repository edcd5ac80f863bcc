/*
 * Settings of the rate limits shared through Redis (or held in process without
 * Redis). Listed here, apart from the core table, so the checks' owners can grow them without
 * touching the core; defaults.ts appends RATELIMIT_SETTINGS to the table and load.ts calls
 * buildRateLimitConfig. Per-domain keys (allowed in `[domain example.com]` sections) are in
 * RATELIMIT_DOMAIN_SETTINGS.
 *
 * One key per limit, named after it (src/ratelimit/limits.ts has the syntax): every limit is off
 * unless set, except concurrent connections per client address, which ships with a default.
 */

import { LIMIT_KINDS, parseExemptions, parseLimit, type Exemptions, type LimitName,
  type LimitSpec } from '../../ratelimit/limits';
import type { DomainSettingSpec, SettingSpec } from '../defaults';
import { parseBoolean, parseDuration } from '../values';

const LIMIT_DEFAULTS: Partial<Record<LimitName, string>> = {
  concurrent_connections_per_ip: '20',
};

const LIMIT_WHY_SUFFIX: Partial<Record<LimitName, string>> = {
  concurrent_connections_per_ip: '; on by default, like smtp.max_connections_per_ip '
    + '(kept as the per-process backstop while Redis is away)',
};

export const RATELIMIT_SETTINGS: readonly SettingSpec[] = [
  ...LIMIT_KINDS.map((kind): SettingSpec => ({
    section: 'ratelimit', key: kind.name, default: LIMIT_DEFAULTS[kind.name] ?? '',
    why: `${kind.why}; ${kind.counting === 'window' ? 'MAX/WINDOW' : 'MAX'} `
      + `${kind.event === 'connect' ? '[421]' : '[421|451]'} [exempt=LIST], empty is off`
      + (LIMIT_WHY_SUFFIX[kind.name] ?? ''),
    parse: (raw) => parseLimit(kind.name, raw),
  })),
  { section: 'ratelimit', key: 'exempt', default: '',
    why: 'client networks, senders, @domains no limit applies to: 192.0.2.0/24,@partner.example',
    parse: parseExemptions },
  { section: 'ratelimit', key: 'redis_timeout', default: '50ms',
    why: 'a Redis check gives up after this and lets the mail through (fail-open, logged, counted)',
    parse: (raw) => parseDuration(raw, 1, 5000) },
  { section: 'ratelimit', key: 'redis_cluster', default: 'false',
    why: 'redis.url is one seed node of a Redis Cluster; keys are spread over its masters',
    parse: parseBoolean },
  { section: 'ratelimit', key: 'connection_lease', default: '60s',
    why: 'a concurrent-connection entry not refreshed this long is dropped (a node that died)',
    parse: (raw) => parseDuration(raw, 3000, 3_600_000) },
];

export const RATELIMIT_DOMAIN_SETTINGS: readonly DomainSettingSpec[] = [];

export interface RateLimitConfig {
  /** The limits switched on, in the order a session meets them. */
  limits: LimitSpec[];
  /** Exemptions from every limit. */
  exempt: Exemptions;
  redisTimeoutMs: number;
  redisCluster: boolean;
  connectionLeaseMs: number;
}

export function buildRateLimitConfig(get: <T>(name: string) => T): RateLimitConfig {
  const limits = LIMIT_KINDS
    .map((kind) => get<LimitSpec | null>(`ratelimit.${kind.name}`))
    .filter((spec): spec is LimitSpec => spec !== null);
  return {
    limits,
    exempt: get<Exemptions>('ratelimit.exempt'),
    redisTimeoutMs: get<number>('ratelimit.redis_timeout'),
    redisCluster: get<boolean>('ratelimit.redis_cluster'),
    connectionLeaseMs: get<number>('ratelimit.connection_lease'),
  };
}
