/*
 * Dependency probes behind moat_dependency_up: each configured dependency gets 1 or 0 at a
 * scrape, a probe that throws or hangs counts as down, concurrent scrapes share one round,
 * state changes are logged once, and /metrics serves the gauges next to the main registry.
 */

import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';

import { setLogSink } from './decision-log';
import { startMetricsServer } from './http';
import { healthRegistry, probeAll, setDependencyProbes, type ProbeResult } from './metrics-health';

const UP: ProbeResult = { ok: true, detail: 'answers' };

async function gauge(name: string): Promise<Record<string, number>> {
  const metric = await healthRegistry.getSingleMetric(name)!.get();
  return Object.fromEntries(metric.values.map((sample) => [String(sample.labels['dependency']),
    sample.value]));
}

function captureLog(): { lines: Array<Record<string, unknown>>; restore: () => void } {
  const lines: Array<Record<string, unknown>> = [];
  const previous = setLogSink((line) => lines.push(JSON.parse(line) as Record<string, unknown>));
  return { lines, restore: () => setLogSink(previous) };
}

afterEach(() => setDependencyProbes({}));

test('configured dependencies get 1 when they answer and 0 when they do not', async () => {
  setDependencyProbes({
    downstream: async () => UP,
    clamd: async () => ({ ok: false, detail: 'connection refused' }),
    redis: async () => { throw new Error('socket closed'); },
  });
  const log = captureLog();
  try {
    assert.deepEqual(await gauge('moat_dependency_up'), { downstream: 1, clamd: 0, redis: 0 });
  } finally {
    log.restore();
  }
  const seconds = await gauge('moat_dependency_probe_seconds');
  assert.deepEqual(Object.keys(seconds).sort(), ['clamd', 'downstream', 'redis']);
  for (const value of Object.values(seconds)) assert.ok(value >= 0 && value < 60);

  // What is not configured has no series at all.
  assert.equal((await gauge('moat_dependency_up'))['spamd'], undefined);
  const warned = log.lines.filter((line) => line['level'] === 'warn');
  assert.deepEqual(warned.map((line) => line['dependency']).sort(), ['clamd', 'redis']);
  assert.match(String(warned.find((line) => line['dependency'] === 'redis')?.['detail']),
    /probe failed: socket closed/);
});

test('a probe that never answers is down once the deadline passes', async () => {
  setDependencyProbes({ spamd: () => new Promise<ProbeResult>(() => undefined) },
    { deadlineMs: 30 });
  const log = captureLog();
  try {
    assert.deepEqual(await gauge('moat_dependency_up'), { spamd: 0 });
  } finally {
    log.restore();
  }
  assert.match(String(log.lines[0]?.['detail']), /no answer within 30 ms/);
});

test('concurrent scrapes share one round of probes', async () => {
  let calls = 0;
  setDependencyProbes({ downstream: async () => { calls += 1; return UP; } });
  await Promise.all([healthRegistry.metrics(), healthRegistry.metrics(), probeAll()]);
  assert.equal(calls, 1);
});

test('a change of state is logged once each way', async () => {
  let answer: ProbeResult = UP;
  setDependencyProbes({ clamd: async () => answer }, { reuseMs: 0 });
  const log = captureLog();
  try {
    await probeAll();
    answer = { ok: false, detail: 'refused' };
    await probeAll();
    await probeAll();
    answer = UP;
    await probeAll();
    await probeAll();
  } finally {
    log.restore();
  }
  const changes = log.lines.filter((line) => line['component'] === 'health')
    .map((line) => `${String(line['level'])}: ${String(line['msg'])}`);
  assert.deepEqual(changes, ['warn: clamd does not answer', 'info: clamd answers again']);
  assert.deepEqual(await gauge('moat_dependency_up'), { clamd: 1 });
});

test('/metrics serves the dependency gauges after the main registry', async () => {
  setDependencyProbes({ maildir: async () => UP });
  const server = await startMetricsServer({
    host: '127.0.0.1', port: 0, readiness: async () => ({ ready: true, checks: {} }),
  });
  try {
    const response = await fetch(`http://127.0.0.1:${server.address.port}/metrics`);
    const text = await response.text();
    assert.equal(response.status, 200);
    assert.match(text, /^moat_dependency_up\{dependency="maildir"\} 1$/m);
    assert.match(text, /^# TYPE moat_connections_total counter$/m);
    assert.ok(text.indexOf('moat_connections_total') < text.indexOf('moat_dependency_up'));
  } finally {
    await server.close();
  }
});
