/*
 * Moat's Prometheus metrics: the one registry, and every metric Moat defines.
 *
 * Each process (the Haraka master and every cluster worker) loads this module and gets its own
 * registry. The registry is a prom-client AggregatorRegistry so that, in a worker, loading this
 * module is enough for the master to collect it (see "Cluster aggregation" below); the master's
 * /metrics endpoint lives in ./http.ts.
 *
 * Naming: `moat_` prefix, base units (seconds, bytes), counters end in `_total`. Label values
 * come only from bounded sets: the typed unions below, or reason codes from the fixed reason
 * table. Never put an address, a host name, a HELO or any other client text in a label:
 * `boundedLabel` turns anything that does not look like a code into `invalid`, and caps the
 * number of distinct values per label at MAX_VALUES_PER_LABEL (the rest become `other`).
 *
 * Adding a metric: declare it below (or in a sibling file) with `registers: [registry]`, give
 * it a typed helper, and, if its labels take codes, pass them through `boundedLabel`.
 *
 * Cluster aggregation, as verified in node_modules/prom-client/lib/cluster.js (15.1.3):
 * - The worker-side listener is NOT installed by requiring prom-client. It is installed by the
 *   first `new AggregatorRegistry()` in the process (`addListeners()` in its constructor): in a
 *   worker it adds `process.on('message')` answering 'prom-client:getMetricsReq'; in the master
 *   it adds `cluster.on('message')` collecting the answers.
 * - A worker answers with the registries given to `AggregatorRegistry.setRegistries()`, by
 *   default the global registry only. Moat uses its own registry, so this module sets it.
 * - `clusterMetrics()` asks every connected worker, sums values per metric name and label set
 *   (histogram buckets, sums and counts included) unless a metric names another `aggregator`,
 *   and fails the whole request after a fixed 5 s if any worker does not answer.
 * - The master's own registry is not part of the aggregate.
 *
 * LIMITATION: in cluster mode the master's own process metrics (its memory, CPU) are not
 * exported; only the workers' are, summed. The master handles no mail, so no Moat counter is
 * lost, but a leak in the master would not show on a dashboard.
 */

import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import {
  AggregatorRegistry, Counter, Gauge, Histogram, collectDefaultMetrics,
} from 'prom-client';

/** Moat's registry in this process. Register new metrics here, never in the global one. */
export const registry = new AggregatorRegistry();
AggregatorRegistry.setRegistries([registry]);

// The event-loop lag histogram samples every 10 ms by default; every 100 ms is enough for lag
// worth alerting on and cuts an idle gateway's wakeups from about 200 to about 55 a second.
collectDefaultMetrics({ register: registry, prefix: 'moat_', eventLoopMonitoringPrecision: 100 });

// prom-client names three gauges `..._total` (the totals of nodejs_active_{handles,requests,
// resources}{type}); Prometheus reserves that suffix for counters and `promtool check metrics`
// refuses them. The per-type gauges stay, and their sum is the same number.
for (const name of ['handles', 'requests', 'resources']) {
  registry.removeSingleMetric(`moat_nodejs_active_${name}_total`);
}

/** Distinct values one label may take before further new values are counted as `other`. */
export const MAX_VALUES_PER_LABEL = 200;

const LABEL_CODE = /^[a-z0-9][a-z0-9_.:-]{0,63}$/;
const seenLabelValues = new Map<string, Set<string>>();

/**
 * Returns `value` if it looks like a code and the label has room for it; otherwise `invalid`
 * (not a code) or `other` (the label already holds MAX_VALUES_PER_LABEL values).
 */
export function boundedLabel(labelKey: string, value: string): string {
  if (!LABEL_CODE.test(value)) return 'invalid';

  let seen = seenLabelValues.get(labelKey);
  if (seen === undefined) {
    seen = new Set();
    seenLabelValues.set(labelKey, seen);
  }
  if (seen.has(value)) return value;
  if (seen.size >= MAX_VALUES_PER_LABEL) return 'other';
  seen.add(value);
  return value;
}

// Connections.

export const CONNECTION_OUTCOMES = [
  'accepted',
  'refused_limit',
  'refused_proxy',
  'refused_early_talker',
  'refused_policy',
  'refused_draining',
] as const;
export type ConnectionOutcome = (typeof CONNECTION_OUTCOMES)[number];

const connectionsTotal = new Counter({
  name: 'moat_connections_total',
  help: 'SMTP connections received, by what Moat did with them.',
  labelNames: ['outcome'] as const,
  registers: [registry],
});
for (const outcome of CONNECTION_OUTCOMES) connectionsTotal.inc({ outcome }, 0);

const connectionsActive = new Gauge({
  name: 'moat_connections_active',
  help: 'SMTP connections open right now.',
  registers: [registry],
});

export function countConnection(outcome: ConnectionOutcome): void {
  connectionsTotal.inc({ outcome });
}

export function connectionOpened(): void {
  connectionsActive.inc();
}

export function connectionClosed(): void {
  connectionsActive.dec();
}

// Transactions, messages and recipients.

export const ACTIONS = ['deliver', 'tag', 'quarantine', 'reject', 'tempfail'] as const;
export type Action = (typeof ACTIONS)[number];

const transactionsTotal = new Counter({
  name: 'moat_transactions_total',
  help: 'SMTP transactions started (MAIL FROM accepted).',
  registers: [registry],
});

const messagesTotal = new Counter({
  name: 'moat_messages_total',
  help: 'Messages decided, by action and stable reason code.',
  labelNames: ['action', 'reason'] as const,
  registers: [registry],
});

const recipientsTotal = new Counter({
  name: 'moat_recipients_total',
  help: 'Recipients decided at RCPT or after, by action and stable reason code.',
  labelNames: ['action', 'reason'] as const,
  registers: [registry],
});

const decisionsTotal = new Counter({
  name: 'moat_decisions_total',
  help: 'Decision lines logged, by event (connection, recipient, message, delivery, ...), '
    + 'action and stable reason code: every refusal, whatever the phase.',
  labelNames: ['event', 'action', 'reason'] as const,
  registers: [registry],
});

export function countTransaction(): void {
  transactionsTotal.inc();
}

/** `reason` must be a code from the reason table, never text from the client. */
export function countMessage(action: Action, reason: string): void {
  messagesTotal.inc({ action, reason: boundedLabel('reason', reason) });
}

/** Called by logDecision for every decision line; the values are codes, never client text. */
export function countDecision(event: string, action: string, reason: string): void {
  decisionsTotal.inc({
    event: boundedLabel('event', event), action: boundedLabel('action', action),
    reason: boundedLabel('reason', reason),
  });
}

/** `reason` must be a code from the reason table, never text from the client. */
export function countRecipient(action: Action, reason: string): void {
  recipientsTotal.inc({ action, reason: boundedLabel('reason', reason) });
}

// The internal (downstream) mail server.

export type DownstreamOperation = 'connect' | 'deliver' | 'verify';
export type DownstreamOutcome = 'ok' | 'tempfail' | 'permfail' | 'timeout' | 'error';
export type DownstreamConnectionKind = 'new' | 'reused';

const downstreamSeconds = new Histogram({
  name: 'moat_downstream_seconds',
  help: 'Time spent on one operation with the internal mail server.',
  labelNames: ['operation', 'outcome'] as const,
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
  registers: [registry],
});

const downstreamConnectionsTotal = new Counter({
  name: 'moat_downstream_connections_total',
  help: 'Connections used for the internal mail server: opened new or reused from the pool.',
  labelNames: ['kind'] as const,
  registers: [registry],
});
for (const kind of ['new', 'reused'] as const) downstreamConnectionsTotal.inc({ kind }, 0);

export function observeDownstream(
  operation: DownstreamOperation, outcome: DownstreamOutcome, seconds: number,
): void {
  downstreamSeconds.observe({ operation, outcome }, seconds);
}

/** Starts a clock for one downstream operation; call the result once, with its outcome. */
export function startDownstreamTimer(
  operation: DownstreamOperation,
): (outcome: DownstreamOutcome) => void {
  const startedAt = process.hrtime.bigint();
  return (outcome) => {
    const seconds = Number(process.hrtime.bigint() - startedAt) / 1e9;
    observeDownstream(operation, outcome, seconds);
  };
}

export function countDownstreamConnection(kind: DownstreamConnectionKind): void {
  downstreamConnectionsTotal.inc({ kind });
}

// Message size and plugin failures.

const messageSizeBytes = new Histogram({
  name: 'moat_message_size_bytes',
  help: 'Size of message data received (after the final dot), in bytes.',
  buckets: [1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864],
  registers: [registry],
});

const hookErrorsTotal = new Counter({
  name: 'moat_hook_errors_total',
  help: 'Haraka hooks that ended in an unexpected error, by hook name.',
  labelNames: ['hook'] as const,
  registers: [registry],
});

export const COLLECTION_TRIGGERS = ['startup', 'idle', 'busy', 'high_water'] as const;

const memoryCollectionsTotal = new Counter({
  name: 'moat_memory_collections_total',
  help: 'Garbage collections Moat asked for, each followed by an allocator trim, by trigger.',
  labelNames: ['trigger'] as const,
  registers: [registry],
});
for (const trigger of COLLECTION_TRIGGERS) memoryCollectionsTotal.inc({ trigger }, 0);

/**
 * startup: after the listeners are up; idle: smtp.idle_collect; busy: smtp.busy_collect;
 * high_water: smtp.memory_high.
 */
export function countMemoryCollection(trigger: (typeof COLLECTION_TRIGGERS)[number]): void {
  memoryCollectionsTotal.inc({ trigger });
}

export function observeMessageSize(bytes: number): void {
  messageSizeBytes.observe(bytes);
}

/**
 * Creates a hook's error series at 0 when the hook is registered, so the first error is an
 * increase Prometheus sees (a series born at 1 shows no increase, and alerts would miss it).
 */
export function declareHook(hook: string): void {
  hookErrorsTotal.inc({ hook: boundedLabel('hook', hook) }, 0);
}

/** `hook` is a Haraka hook name such as `rcpt` or `data_post`. */
export function countHookError(hook: string): void {
  hookErrorsTotal.inc({ hook: boundedLabel('hook', hook) });
}

// Build information: one series with value 1. Aggregated with `first` so that N workers do
// not report 1 * N.

const buildInfo = new Gauge({
  name: 'moat_build_info',
  help: 'Always 1; the labels tell which Moat and which Node.js are running.',
  labelNames: ['version', 'node'] as const,
  aggregator: 'first',
  registers: [registry],
});
buildInfo.set({ version: readMoatVersion(), node: process.version }, 1);

/** Reads `version` from Moat's package.json, found by walking up from this file. */
function readMoatVersion(): string {
  let folder = __dirname;
  for (let level = 0; level < 5; level++) {
    try {
      const manifest = JSON.parse(readFileSync(join(folder, 'package.json'), 'utf8'));
      if (manifest.name === 'moat' && typeof manifest.version === 'string') {
        return manifest.version;
      }
    } catch {
      // No readable package.json here: keep walking up.
    }
    folder = dirname(folder);
  }
  return 'unknown';
}
