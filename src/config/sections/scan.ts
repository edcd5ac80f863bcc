/*
 * Settings of the malware and spam scanners (clamd, spamd) and the quarantine. Listed
 * here, apart from the core table, so the checks' owners can grow them without
 * touching the core; defaults.ts appends SCAN_SETTINGS to the table and load.ts calls
 * buildScanConfig. Per-domain keys (allowed in `[domain example.com]` sections) are in
 * SCAN_DOMAIN_SETTINGS.
 */

import type { DomainSettingSpec, SettingSpec } from '../defaults';

export const SCAN_SETTINGS: readonly SettingSpec[] = [];

export const SCAN_DOMAIN_SETTINGS: readonly DomainSettingSpec[] = [];

// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface ScanConfig {}

export function buildScanConfig(_get: <T>(name: string) => T): ScanConfig {
  return {};
}
