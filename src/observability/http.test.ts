/*
 * The monitoring endpoint in a single process: routes, /readyz deadlines, listen failures.
 * Aggregation across cluster workers is tested in http-cluster.test.ts.
 */

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { countMessage } from './metrics';
import {
  MetricsServerError, readinessFromChecks, startMetricsServer, type MetricsServer, type Readiness,
} from './http';

let readiness: () => Promise<Readiness> = async () => ({ ready: true, checks: {} });
let server: MetricsServer;
let base: string;

before(async () => {
  server = await startMetricsServer({
    host: '127.0.0.1', port: 0, readiness: () => readiness(), readinessDeadlineMs: 200,
  });
  base = `http://127.0.0.1:${server.address.port}`;
});

after(async () => {
  await server.close();
});

test('/healthz answers 200 ok', async () => {
  const response = await fetch(`${base}/healthz`);
  assert.equal(response.status, 200);
  assert.equal(await response.text(), 'ok\n');
});

test('/metrics serves the local registry in Prometheus text format', async () => {
  countMessage('quarantine', 'spam.high');
  const response = await fetch(`${base}/metrics?ignored=1`);
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  const text = await response.text();
  assert.match(text, /^moat_messages_total\{action="quarantine",reason="spam\.high"\} 1$/m);
  assert.match(text, /^moat_build_info\{version="[^"]+",node="v\d+/m);
  assert.match(text, /^moat_process_resident_memory_bytes /m);
});

test('unknown paths get 404, other methods 405', async () => {
  assert.equal((await fetch(`${base}/`)).status, 404);
  assert.equal((await fetch(`${base}/metrics/extra`)).status, 404);
  assert.equal((await fetch(`${base}/../etc/passwd`)).status, 404);

  const posted = await fetch(`${base}/metrics`, { method: 'POST', body: 'x' });
  assert.equal(posted.status, 405);
  assert.equal(posted.headers.get('allow'), 'GET, HEAD');
});

test('HEAD answers without a body', async () => {
  const response = await fetch(`${base}/healthz`, { method: 'HEAD' });
  assert.equal(response.status, 200);
  assert.equal(await response.text(), '');
});

test('/readyz is 200 with the checks when every check passes', async () => {
  readiness = readinessFromChecks({
    redis: async () => ({ ok: true, detail: 'PONG' }),
    downstream: async () => ({ ok: true, detail: '220 reached' }),
  }, 100);

  const response = await fetch(`${base}/readyz`);
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
  assert.deepEqual(await response.json(), { ready: true, checks: {
    redis: { ok: true, detail: 'PONG' }, downstream: { ok: true, detail: '220 reached' },
  } });
});

test('/readyz is 503 when one check fails; the others still report', async () => {
  readiness = readinessFromChecks({
    redis: async () => ({ ok: true, detail: 'PONG' }),
    clamd: async () => ({ ok: false, detail: 'connection refused' }),
  }, 100);

  const response = await fetch(`${base}/readyz`);
  assert.equal(response.status, 503);
  const body = await response.json() as any;
  assert.equal(body.ready, false);
  assert.deepEqual(body.checks.redis, { ok: true, detail: 'PONG' });
  assert.deepEqual(body.checks.clamd, { ok: false, detail: 'connection refused' });
});

test('/readyz is 503 when a check hangs or throws', async () => {
  readiness = readinessFromChecks({
    spamd: () => new Promise(() => {}),
    dns: async () => { throw new Error('SERVFAIL'); },
    redis: async () => ({ ok: true, detail: 'PONG' }),
  }, 50);

  const response = await fetch(`${base}/readyz`);
  assert.equal(response.status, 503);
  const body = await response.json() as any;
  assert.deepEqual(body.checks.spamd, { ok: false, detail: 'no answer within 50 ms' });
  assert.deepEqual(body.checks.dns, { ok: false, detail: 'failed: SERVFAIL' });
  assert.equal(body.checks.redis.ok, true);
});

test('/readyz is 503 when the readiness function itself hangs or throws', async () => {
  readiness = () => new Promise(() => {});
  const hung = await fetch(`${base}/readyz`);
  assert.equal(hung.status, 503);
  assert.deepEqual(await hung.json(), { ready: false, checks: {
    readiness: { ok: false, detail: 'no answer within 200 ms' },
  } });

  readiness = async () => { throw new Error('state unknown'); };
  const failed = await fetch(`${base}/readyz`);
  assert.equal(failed.status, 503);
  assert.equal(((await failed.json()) as any).checks.readiness.detail, 'failed: state unknown');
});

test('/readyz says 503 when the readiness function reports not ready', async () => {
  readiness = async () => ({ ready: false, checks: {
    draining: { ok: false, detail: 'SIGTERM received' },
  } });
  assert.equal((await fetch(`${base}/readyz`)).status, 503);
});

test('an address already in use is a MetricsServerError naming it', async () => {
  await assert.rejects(
    startMetricsServer({ host: '127.0.0.1', port: server.address.port, readiness }),
    (error: unknown) => {
      assert.ok(error instanceof MetricsServerError);
      assert.equal(error.port, server.address.port);
      assert.match(error.message, /127\.0\.0\.1:\d+: .*EADDRINUSE/);
      return true;
    },
  );
});
