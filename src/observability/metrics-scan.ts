/*
 * Metrics of the malware and spam scanners, on Moat's one registry (./metrics.ts).
 *
 * Labels take only bounded values: the scanner name, a fixed outcome word, a failure kind
 * from src/scan/errors.ts. Signature names and rule names never become labels (there are
 * millions); they are in the decision log line instead. Scan times are
 * moat_check_duration_seconds{check="clamd|spamd|scan"} (./metrics-checks.ts).
 */

import { Counter } from 'prom-client';
import { registry } from './metrics';
import { observeCheck } from './metrics-checks';

export type ScanOutcome =
  | 'clean' | 'found' | 'heuristic' | 'spam' | 'ham' | 'error' | 'timeout' | 'too-large' | 'skip';

const scansTotal = new Counter({
  name: 'moat_scans_total',
  help: 'Scans by scanner (clamd, clamd-part, spamd) and outcome.',
  labelNames: ['scanner', 'outcome'] as const,
  registers: [registry],
});

const unscannedTotal = new Counter({
  name: 'moat_unscanned_total',
  help: 'Messages passed on without a scanner verdict (fail-open or scanner not configured).',
  labelNames: ['scanner', 'why'] as const,
  registers: [registry],
});

const mimeProblemsTotal = new Counter({
  name: 'moat_mime_problems_total',
  help: 'Messages with an ambiguous or malformed MIME structure, by strictness action.',
  labelNames: ['action'] as const,
  registers: [registry],
});

for (const scanner of ['clamd', 'spamd']) {
  for (const why of ['failure', 'not-configured']) unscannedTotal.inc({ scanner, why }, 0);
}
for (const action of ['refused', 'logged']) mimeProblemsTotal.inc({ action }, 0);
const EXPECTED_OUTCOMES: Array<[string, ScanOutcome[]]> = [
  ['clamd', ['clean', 'found', 'heuristic', 'error', 'timeout', 'too-large']],
  ['spamd', ['ham', 'spam', 'error', 'timeout']],
];
for (const [scanner, outcomes] of EXPECTED_OUTCOMES) {
  for (const outcome of outcomes) scansTotal.inc({ scanner, outcome }, 0);
}

export function countScan(scanner: 'clamd' | 'clamd-part' | 'spamd', outcome: ScanOutcome): void {
  scansTotal.inc({ scanner, outcome });
}

/** `all` is the whole scan step, recorded as check `scan`. */
export function observeScan(scanner: 'clamd' | 'spamd' | 'all', seconds: number): void {
  observeCheck(scanner === 'all' ? 'scan' : scanner, seconds);
}

export function countUnscanned(scanner: 'clamd' | 'spamd', why: 'failure' | 'not-configured') {
  unscannedTotal.inc({ scanner, why });
}

export function countMimeProblem(action: 'refused' | 'logged'): void {
  mimeProblemsTotal.inc({ action });
}
