/*
 * The quarantine of this gateway process: one QuarantineStore on the configured folder and
 * its housekeeping, created the first time a plugin asks (lazily, like src/runtime/context.ts).
 */

import { getRuntime } from '../runtime/context';
import { quarantineDir } from './config';
import { QuarantineMaintenance } from './maintenance';
import { QuarantineStore } from './store';

let store: QuarantineStore | null = null;
let maintenance: QuarantineMaintenance | null = null;

export function getQuarantine(): QuarantineStore {
  if (store) return store;
  const { config } = getRuntime();
  store = new QuarantineStore(quarantineDir(config.stateDir, config.quarantine));
  return store;
}

/** Starts purge-by-retention and the gauges in this process (once). */
export function startQuarantineMaintenance(): void {
  if (maintenance) return;
  const { config } = getRuntime();
  maintenance = new QuarantineMaintenance(getQuarantine(), {
    retentionMs: config.quarantine.retentionMs,
    purgeIntervalMs: config.quarantine.purgeIntervalMs,
  });
  maintenance.start();
}
