/*
 * The metrics catalogue: every metric Moat exports, the values each of its labels can take,
 * and what an operator reads from it. docs/metrics.md is rendered from this table and from the
 * registries themselves (./metrics-doc.ts), and a test fails when a registered metric is
 * missing here, when its type or labels differ, or when the shipped document is stale.
 *
 * Label values are listed from the same constants the code counts with wherever such a
 * constant exists, so the catalogue cannot drift from them. A label whose values are codes
 * from elsewhere (reason codes, rule ids, zone names) says where they come from; all of them
 * pass through boundedLabel (./metrics.ts), so a label never holds more than
 * MAX_VALUES_PER_LABEL values and never client text.
 */

import { LIMIT_KINDS } from '../ratelimit/limits';
import { FINAL_ACTIONS } from '../rules/schema';
import {
  ACTIONS, COLLECTION_TRIGGERS, CONNECTION_OUTCOMES, MAX_VALUES_PER_LABEL,
} from './metrics';
import { CHECKS } from './metrics-checks';
import { DNS_OUTCOMES, DNS_TYPES } from './metrics-dns';
import { DEPENDENCIES } from './metrics-health';
import { QUARANTINE_EVENTS, QUARANTINE_STATUSES } from './metrics-quarantine';

/** A label's values: the list itself, or where they come from. */
export type LabelValues = readonly string[] | string;

export interface MetricEntry {
  name: string;
  labels?: Record<string, LabelValues>;
  /** What to read from it beyond its help text, and how it is summed over cluster workers. */
  note?: string;
}

export interface CatalogueSection {
  title: string;
  metrics: MetricEntry[];
}

/** prom-client's process and Node.js metrics, documented as one group from the registry. */
export const PROCESS_METRIC = /^moat_(process|nodejs)_/;

const REASONS = 'a reason code from docs/reasons.md';
const AUTH_RESULTS = [
  'pass', 'fail', 'softfail', 'neutral', 'none', 'temperror', 'permerror', 'policy',
];
const SCAN_OUTCOMES = [
  'clean', 'found', 'heuristic', 'spam', 'ham', 'error', 'timeout', 'too-large', 'skip',
];
const STORE_FAILURES = ['timeout', 'error'];

export const CATALOGUE: CatalogueSection[] = [
  {
    title: 'Connections and transactions',
    metrics: [
      { name: 'moat_connections_total', labels: { outcome: CONNECTION_OUTCOMES },
        note: 'Each connection is counted once: `accepted` only after every connect-time '
          + 'check (limits, DNS lists, connection rate limits) let it through; '
          + 'moat_decisions_total{event="connection"} has each refusal with its reason.' },
      { name: 'moat_connections_active' },
      { name: 'moat_transactions_total' },
      { name: 'moat_message_size_bytes' },
    ],
  },
  {
    title: 'Verdicts and refusals',
    metrics: [
      { name: 'moat_messages_total', labels: { action: ACTIONS, reason: REASONS },
        note: 'One count per message that reached the verdict step (end of DATA) or was refused '
          + 'at MAIL.' },
      { name: 'moat_recipients_total', labels: { action: ACTIONS, reason: REASONS } },
      { name: 'moat_decisions_total',
        labels: {
          event: ['connection', 'recipient', 'message', 'delivery', 'hook-error', 'shutdown'],
          action: ['accept', ...ACTIONS],
          reason: REASONS,
        },
        note: 'Counted by the decision log itself, so it matches the JSON lines one for one: the '
          + 'source of "refusals by reason" at every phase.' },
    ],
  },
  {
    title: 'Check latency',
    metrics: [
      { name: 'moat_check_duration_seconds', labels: { check: CHECKS },
        note: 'See src/observability/metrics-checks.ts for what each check\'s clock covers. '
          + 'DNS, Redis and the internal server have their own histograms below.' },
    ],
  },
  {
    title: 'Sender authentication',
    metrics: [
      { name: 'moat_auth_results_total',
        labels: { check: ['spf', 'dkim', 'arc', 'dmarc', 'from'], result: AUTH_RESULTS },
        note: 'DKIM counts once per signature.' },
    ],
  },
  {
    title: 'DNS',
    metrics: [
      { name: 'moat_dns_lookups_total',
        labels: { type: [...DNS_TYPES, 'other'], outcome: DNS_OUTCOMES } },
      { name: 'moat_dns_cache_total', labels: { result: ['hit', 'miss', 'coalesced'] },
        note: 'Hit ratio: hit / (hit + miss + coalesced).' },
      { name: 'moat_dns_query_seconds',
        labels: { type: [...DNS_TYPES, 'other'], outcome: DNS_OUTCOMES } },
    ],
  },
  {
    title: 'DNS blocklists and allowlists',
    metrics: [
      { name: 'moat_dnsbl_lookups_total',
        labels: {
          zone: 'a zone from reputation.zones', outcome: ['listed', 'clean', 'error', 'timeout'],
        },
        note: 'Series exist for every configured zone from start-up, at 0.' },
      { name: 'moat_dnsbl_checks_total',
        labels: { result: ['refused', 'passed', 'skipped_internal', 'skipped_allowlist'] } },
    ],
  },
  {
    title: 'Malware and spam scanning',
    metrics: [
      { name: 'moat_scans_total',
        labels: { scanner: ['clamd', 'clamd-part', 'spamd'], outcome: SCAN_OUTCOMES } },
      { name: 'moat_unscanned_total',
        labels: { scanner: ['clamd', 'spamd'], why: ['failure', 'not-configured'] },
        note: 'Anything above 0 means mail went through without that scanner\'s verdict.' },
      { name: 'moat_mime_problems_total', labels: { action: ['refused', 'logged'] } },
    ],
  },
  {
    title: 'Rate limits',
    metrics: [
      { name: 'moat_ratelimit_hits_total',
        labels: { limit: LIMIT_KINDS.map((kind) => kind.name) } },
      { name: 'moat_ratelimit_fail_open_total',
        labels: { limit: LIMIT_KINDS.map((kind) => kind.name), kind: STORE_FAILURES } },
      { name: 'moat_ratelimit_store_errors_total',
        labels: { operation: ['take', 'renew', 'release'], kind: STORE_FAILURES } },
      { name: 'moat_ratelimit_store_seconds',
        labels: { event: ['connect', 'mail', 'rcpt'], store: ['redis', 'redis-cluster', 'memory'] },
        note: 'This is the latency of the rate-limit checks: one observation per SMTP event that '
          + 'had a limit to check.' },
    ],
  },
  {
    title: 'Content rules',
    metrics: [
      { name: 'moat_rule_hits_total',
        labels: {
          rule: 'a rule id from the rule files', mode: ['enforce', 'monitor'],
          action: [...FINAL_ACTIONS, 'tag', 'other'],
        } },
      { name: 'moat_rules_reloads_total', labels: { outcome: ['loaded', 'refused'] } },
      { name: 'moat_rules_set_info', labels: { version: 'hash of the rule and list files in use' },
        note: 'One series at a time; the maximum over workers.' },
      { name: 'moat_rules_loaded', labels: { state: ['active', 'disabled', 'expired'] },
        note: 'The maximum over workers.' },
      { name: 'moat_rule_side_effects_total',
        labels: { kind: ['copy', 'notify'], outcome: ['sent', 'failed'] } },
    ],
  },
  {
    title: 'Quarantine',
    metrics: [
      { name: 'moat_quarantine_messages', labels: { status: QUARANTINE_STATUSES },
        note: 'Recounted every 30 s and moved at once on each store; the maximum over workers '
          + '(they share the folder).' },
      { name: 'moat_quarantine_bytes', labels: { status: QUARANTINE_STATUSES },
        note: 'As moat_quarantine_messages.' },
      { name: 'moat_quarantine_stored_total' },
      { name: 'moat_quarantine_store_failures_total' },
      { name: 'moat_quarantine_events_total', labels: { event: QUARANTINE_EVENTS },
        note: 'Read back from events.log, which `moat quarantine` writes; the maximum over '
          + 'workers.' },
    ],
  },
  {
    title: 'Internal mail server',
    metrics: [
      { name: 'moat_downstream_seconds',
        labels: {
          operation: ['connect', 'deliver', 'verify'],
          outcome: ['ok', 'tempfail', 'permfail', 'timeout', 'error'],
        },
        note: '`tempfail`/`permfail`: the server answered 4xx/5xx; `timeout`/`error`: it did '
          + 'not answer in time or could not be reached.' },
      { name: 'moat_downstream_connections_total', labels: { kind: ['new', 'reused'] } },
    ],
  },
  {
    title: 'Dependency health',
    metrics: [
      { name: 'moat_dependency_up', labels: { dependency: DEPENDENCIES },
        note: 'Probed when /metrics is scraped (src/observability/metrics-health.ts), once per '
          + 'node; only configured dependencies have a series.' },
      { name: 'moat_dependency_probe_seconds', labels: { dependency: DEPENDENCIES } },
    ],
  },
  {
    title: 'Process and build',
    metrics: [
      { name: 'moat_hook_errors_total',
        labels: { hook: 'a Haraka hook name (connect, rcpt, data_post, ...)' },
        note: 'Each one answered 451 4.3.0; any is a bug to report.' },
      { name: 'moat_memory_collections_total', labels: { trigger: COLLECTION_TRIGGERS },
        note: 'Each pauses the process for tens of milliseconds: `startup` once after '
          + 'start, `idle` when a process goes quiet after '
          + 'traffic (smtp.idle_collect), `busy` every smtp.busy_collect under traffic, '
          + '`high_water` when a busy process passes '
          + 'smtp.memory_high. `high_water` rising every second means the mark is below what '
          + 'the traffic needs (docs/operations.md, "Memory and the spool folder").' },
      { name: 'moat_build_info',
        labels: { version: 'package.json version', node: 'Node.js version' },
        note: 'In cluster mode, the first worker\'s answer.' },
    ],
  },
];

export function catalogueEntry(name: string): MetricEntry | undefined {
  for (const section of CATALOGUE) {
    const found = section.metrics.find((entry) => entry.name === name);
    if (found) return found;
  }
  return undefined;
}

/** For the document's conventions paragraph. */
export const LABEL_VALUE_CAP = MAX_VALUES_PER_LABEL;
