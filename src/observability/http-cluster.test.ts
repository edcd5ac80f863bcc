/*
 * /metrics in a cluster: two real node cluster workers record metrics, the master's endpoint
 * serves their sums. Also: a worker that does not answer makes /metrics say 503.
 */

import assert from 'node:assert/strict';
import cluster, { type Worker } from 'node:cluster';
import { once } from 'node:events';
import { join } from 'node:path';
import { afterEach, test } from 'node:test';

import { setLogSink } from './decision-log';
import { startMetricsServer, type MetricsServer } from './http';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

let workers: Worker[] = [];
let server: MetricsServer | undefined;

cluster.setupPrimary({ exec: join(__dirname, 'fixtures', 'cluster-worker.js'), execArgv: [] });

async function forkWorker(env: Record<string, string>): Promise<Worker> {
  const worker = cluster.fork(env);
  workers.push(worker);
  const [message] = await once(worker, 'message');
  assert.equal(message.fixture, 'ready');
  return worker;
}

async function startServer(): Promise<string> {
  server = await startMetricsServer({
    host: '127.0.0.1', port: 0, readiness: async () => ({ ready: true, checks: {} }),
  });
  return `http://127.0.0.1:${server.address.port}`;
}

function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) continue;
    const labels: Record<string, string> = {};
    for (const pair of (match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
      labels[pair[1]!] = pair[2]!;
    }
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return samples;
}

function valueOf(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const found = samples.filter((sample) => sample.name === name
    && Object.entries(labels).every(([key, expected]) => sample.labels[key] === expected));
  assert.equal(found.length, 1, `one sample ${name} ${JSON.stringify(labels)}`);
  return found[0]!.value;
}

afterEach(async () => {
  await server?.close();
  server = undefined;
  await Promise.all(workers.map(async (worker) => {
    if (worker.isDead()) return;
    const exited = once(worker, 'exit');
    worker.kill();
    await exited;
  }));
  workers = [];
});

test('the master sums counters, gauges and histograms over two workers', async () => {
  await forkWorker({ MOAT_FIXTURE_SHARE: '1' });
  await forkWorker({ MOAT_FIXTURE_SHARE: '2' });
  const base = await startServer();

  const response = await fetch(`${base}/metrics`);
  assert.equal(response.status, 200);
  const samples = parseExposition(await response.text());

  // Counters: 1 + 2 deliveries.
  assert.equal(valueOf(samples, 'moat_messages_total', { action: 'deliver', reason: 'clean' }), 3);

  // Histogram: each worker saw `share` messages of 1000 bytes and one of 100000 bytes.
  assert.equal(valueOf(samples, 'moat_message_size_bytes_count'), 5);
  assert.equal(valueOf(samples, 'moat_message_size_bytes_sum'), 3 * 1000 + 2 * 100_000);
  assert.equal(valueOf(samples, 'moat_message_size_bytes_bucket', { le: '1024' }), 3);
  assert.equal(valueOf(samples, 'moat_message_size_bytes_bucket', { le: '65536' }), 3);
  assert.equal(valueOf(samples, 'moat_message_size_bytes_bucket', { le: '262144' }), 5);
  assert.equal(valueOf(samples, 'moat_message_size_bytes_bucket', { le: '+Inf' }), 5);
  assert.equal(valueOf(samples, 'moat_downstream_seconds_count',
    { operation: 'deliver', outcome: 'ok' }), 2);

  // Gauges: summed, except build info which is taken from the first worker.
  assert.equal(valueOf(samples, 'moat_connections_active'), 2);
  assert.equal(valueOf(samples, 'moat_build_info'), 1);

  // The workers' default process metrics come through with the prefix.
  assert.ok(valueOf(samples, 'moat_process_resident_memory_bytes') > 0);
});

test('a worker that does not answer makes /metrics answer 503, not hang', async () => {
  await forkWorker({ MOAT_FIXTURE_SHARE: '1' });
  await forkWorker({ MOAT_FIXTURE_SHARE: '1', MOAT_FIXTURE_MUTE: '1' });
  const base = await startServer();

  // prom-client gives up after its fixed 5 s.
  const logged: string[] = [];
  setLogSink((line) => logged.push(line));
  try {
    const response = await fetch(`${base}/metrics`);
    assert.equal(response.status, 503);
    assert.match(await response.text(), /a worker did not answer/);
  } finally {
    setLogSink(null);
  }
  assert.equal(logged.length, 1);
  assert.deepEqual(JSON.parse(logged[0]!).workers, 2);
});

test('once the workers are gone, the local registry is served again', async () => {
  const base = await startServer();
  const response = await fetch(`${base}/metrics`);
  assert.equal(response.status, 200);
  const samples = parseExposition(await response.text());
  assert.equal(valueOf(samples, 'moat_build_info'), 1);
  assert.equal(valueOf(samples, 'moat_connections_active'), 0, 'not the workers\' sum of 2');
  assert.equal(samples.filter((sample) => sample.name === 'moat_messages_total').length, 0,
    'the master itself decided no message');
});
