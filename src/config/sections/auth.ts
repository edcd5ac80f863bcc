/*
 * Settings of the sender-authentication and reputation checks (SPF, DKIM, DMARC, ARC, DNS
 * lists). Listed here, apart from the core table, so the checks' owners can grow them without
 * touching the core; defaults.ts appends AUTH_SETTINGS to the table and load.ts calls
 * buildAuthConfig. Per-domain keys (allowed in `[domain example.com]` sections) are in
 * AUTH_DOMAIN_SETTINGS.
 */

import type { DomainSettingSpec, SettingSpec } from '../defaults';

export const AUTH_SETTINGS: readonly SettingSpec[] = [];

export const AUTH_DOMAIN_SETTINGS: readonly DomainSettingSpec[] = [];

// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface AuthConfig {}

export function buildAuthConfig(_get: <T>(name: string) => T): AuthConfig {
  return {};
}
