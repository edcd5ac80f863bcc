/*
 * Settings of the rate limits shared through Redis (or held in process without
 * Redis). Listed here, apart from the core table, so the checks' owners can grow them without
 * touching the core; defaults.ts appends RATELIMIT_SETTINGS to the table and load.ts calls
 * buildRateLimitConfig. Per-domain keys (allowed in `[domain example.com]` sections) are in
 * RATELIMIT_DOMAIN_SETTINGS.
 */

import type { DomainSettingSpec, SettingSpec } from '../defaults';

export const RATELIMIT_SETTINGS: readonly SettingSpec[] = [];

export const RATELIMIT_DOMAIN_SETTINGS: readonly DomainSettingSpec[] = [];

// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface RateLimitConfig {}

export function buildRateLimitConfig(_get: <T>(name: string) => T): RateLimitConfig {
  return {};
}
