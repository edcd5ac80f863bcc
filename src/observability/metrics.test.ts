/*
 * Moat's metrics: names follow the conventions, helpers move the right series, labels stay
 * bounded, and (when promtool is installed) the exposition passes `promtool check metrics`.
 */

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';

import {
  MAX_VALUES_PER_LABEL, boundedLabel, connectionClosed, connectionOpened, countConnection,
  countDecision, countDownstreamConnection, countHookError, countMessage, countRecipient,
  countTransaction, declareHook,
  observeDownstream, observeMessageSize, registry, startDownstreamTimer,
} from './metrics';

/** Label names that would carry client data or unbounded text. */
const FORBIDDEN_LABELS = ['ip', 'address', 'client', 'helo', 'from', 'to', 'sender', 'recipient',
  'rcpt', 'host', 'domain', 'subject', 'message_id', 'text', 'error'];

async function value(name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = await registry.getSingleMetric(name)?.get();
  assert.ok(metric, `metric ${name} exists`);
  const wanted = Object.entries(labels);
  const found = metric.values.find((sample) =>
    wanted.every(([key, expected]) => sample.labels[key] === expected)
    && Object.keys(sample.labels).length === wanted.length);
  return found?.value ?? 0;
}

test('every metric is prefixed, counters end in _total, units are base units', async () => {
  const metrics = await registry.getMetricsAsJSON();
  const moatOwn = metrics.filter((metric) => !/^moat_(process|nodejs)_/.test(metric.name));
  assert.ok(moatOwn.length >= 10, 'Moat metrics are registered');

  for (const metric of metrics) {
    const type = String(metric.type);
    assert.match(metric.name, /^moat_[a-z0-9_]+$/, metric.name);
    if (type === 'counter') assert.match(metric.name, /_total$/, metric.name);
    assert.doesNotMatch(metric.name, /_(ms|milliseconds|kb|mb|kilobytes|megabytes)(_|$)/);
  }
  // prom-client's own default gauges include `nodejs_active_resources_total`, so this rule is
  // applied to Moat's metrics only.
  for (const metric of moatOwn) {
    if (String(metric.type) !== 'counter') assert.doesNotMatch(metric.name, /_total$/);
    if (String(metric.type) === 'histogram') {
      assert.match(metric.name, /_(seconds|bytes)$/, metric.name);
    }
    for (const sample of metric.values) {
      for (const label of Object.keys(sample.labels)) {
        assert.ok(!FORBIDDEN_LABELS.includes(label), `${metric.name} has label ${label}`);
      }
    }
  }
});

test('the brief\'s metrics all exist with their types', async () => {
  const types = new Map((await registry.getMetricsAsJSON()).map((m) => [m.name, String(m.type)]));
  const expected: Array<[string, string]> = [
    ['moat_connections_total', 'counter'], ['moat_connections_active', 'gauge'],
    ['moat_transactions_total', 'counter'], ['moat_messages_total', 'counter'],
    ['moat_recipients_total', 'counter'], ['moat_downstream_seconds', 'histogram'],
    ['moat_downstream_connections_total', 'counter'], ['moat_message_size_bytes', 'histogram'],
    ['moat_hook_errors_total', 'counter'], ['moat_build_info', 'gauge'],
    ['moat_process_cpu_user_seconds_total', 'counter'], ['moat_decisions_total', 'counter'],
  ];
  for (const [name, type] of expected) assert.equal(types.get(name), type, name);
});

test('connection outcomes start at zero and count', async () => {
  assert.equal(await value('moat_connections_total', { outcome: 'refused_proxy' }), 0);
  countConnection('refused_proxy');
  countConnection('refused_proxy');
  assert.equal(await value('moat_connections_total', { outcome: 'refused_proxy' }), 2);

  const before = await value('moat_connections_active');
  connectionOpened();
  connectionOpened();
  connectionClosed();
  assert.equal(await value('moat_connections_active'), before + 1);
});

test('transactions, messages and recipients count by action and reason', async () => {
  countTransaction();
  countMessage('reject', 'virus.found');
  countRecipient('tempfail', 'downstream.unavailable');
  countRecipient('tempfail', 'downstream.unavailable');

  assert.equal(await value('moat_transactions_total'), 1);
  assert.equal(await value('moat_messages_total', { action: 'reject', reason: 'virus.found' }), 1);
  assert.equal(await value('moat_recipients_total',
    { action: 'tempfail', reason: 'downstream.unavailable' }), 2);
});

test('downstream histogram and connection kinds', async () => {
  observeDownstream('deliver', 'ok', 0.3);
  const done = startDownstreamTimer('verify');
  done('permfail');
  countDownstreamConnection('reused');

  const text = await registry.metrics();
  assert.match(text,
    /^moat_downstream_seconds_count\{operation="deliver",outcome="ok"\} 1$/m);
  assert.match(text,
    /^moat_downstream_seconds_count\{operation="verify",outcome="permfail"\} 1$/m);
  assert.equal(await value('moat_downstream_connections_total', { kind: 'reused' }), 1);
  assert.equal(await value('moat_downstream_connections_total', { kind: 'new' }), 0);
});

test('a registered hook has its error series at 0 before any error', async () => {
  declareHook('helo');
  assert.match(await registry.metrics(), /^moat_hook_errors_total\{hook="helo"\} 0$/m);
  countDecision('connection', 'reject', 'dnsbl-listed');
  assert.equal(await value('moat_decisions_total',
    { event: 'connection', action: 'reject', reason: 'dnsbl-listed' }), 1);
});

test('message size and hook errors', async () => {
  observeMessageSize(5000);
  countHookError('data_post');
  const text = await registry.metrics();
  assert.match(text, /^moat_message_size_bytes_bucket\{le="4096"\} 0$/m);
  assert.match(text, /^moat_message_size_bytes_bucket\{le="16384"\} 1$/m);
  assert.equal(await value('moat_hook_errors_total', { hook: 'data_post' }), 1);
});

test('build info is a single series with value 1', async () => {
  const info = await registry.getSingleMetric('moat_build_info')!.get();
  assert.equal(info.values.length, 1);
  assert.equal(info.values[0]!.value, 1);
  assert.equal(info.values[0]!.labels.node, process.version);
  assert.match(String(info.values[0]!.labels.version), /^\d+\.\d+\.\d+/);
});

test('client text in a label becomes "invalid"', async () => {
  countMessage('reject', 'Evil\r\n<script>');
  countHookError('alice@example.com');
  assert.equal(await value('moat_messages_total', { action: 'reject', reason: 'invalid' }), 1);
  assert.equal(await value('moat_hook_errors_total', { hook: 'invalid' }), 1);
  assert.equal(boundedLabel('reason', 'x'.repeat(65)), 'invalid');
  assert.equal(boundedLabel('reason', 'dnsbl.listed'), 'dnsbl.listed');
});

test('a label holds at most MAX_VALUES_PER_LABEL distinct values; the rest are "other"', () => {
  for (let index = 0; index < MAX_VALUES_PER_LABEL; index++) {
    assert.equal(boundedLabel('test_cap', `code_${index}`), `code_${index}`);
  }
  assert.equal(boundedLabel('test_cap', 'one_too_many'), 'other');
  assert.equal(boundedLabel('test_cap', 'code_7'), 'code_7', 'known values keep counting');
});

test('promtool check metrics accepts the exposition', async (t) => {
  const text = await registry.metrics();
  const checked = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  if ((checked.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') {
    t.skip('promtool is not installed (Debian package "prometheus"); names checked above only');
    return;
  }
  assert.equal(checked.status, 0, `promtool said:\n${checked.stdout}${checked.stderr}`);
});
