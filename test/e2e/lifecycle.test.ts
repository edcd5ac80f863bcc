/*
 * End to end: start-up, failures inside Moat, crashes and draining.
 *
 * - A bad setting stops start-up with exit code 2 and one line naming it.
 * - A check that throws answers 451 4.3.0; the worker lives on and the next message goes through.
 * - SIGKILL in the middle of DATA: the client never saw 250 and the internal server holds nothing.
 * - SIGTERM drains: a transaction in flight finishes, idle clients get 421, the process exits;
 *   /readyz answers 503 from the signal on, with one process and with cluster workers.
 * - With no internal server, mail lands in the local Maildir, fsynced, before the 250.
 * - A process gone quiet after traffic collects its garbage once (smtp.idle_collect) and trims
 *   the allocator; under traffic it does so every smtp.busy_collect; a busy process above
 *   smtp.memory_high collects, less and less often while that gives nothing back.
 */

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startDownstream } from '../harness/downstream';
import { REPO_ROOT, startGateway, type Gateway } from '../harness/gateway';
import { SmtpTalk, sendMail } from '../harness/smtp-talk';

const MAIN = join(REPO_ROOT, 'dist', 'src', 'runtime', 'main.js');

interface ReadyzAnswer {
  status: number;
  checks: Record<string, { ok: boolean; detail: string } | undefined>;
}

/** The /readyz answer of `gateway`. */
async function readyz(gateway: Gateway): Promise<ReadyzAnswer> {
  const { status, body } = await gateway.readyz();
  return { status, checks: (body['checks'] ?? {}) as ReadyzAnswer['checks'] };
}

async function openData(host: string, port: number): Promise<SmtpTalk> {
  const talk = await SmtpTalk.connect(host, port);
  await talk.expect(220);
  await talk.command('EHLO client.example.org');
  assert.equal((await talk.command('MAIL FROM:<alice@sender.example>')).code, 250);
  assert.equal((await talk.command('RCPT TO:<bob@example.com>')).code, 250);
  assert.equal((await talk.command('DATA')).code, 354);
  return talk;
}

test('an invalid setting stops start-up with exit 2 and one precise line', () => {
  const run = spawnSync(process.execPath, [MAIN], {
    env: { ...process.env, MOAT_ROOT: REPO_ROOT, MOAT_DOWNSTREAM: 'mail.example:99999' },
    encoding: 'utf8', timeout: 20_000,
  });
  assert.equal(run.status, 2);
  const lines = run.stderr.trim().split('\n');
  assert.equal(lines.length, 1, run.stderr);
  assert.match(lines[0] ?? '', new RegExp('^moat: configuration error: MOAT_DOWNSTREAM: '
    + 'downstream\\.address = "mail\\.example:99999": expected .*port'));
});

test('a failing check answers 451 4.3.0; the same worker then delivers the next '
  + 'message', async () => {
  const downstream = await startDownstream();
  // The fault fires for the first two messages only, inside the one gateway process.
  const gateway = await startGateway({
    env: { MOAT_DOWNSTREAM: downstream.address, MOAT_FAULT_INJECT: 'hook:data_post@2' },
  });
  try {
    const pid = gateway.daemon.child.pid;
    for (let attempt = 0; attempt < 2; attempt++) {
      const steps = await sendMail({ host: gateway.host, port: gateway.port,
        from: 'alice@sender.example', to: ['bob@example.com'],
        data: 'Subject: x\r\n\r\nbody\r\n' });
      const reply = steps.find((step) => step.step === 'message')?.reply;
      assert.equal(reply?.code, 451);
      assert.match(reply?.lines.join(' ') ?? '', /^4\.3\.0 /);
    }
    assert.equal(downstream.messages.length, 0);
    const errorLine = gateway.lines().find((line) => line['component'] === 'hook');
    assert.match(String(errorLine?.['msg']), /data_post failed/);

    // Same process, no restart: the next message goes through.
    assert.equal(gateway.daemon.running, true, 'the gateway process died');
    assert.equal(gateway.daemon.child.pid, pid);
    const steps = await sendMail({ host: gateway.host, port: gateway.port,
      from: 'alice@sender.example', to: ['bob@example.com'], data: 'Subject: y\r\n\r\nbody\r\n' });
    assert.equal(steps.find((step) => step.step === 'message')?.reply.code, 250);
    assert.equal((await downstream.waitForMessages(1)).length, 1);
    const metrics = await gateway.metrics();
    assert.match(metrics, /^moat_hook_errors_total\{hook="data_post"\} 2$/m);
  } finally {
    await gateway.stop();
    await downstream.stop();
  }
});

test('once the last connection has closed and smtp.idle_collect passed, the process '
  + 'collects garbage once, and not while a connection is open', async () => {
  const downstream = await startDownstream();
  const gateway = await startGateway({
    env: { MOAT_DOWNSTREAM: downstream.address, MOAT_DEBUG: 'runtime' },
    ini: '[smtp]\nidle_collect = 300ms\n',
  });
  const isCollection = (line: Record<string, unknown>): boolean =>
    line['msg'] === 'idle: garbage collected';
  try {
    const held = await SmtpTalk.connect(gateway.host, gateway.port);
    await held.expect(220);
    const steps = await sendMail({ host: gateway.host, port: gateway.port,
      from: 'alice@sender.example', to: ['bob@example.com'], data: 'Subject: idle\r\n\r\nb\r\n' });
    assert.equal(steps.find((step) => step.step === 'message')?.reply.code, 250);
    await sleep(1000);
    assert.equal(gateway.lines().some(isCollection), false, 'a connection is still open');

    assert.equal((await held.command('QUIT')).code, 221);
    const line = await gateway.waitForLine(isCollection, 5000);
    assert.equal(line['component'], 'runtime');
    assert.equal(line['collected'], true);
    assert.ok(line['trimmed'] === 'released' || line['trimmed'] === 'nothing',
      `the allocator was trimmed after the collection: ${String(line['trimmed'])}`);
    for (const key of ['rss_mb', 'heap_used_mb', 'external_mb']) {
      const pair = line[key] as unknown[];
      assert.ok(Array.isArray(pair) && pair.length === 2 && pair.every(Number.isFinite), key);
    }
    await sleep(1000);
    assert.equal(gateway.lines().filter(isCollection).length, 1, 'once, until traffic again');
  } finally {
    await gateway.stop();
    await downstream.stop();
  }
});

test('while there is traffic the process collects and trims every smtp.busy_collect, and not '
  + 'when no connection came since the last time', async () => {
  const downstream = await startDownstream();
  const gateway = await startGateway({
    env: { MOAT_DOWNSTREAM: downstream.address, MOAT_DEBUG: 'runtime' },
    ini: '[smtp]\nbusy_collect = 300ms\nidle_collect = 0s\n',
  });
  const isBusy = (line: Record<string, unknown>): boolean =>
    line['msg'] === 'memory: periodic collection';
  const busyCount = async (): Promise<number> => {
    const found = /^moat_memory_collections_total\{trigger="busy"\} (\d+)$/m
      .exec(await gateway.metrics());
    assert.ok(found, 'the busy series is there from the start');
    return Number(found[1]);
  };
  try {
    assert.equal(gateway.lines().some((line) => String(line['msg']).includes('cannot be trimmed')),
      false, 'the trim module loads');
    const held = await SmtpTalk.connect(gateway.host, gateway.port);
    await held.expect(220);
    const line = await gateway.waitForLine(isBusy, 3000);
    assert.equal(line['component'], 'runtime');
    assert.equal(line['collected'], true);
    assert.ok(line['trimmed'] === 'released' || line['trimmed'] === 'nothing');
    const rss = line['rss_mb'] as unknown[];
    assert.ok(Array.isArray(rss) && rss.length === 2 && rss.every(Number.isFinite), 'rss_mb');

    // No new connection: the next intervals do nothing, even with this one still open. (The
    // scrapes below are HTTP, not SMTP: they open no SMTP connection.)
    await sleep(1000);
    const quiet = gateway.lines().filter(isBusy).length;
    await sleep(1000);
    assert.equal(gateway.lines().filter(isBusy).length, quiet, 'nothing without traffic');
    assert.equal(await busyCount(), quiet);

    // A new connection: collected again within an interval or two.
    const steps = await sendMail({ host: gateway.host, port: gateway.port,
      from: 'alice@sender.example', to: ['bob@example.com'], data: 'Subject: busy\r\n\r\nb\r\n' });
    assert.equal(steps.find((step) => step.step === 'message')?.reply.code, 250);
    await sleep(1000);
    assert.ok(gateway.lines().filter(isBusy).length > quiet, 'traffic again, collected again');
    assert.equal((await held.command('QUIT')).code, 221);
  } finally {
    await gateway.stop();
    await downstream.stop();
  }
});

test('a process above smtp.memory_high collects while a connection is open, waiting longer '
  + 'each time it stays above; below the mark it never does', async () => {
  const downstream = await startDownstream();
  // 64M, the lowest allowed: every process is above it, so collecting never gets it below.
  const low = await startGateway({
    env: { MOAT_DOWNSTREAM: downstream.address, MOAT_DEBUG: 'runtime' },
    ini: '[smtp]\nmemory_high = 64M\nidle_collect = 0s\n',
  });
  const high = await startGateway({
    env: { MOAT_DOWNSTREAM: downstream.address, MOAT_DEBUG: 'runtime' },
    ini: '[smtp]\nmemory_high = 8G\nidle_collect = 0s\n',
  });
  const isCollection = (line: Record<string, unknown>): boolean =>
    line['msg'] === 'memory: above smtp.memory_high, garbage collected';
  const highWaterCount = async (gateway: Gateway): Promise<number> => {
    const found = /^moat_memory_collections_total\{trigger="high_water"\} (\d+)$/m
      .exec(await gateway.metrics());
    assert.ok(found, 'the high_water series is there from the start');
    return Number(found[1]);
  };
  try {
    // The harness's readiness probe was a connection: at most the one check of its second,
    // then none while nothing connects.
    await sleep(2500);
    const atStart = low.lines().filter(isCollection).length;
    assert.ok(atStart <= 1, `collections after the probe: ${atStart}`);
    await sleep(1500);
    assert.equal(low.lines().filter(isCollection).length, atStart, 'no connection: no checks');
    const held = await Promise.all([low, high].map(async (gateway) => {
      const talk = await SmtpTalk.connect(gateway.host, gateway.port);
      await talk.expect(220);
      return talk;
    }));
    // Checks once a second; the waits after collections that left it above: 0, 2 s, 4 s.
    await sleep(4500);
    const lines = low.lines().filter(isCollection).slice(atStart);
    assert.ok(lines.length >= 2 && lines.length <= 3, `collections: ${lines.length}`);
    const first = lines[0] as Record<string, unknown>;
    assert.equal(first['component'], 'runtime');
    assert.equal(first['collected'], true);
    const rss = first['rss_mb'] as unknown[];
    assert.ok(Array.isArray(rss) && rss.length === 2 && rss.every(Number.isFinite), 'rss_mb');
    assert.equal(await highWaterCount(low), atStart + lines.length);

    assert.equal(high.lines().some(isCollection), false, 'below 8G: never');
    assert.equal(await highWaterCount(high), 0);

    // The last connection closed: the checks stop.
    for (const talk of held) assert.equal((await talk.command('QUIT')).code, 221);
    await sleep(200);
    const atClose = low.lines().filter(isCollection).length;
    await sleep(4500);
    assert.equal(low.lines().filter(isCollection).length, atClose, 'no connection: no checks');
  } finally {
    await low.stop();
    await high.stop();
    await downstream.stop();
  }
});

test('SIGKILL during DATA: no 250 and no partial message downstream', async () => {
  const downstream = await startDownstream();
  const gateway = await startGateway({ env: { MOAT_DOWNSTREAM: downstream.address } });
  try {
    const talk = await openData(gateway.host, gateway.port);
    talk.send('Subject: interrupted\r\n\r\nfirst half of the body\r\n');
    await sleep(200);
    await gateway.kill();
    assert.equal(await talk.waitForClose(), true);
    const replies = await talk.readReply(500).then((reply) => [reply], () => []);
    assert.equal(replies.some((reply) => reply.code === 250), false);
    await sleep(300);
    assert.equal(downstream.messages.length, 0);
  } finally {
    await gateway.kill();
    await downstream.stop();
  }
});

test('SIGTERM drains: the transaction in flight finishes, idle clients get 421, then '
  + 'exit', async () => {
  const downstream = await startDownstream();
  const gateway = await startGateway({
    env: { MOAT_DOWNSTREAM: downstream.address }, ini: '[smtp]\ndrain_timeout = 5s\n',
  });
  try {
    const idle = await SmtpTalk.connect(gateway.host, gateway.port);
    await idle.expect(220);
    await idle.command('EHLO idle.example.org');
    const busy = await openData(gateway.host, gateway.port);
    busy.send('Subject: in flight\r\n\r\nfirst part\r\n');

    // Stop while one transaction is in DATA and another client sits idle.
    assert.equal((await readyz(gateway)).status, 200);
    gateway.daemon.child.kill('SIGTERM');
    const idleReply = await idle.readReply(5000);
    assert.equal(idleReply.code, 421);
    assert.match(idleReply.lines.join(' '), /^4\.3\.2 /);

    // While the transaction is still in flight, the node says it is not ready.
    const draining = await readyz(gateway);
    assert.equal(draining.status, 503);
    assert.deepEqual(draining.checks['draining'], { ok: false, detail: 'draining' });

    busy.send('second part\r\n.\r\n');
    const final = await busy.readReply(5000);
    assert.equal(final.code, 250, 'the message in flight was accepted during the drain');
    const after = await busy.command('MAIL FROM:<alice@sender.example>', 5000).catch(() => null);
    assert.ok(after === null || after.code === 421, `after the drain: ${after?.code}`);
    busy.close();

    const [message] = await downstream.waitForMessages(1);
    assert.ok(message?.data.includes('first part\r\nsecond part\r\n'));

    // No new connections, and the process ends by itself.
    const deadline = Date.now() + 15_000;
    while (gateway.daemon.running && Date.now() < deadline) await sleep(100);
    assert.equal(gateway.daemon.running, false, 'the gateway did not exit after draining');
  } finally {
    await gateway.kill();
    await downstream.stop();
  }
});

test('SIGTERM with cluster workers: /readyz on the master answers 503 while the workers '
  + 'drain', async () => {
  const downstream = await startDownstream();
  const gateway = await startGateway({
    env: { MOAT_DOWNSTREAM: downstream.address, MOAT_WORKERS: '2' },
    ini: '[smtp]\ndrain_timeout = 10s\n',
  });
  try {
    const serving = await readyz(gateway);
    assert.equal(serving.status, 200, JSON.stringify(serving));
    assert.deepEqual(serving.checks['workers'], { ok: true, detail: '2 of 2 workers running' });
    const busy = await openData(gateway.host, gateway.port);
    busy.send('Subject: in flight\r\n\r\nfirst part\r\n');

    // The master serves /readyz and drains last; its workers hold the connections. The
    // signal takes a moment to reach them; the transaction stays open meanwhile.
    gateway.daemon.child.kill('SIGTERM');
    let draining = await readyz(gateway);
    for (let tries = 0; draining.status === 200 && tries < 50; tries++) {
      await sleep(100);
      draining = await readyz(gateway);
    }
    assert.equal(draining.status, 503, JSON.stringify(draining));
    assert.equal(draining.checks['workers']?.ok, false, JSON.stringify(draining));

    busy.send('second part\r\n.\r\n');
    const final = await busy.readReply(5000);
    assert.equal(final.code, 250, 'the message in flight was accepted during the drain');
    busy.close();
    await downstream.waitForMessages(1);
  } finally {
    await gateway.kill();
    await downstream.stop();
  }
});

test('without an internal server, mail is written to the local Maildir before the '
  + '250', async () => {
  const gateway = await startGateway();
  try {
    const warning = gateway.lines()
      .find((line) => /NO DOWNSTREAM SERVER/.test(String(line['msg'])));
    assert.ok(warning, 'the start-up log says loudly that mail stays local');
    const steps = await sendMail({ host: gateway.host, port: gateway.port,
      from: 'alice@sender.example', to: ['bob@example.com'],
      data: 'Subject: local\r\n\r\n.dot line\r\nbody\r\n' });
    assert.equal(steps.find((step) => step.step === 'message')?.reply.code, 250);
    const folder = join(gateway.stateDir, 'maildir', 'new');
    const files = readdirSync(folder);
    assert.equal(files.length, 1);
    const stored = readFileSync(join(folder, files[0] ?? ''), 'latin1');
    assert.match(stored, /^Return-Path: <alice@sender\.example>\r\n/);
    // Moat's marks go at the end of the header section; the rest is the message as sent.
    assert.ok(stored.endsWith('Subject: local\r\n'
      + 'X-Moat-Unscanned: malware (clamd not configured)\r\n'
      + 'X-Moat-Unscanned: spam (spamd not configured)\r\n\r\n.dot line\r\nbody\r\n'), stored);
    assert.equal(readdirSync(join(gateway.stateDir, 'maildir', 'tmp')).length, 0);
  } finally {
    await gateway.stop();
  }
});

test('two cluster workers: mail flows through both and /metrics sums them', async () => {
  const downstream = await startDownstream();
  const gateway = await startGateway({
    env: { MOAT_DOWNSTREAM: downstream.address, MOAT_WORKERS: '2' },
  });
  try {
    for (let index = 0; index < 4; index++) {
      const steps = await sendMail({ host: gateway.host, port: gateway.port,
        from: 'alice@sender.example', to: ['bob@example.com'],
        data: `Subject: ${index}\r\n\r\nb\r\n` });
      assert.equal(steps.find((step) => step.step === 'message')?.reply.code, 250);
    }
    await downstream.waitForMessages(4);
    const metrics = await gateway.metrics();
    assert.match(metrics, /^moat_messages_total\{action="deliver",reason="clean"\} 4$/m);
    // The harness's readiness probes are connections too, so at least the four sessions.
    const accepted = /^moat_connections_total\{outcome="accepted"\} (\d+)$/m.exec(metrics);
    assert.ok(Number(accepted?.[1]) >= 4, `accepted connections: ${accepted?.[1]}`);
  } finally {
    await gateway.stop();
    await downstream.stop();
  }
});

test('run_as_user: the gateway drops root after binding and still delivers', { skip:
  process.getuid?.() !== 0 ? 'needs root to switch users' : false }, async () => {
  const downstream = await startDownstream();
  const gateway = await startGateway({ env: { MOAT_DOWNSTREAM: downstream.address },
    ini: '[smtp]\nrun_as_user = nobody\nrun_as_group = nogroup\n' });
  try {
    const status = readFileSync(`/proc/${gateway.daemon.child.pid}/status`, 'utf8');
    const uid = /^Uid:\s+(\d+)\s+(\d+)/m.exec(status);
    const nobody = /^nobody:[^:]*:(\d+):/m.exec(readFileSync('/etc/passwd', 'utf8'));
    assert.equal(uid?.[2], nobody?.[1], 'effective uid is nobody');
    const steps = await sendMail({ host: gateway.host, port: gateway.port,
      from: 'alice@sender.example', to: ['bob@example.com'], data: 'Subject: uid\r\n\r\nb\r\n' });
    assert.equal(steps.find((step) => step.step === 'message')?.reply.code, 250);
  } finally {
    await gateway.stop();
    await downstream.stop();
  }
});
