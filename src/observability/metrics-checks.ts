/*
 * One latency histogram for every check a message passes: moat_check_duration_seconds{check}.
 *
 * One name, so a dashboard draws the percentiles of every check in one panel and an alert
 * names the slow one by its label. What is timed, per check:
 *
 *   spf     the SPF evaluation at MAIL FROM (DNS included, cut at auth.spf_timeout)
 *   dkim    verifying every DKIM signature of the message (key lookups included)
 *   arc     validating the ARC chain
 *   dmarc   the DMARC record lookup and alignment
 *   dnsbl   asking every DNS list zone about the client (bounded by reputation.deadline)
 *   rdns    the client's PTR name and its forward confirmation (reputation.reverse_dns_deadline)
 *   clamd   end of DATA to clamd's verdict (whole message and attachments)
 *   spamd   end of DATA to spamd's score
 *   scan    end of DATA to the verdict of the whole scan step (clamd, spamd, MIME in parallel)
 *   rules   evaluating the whole rule set on one message (parsing excluded)
 *
 * The dependencies under the checks have histograms of their own with more labels:
 * moat_dns_query_seconds (DNS servers), moat_ratelimit_store_seconds (Redis, i.e. the rate-limit
 * checks), moat_downstream_seconds (the internal mail server).
 */

import { Histogram } from 'prom-client';

import { registry } from './metrics';

export const CHECKS = [
  'spf', 'dkim', 'arc', 'dmarc', 'dnsbl', 'rdns', 'clamd', 'spamd', 'scan', 'rules',
] as const;
export type CheckName = (typeof CHECKS)[number];

/** From half a millisecond (rules) to the scanners' 60 s deadline. */
export const CHECK_BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
];

const checkSeconds = new Histogram({
  name: 'moat_check_duration_seconds',
  help: 'Time one check took for one connection, transaction or message, by check.',
  labelNames: ['check'] as const,
  buckets: CHECK_BUCKETS,
  registers: [registry],
});

// Every check's series exist from start-up, so a dashboard shows a check that never ran.
for (const check of CHECKS) checkSeconds.zero({ check });

export function observeCheck(check: CheckName, seconds: number): void {
  checkSeconds.observe({ check }, seconds);
}
