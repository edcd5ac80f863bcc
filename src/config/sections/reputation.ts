/*
 * Settings of the reputation checks (DNS blocklists and allowlists) and the DNS
 * resolver. Listed here, apart from the core table, so the checks' owners can grow them without
 * touching the core; defaults.ts appends REPUTATION_SETTINGS to the table and load.ts calls
 * buildReputationConfig. Per-domain keys (allowed in `[domain example.com]` sections) are in
 * REPUTATION_DOMAIN_SETTINGS.
 */

import type { DomainSettingSpec, SettingSpec } from '../defaults';

export const REPUTATION_SETTINGS: readonly SettingSpec[] = [];

export const REPUTATION_DOMAIN_SETTINGS: readonly DomainSettingSpec[] = [];

// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface ReputationConfig {}

export function buildReputationConfig(_get: <T>(name: string) => T): ReputationConfig {
  return {};
}
