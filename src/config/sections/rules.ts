/*
 * Settings of the content-control rules engine (rule folder, reload,
 * monitoring). Listed here, apart from the core table, so the checks' owners can grow them without
 * touching the core; defaults.ts appends RULES_SETTINGS to the table and load.ts calls
 * buildRulesConfig. Per-domain keys (allowed in `[domain example.com]` sections) are in
 * RULES_DOMAIN_SETTINGS.
 */

import type { DomainSettingSpec, SettingSpec } from '../defaults';

export const RULES_SETTINGS: readonly SettingSpec[] = [];

export const RULES_DOMAIN_SETTINGS: readonly DomainSettingSpec[] = [];

// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface RulesConfig {}

export function buildRulesConfig(_get: <T>(name: string) => T): RulesConfig {
  return {};
}
