/*
 * Metrics of the DNS blocklist and allowlist check (src/reputation): one count per zone asked
 * and its outcome, and one per client checked with what became of it. Zone names come from the
 * configuration, never from a client, and still pass through boundedLabel. The time a whole
 * check takes is moat_check_duration_seconds{check="dnsbl"} (./metrics-checks.ts).
 */

import { Counter } from 'prom-client';

import { boundedLabel, registry } from './metrics';
import { observeCheck } from './metrics-checks';
import type { ZoneOutcomeWord } from '../reputation/dnsbl';

export type DnsListCheckResult =
  | 'refused' | 'passed' | 'skipped_internal' | 'skipped_allowlist';

const zoneLookupsTotal = new Counter({
  name: 'moat_dnsbl_lookups_total',
  help: 'DNS list zones asked about a client, by zone and outcome (listed, clean, error, '
    + 'timeout). Errors and timeouts are skipped: fail-open.',
  labelNames: ['zone', 'outcome'] as const,
  registers: [registry],
});

const checksTotal = new Counter({
  name: 'moat_dnsbl_checks_total',
  help: 'Clients checked against the DNS lists at connect, by result.',
  labelNames: ['result'] as const,
  registers: [registry],
});
for (const result of ['refused', 'passed', 'skipped_internal', 'skipped_allowlist'] as const) {
  checksTotal.inc({ result }, 0);
}

/** Pre-creates the series of each configured zone, so a dashboard sees zeros, not gaps. */
export function declareDnsListZones(zones: readonly string[]): void {
  for (const zone of zones) {
    for (const outcome of ['listed', 'clean', 'error', 'timeout'] as const) {
      zoneLookupsTotal.inc({ zone: boundedLabel('dnsbl_zone', zone), outcome }, 0);
    }
  }
}

export function countDnsListLookup(zone: string, outcome: ZoneOutcomeWord): void {
  zoneLookupsTotal.inc({ zone: boundedLabel('dnsbl_zone', zone), outcome });
}

export function countDnsListCheck(result: DnsListCheckResult, seconds?: number): void {
  checksTotal.inc({ result });
  if (seconds !== undefined) observeCheck('dnsbl', seconds);
}
