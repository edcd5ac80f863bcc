/*
 * Quarantine metrics, on Moat's registry (./metrics.ts).
 *
 *   moat_quarantine_messages{status}        gauge: messages in the quarantine folder, held or
 *                                           released (kept until retention purges them)
 *   moat_quarantine_bytes{status}           gauge: their size in bytes
 *   moat_quarantine_stored_total            counter: messages this gateway quarantined
 *   moat_quarantine_store_failures_total    counter: quarantines that failed (sender got 451)
 *   moat_quarantine_events_total{event}     counter: released, deleted, purged, as read from
 *                                           the folder's events.log since this process started
 *
 * The folder is one for the node, whichever process looks at it, so in cluster mode every
 * worker reports the same gauges and the same events: those metrics aggregate with `max`,
 * not the default sum. Releases and deletes happen in `moat quarantine`, a separate process
 * with no /metrics of its own, which is why the gateway reads them back from events.log.
 */

import { Counter, Gauge } from 'prom-client';
import { registry } from './metrics';

export const QUARANTINE_STATUSES = ['held', 'released'] as const;
export type QuarantineStatusLabel = (typeof QUARANTINE_STATUSES)[number];
export const QUARANTINE_EVENTS = ['released', 'deleted', 'purged'] as const;
export type QuarantineEventLabel = (typeof QUARANTINE_EVENTS)[number];

const messages = new Gauge({
  name: 'moat_quarantine_messages',
  help: 'Messages in the quarantine folder, by status.',
  labelNames: ['status'] as const,
  aggregator: 'max',
  registers: [registry],
});

const bytes = new Gauge({
  name: 'moat_quarantine_bytes',
  help: 'Size of the messages in the quarantine folder, in bytes, by status.',
  labelNames: ['status'] as const,
  aggregator: 'max',
  registers: [registry],
});

const stored = new Counter({
  name: 'moat_quarantine_stored_total',
  help: 'Messages quarantined (stored and fsynced before the 250).',
  registers: [registry],
});

const storeFailures = new Counter({
  name: 'moat_quarantine_store_failures_total',
  help: 'Quarantines that could not be written; the sender got 451 4.3.0.',
  registers: [registry],
});

const events = new Counter({
  name: 'moat_quarantine_events_total',
  help: 'Quarantine releases, deletes and purges seen in events.log since this process started.',
  labelNames: ['event'] as const,
  aggregator: 'max',
  registers: [registry],
});

for (const status of QUARANTINE_STATUSES) {
  messages.set({ status }, 0);
  bytes.set({ status }, 0);
}
for (const event of QUARANTINE_EVENTS) events.inc({ event }, 0);

export function setQuarantineUsage(
  status: QuarantineStatusLabel, count: number, totalBytes: number,
): void {
  messages.set({ status }, count);
  bytes.set({ status }, totalBytes);
}

/** A message was just stored: counted, and the gauges move before the next recount. */
export function countQuarantineStored(sizeBytes: number): void {
  stored.inc();
  messages.inc({ status: 'held' });
  bytes.inc({ status: 'held' }, sizeBytes);
}

export function countQuarantineStoreFailure(): void {
  storeFailures.inc();
}

export function countQuarantineEvent(event: QuarantineEventLabel): void {
  events.inc({ event });
}
