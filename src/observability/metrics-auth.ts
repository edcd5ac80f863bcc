/*
 * Metrics of the sender-authentication checks, on Moat's one registry.
 *
 * moat_auth_results_total{check, result}: one count per recorded result (spf, dkim per
 * signature, arc, dmarc, from), result in the RFC 8601 vocabulary plus `policy` for DKIM.
 * The time each check takes is moat_check_duration_seconds{check="spf|dkim|arc|dmarc"}
 * (./metrics-checks.ts).
 * Labels come from fixed sets only (boundedLabel guards them anyway).
 */

import { Counter } from 'prom-client';
import { boundedLabel, registry } from './metrics';
import { observeCheck } from './metrics-checks';

const authResults = new Counter({
  name: 'moat_auth_results_total',
  help: 'Sender-authentication results by check and result.',
  labelNames: ['check', 'result'] as const,
  registers: [registry],
});

export function countAuthResult(check: string, result: string): void {
  authResults.inc({
    check: boundedLabel('auth_check', check), result: boundedLabel('auth_result', result),
  });
}

/** The time one authentication step took on one transaction or message. */
export function observeAuthStep(step: 'spf' | 'dkim' | 'arc' | 'dmarc', seconds: number): void {
  observeCheck(step, seconds);
}
