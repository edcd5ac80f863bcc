/*
 * Settings of the quarantine and of the local scanners `npm start` runs: their rows in the
 * settings table (appended to SCAN_SETTINGS in src/config/sections/scan.ts) and the typed
 * QuarantineConfig built from them (MoatConfig.quarantine).
 *
 * The quarantine folder defaults to `<state>/quarantine`; docs/operations.md says what may
 * share it between gateway nodes and what may not.
 */

import { join, isAbsolute, resolve } from 'node:path';
import type { SettingSpec } from '../config/defaults';
import { parseChoice, parseDuration, ValueProblem } from '../config/values';
import { parseAge } from './age';

export type LocalScanners = 'auto' | 'off';

export interface QuarantineConfig {
  /** '' means `<state>/quarantine`; a relative path is relative to the state folder. */
  dir: string;
  /** Held messages older than this are purged; 0 keeps them until someone deletes them. */
  retentionMs: number;
  /** How often the gateway purges and refreshes the quarantine gauges. */
  purgeIntervalMs: number;
  /** `auto`: start clamd/spamd locally for whichever address is not configured. */
  localScanners: LocalScanners;
}

const folder = (raw: string): string => {
  if (/[\0\r\n]/.test(raw)) throw new ValueProblem('a folder path');
  return raw.trim();
};

export const QUARANTINE_SETTINGS: readonly SettingSpec[] = [
  { section: 'quarantine', key: 'dir', default: '',
    why: 'empty keeps held mail in <state>/quarantine; a shared folder needs a POSIX filesystem',
    parse: folder },
  { section: 'quarantine', key: 'retention', default: '30d',
    why: 'held mail older than this is purged (0 = never); long enough for a holiday absence',
    parse: parseAge },
  { section: 'quarantine', key: 'purge_interval', default: '1h',
    why: 'how often the gateway purges by retention and recounts the quarantine gauges',
    parse: (raw) => parseDuration(raw, 10_000, 24 * 3_600_000) },
  { section: 'scanners', key: 'local', env: 'MOAT_LOCAL_SCANNERS', default: 'auto',
    why: 'auto runs clamd/spamd on loopback when their address is unset; off never does',
    parse: (raw) => parseChoice(raw, ['auto', 'off'] as const) },
];

export function buildQuarantineConfig(get: <T>(name: string) => T): QuarantineConfig {
  return {
    dir: get<string>('quarantine.dir'),
    retentionMs: get<number>('quarantine.retention'),
    purgeIntervalMs: get<number>('quarantine.purge_interval'),
    localScanners: get<LocalScanners>('scanners.local'),
  };
}

/** The quarantine folder for a configuration. */
export function quarantineDir(stateDir: string, config: QuarantineConfig): string {
  if (config.dir === '') return join(stateDir, 'quarantine');
  return isAbsolute(config.dir) ? config.dir : resolve(stateDir, config.dir);
}
