/*
 * Renders docs/metrics.md from the registries and the catalogue (./catalogue.ts), so the
 * document lists exactly what /metrics serves: `node dist/src/observability/metrics-doc.js >
 * docs/metrics.md`. A test (./catalogue.test.ts) checks the shipped file is current.
 *
 * Loading this module loads every metrics module (METRIC_MODULES), which registers them all.
 */

import { CATALOGUE, LABEL_VALUE_CAP, PROCESS_METRIC, type LabelValues } from './catalogue';
import { registry } from './metrics';
import './metrics-auth';
import './metrics-checks';
import './metrics-dns';
import { healthRegistry } from './metrics-health';
import './metrics-quarantine';
import './metrics-ratelimit';
import './metrics-reputation';
import './metrics-rules';
import './metrics-scan';

/** The files that define metrics; a test checks no other metrics-*.ts exists unlisted. */
export const METRIC_MODULES = [
  'metrics', 'metrics-auth', 'metrics-checks', 'metrics-dns', 'metrics-health',
  'metrics-quarantine', 'metrics-ratelimit', 'metrics-reputation', 'metrics-rules',
  'metrics-scan',
];

const TABLE_HEAD = '| Metric | Type | Labels | Meaning |';
const TABLE_RULE = '|---|---|---|---|';

export interface RegisteredMetric {
  name: string;
  type: string;
  help: string;
  labels: string[];
}

/** Every metric of both registries, without collecting values (no probe runs). */
export function registeredMetrics(): RegisteredMetric[] {
  return [...registry.getMetricsAsArray(), ...healthRegistry.getMetricsAsArray()]
    .map((metric) => {
      const fields = metric as unknown as {
        name: string; help: string; type: string; labelNames?: string[];
      };
      return {
        name: fields.name, type: fields.type, help: fields.help,
        labels: [...(fields.labelNames ?? [])],
      };
    });
}

export function renderMetricsDoc(): string {
  const byName = new Map(registeredMetrics().map((metric) => [metric.name, metric]));
  const out = [
    '# Metrics',
    '',
    'Every metric Moat serves on `/metrics` (`MOAT_METRICS_LISTEN`, default `127.0.0.1:9325`).',
    'This file is generated from the code (`src/observability/catalogue.ts` and the registries,',
    'by `src/observability/metrics-doc.ts`); do not edit it by hand. Dashboards are in',
    '`grafana/`, alert rules in `prometheus/moat-alerts.yml`, and what to do when one fires in',
    '[runbook.md](runbook.md).',
    '',
    'Conventions: every name starts with `moat_`; counters end in `_total`; times are in',
    'seconds and sizes in bytes (`_seconds`, `_bytes`); `_info` gauges are 1 and carry their',
    'facts in labels. Labels take values from bounded sets only, as listed: never an address,',
    'a host name, a HELO or any other text from a client. Codes from configuration or rule',
    `files are bounded too: a label holds at most ${LABEL_VALUE_CAP} distinct values, the rest`,
    'count as `other`, and a value that does not look like a code counts as `invalid`.',
    '',
    'With cluster workers (`MOAT_WORKERS`), the master serves the sum over the workers unless a',
    'note says otherwise; the dependency probes run once per node, in the master.',
    '',
  ];

  for (const section of CATALOGUE) {
    out.push(`## ${section.title}`, '', TABLE_HEAD, TABLE_RULE);
    for (const entry of section.metrics) {
      const metric = byName.get(entry.name);
      const type = metric?.type ?? 'not registered';
      const help = metric?.help ?? '';
      const labels = Object.entries(entry.labels ?? {})
        .map(([label, values]) => `\`${label}\`: ${describeValues(values)}`).join('<br>');
      const meaning = [help, entry.note ?? ''].filter(Boolean).join(' ');
      out.push(`| \`${entry.name}\` | ${type} | ${labels || '—'} | ${escapeCell(meaning)} |`);
    }
    out.push('');
  }

  out.push(
    '## Process and Node.js (prom-client defaults)',
    '',
    'Collected by prom-client in every process, with the `moat_` prefix. In cluster mode they',
    'are the workers\' (summed; the event-loop lags averaged), not the master\'s.',
    '',
    TABLE_HEAD,
    TABLE_RULE,
  );
  const processMetrics = [...byName.values()].filter((metric) => PROCESS_METRIC.test(metric.name));
  for (const metric of processMetrics) {
    const labels = metric.labels.map((label) => `\`${label}\``).join(', ');
    const meaning = escapeCell(metric.help);
    out.push(`| \`${metric.name}\` | ${metric.type} | ${labels || '—'} | ${meaning} |`);
  }
  out.push('');
  return out.join('\n');
}

function describeValues(values: LabelValues): string {
  if (typeof values === 'string') return escapeCell(values);
  return values.map((value) => `\`${value}\``).join(', ');
}

function escapeCell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

if (require.main === module) process.stdout.write(renderMetricsDoc());
