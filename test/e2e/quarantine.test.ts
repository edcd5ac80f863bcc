/*
 * End to end: a message the verdict quarantines, with the real scanners, the real gateway, a
 * real internal server and the real `moat` command.
 *
 * GTUBE goes through spamd with `[spamd] quarantine_score = 5` (GTUBE scores about 1000) and no
 * reject score, so the verdict is quarantine. The transcript: the sender gets the same 250 as
 * for delivered mail, the internal server gets nothing, the decision line names the
 * quarantine id, the folder holds the bytes; `bin/moat quarantine release` then delivers
 * exactly `X-Moat-Released: ...` + the stored bytes, and the stored bytes end with what the
 * client sent. Then: a store failure answers 451 4.3.0, purge by age from the command line,
 * and purge by retention in the gateway.
 *
 * Needs: dist/ built, clamd and spamd installed (scripts/ensure-deps.sh).
 */

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';

import { startClamd, type ClamdServer } from '../harness/clamd';
import { startDownstream, type Downstream } from '../harness/downstream';
import { REPO_ROOT, startGateway, type Gateway } from '../harness/gateway';
import { makeTempDir } from '../harness/process';
import { GTUBE_STRING, plainMessage } from '../harness/samples';
import { sendMail, type SendMailStep } from '../harness/smtp-talk';
import { startSpamd, type SpamdServer } from '../harness/spamd';

const SENDER = 'spammer@sender.example.org';
const INI = '[spamd]\nquarantine_score = 5\nreject_score =\n';

interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

function messageReply(steps: SendMailStep[]) {
  const found = steps.find((entry) => entry.step === 'message');
  assert.ok(found, `no reply to the message; steps: ${JSON.stringify(steps)}`);
  return found.reply;
}

describe('quarantine', () => {
  let clamd: ClamdServer;
  let spamd: SpamdServer;
  let downstream: Downstream;
  let gateway: Gateway;
  let configDir: string;
  let heldId = '';
  let sentGtube = '';

  /** Runs bin/moat with the gateway's state folder, config folder and internal server. */
  const moat = (...args: string[]): Promise<CliRun> => new Promise((resolve) => {
    execFile(join(REPO_ROOT, 'bin', 'moat'), args, {
      env: {
        ...process.env, MOAT_STATE_DIR: gateway.stateDir, MOAT_CONFIG_DIR: configDir,
        MOAT_DOWNSTREAM: downstream.address, MOAT_CLAMD: clamd.address, MOAT_SPAMD: spamd.address,
      },
      encoding: 'latin1', timeout: 30_000,
    }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });

  const send = (subject: string, body: string): Promise<SendMailStep[]> => {
    const data = plainMessage({ from: SENDER, to: 'bob@example.com', subject, body });
    if (body.includes(GTUBE_STRING)) sentGtube = data;
    return sendMail({ host: gateway.host, port: gateway.port, from: SENDER,
      to: ['bob@example.com'], data });
  };

  before(async () => {
    [clamd, spamd, downstream] = await Promise.all([startClamd(), startSpamd(), startDownstream()]);
    configDir = makeTempDir('quarantine-config');
    writeFileSync(join(configDir, 'moat.ini'), INI);
    gateway = await startGateway({
      env: {
        MOAT_CLAMD: clamd.address, MOAT_SPAMD: spamd.address, MOAT_DOWNSTREAM: downstream.address,
        MOAT_CONFIG_DIR: configDir,
      },
    });
  });

  after(async () => {
    await gateway?.stop();
    await Promise.all([clamd?.stop(), spamd?.stop(), downstream?.stop()]);
  });

  test('GTUBE is answered 250 like any mail, stored, and not delivered', async () => {
    const steps = await send('GTUBE for the quarantine', `Hello\r\n${GTUBE_STRING}\r\n`);
    const reply = messageReply(steps);
    assert.equal(reply.code, 250, JSON.stringify(steps));
    assert.match(reply.raw, /^250 2\.0\.0 Message accepted/);

    const decision = await gateway.waitForDecision((line) => line['action'] === 'quarantine');
    assert.equal(decision['reason'], 'spam-quarantined');
    heldId = String((decision['evidence'] as Record<string, unknown>)['quarantine_id']);
    assert.match(heldId, /^\d{8}-\d{6}-[0-9a-f]{12}$/);

    const folder = join(gateway.stateDir, 'quarantine');
    const stored = readFileSync(join(folder, `${heldId}.eml`), 'latin1');
    assert.ok(stored.endsWith(sentGtube), 'the stored bytes end with what the client sent');
    assert.match(stored, /^Received: /, 'with the trace line Moat adds first');
    const record = JSON.parse(readFileSync(join(folder, `${heldId}.json`), 'utf8'));
    assert.deepEqual(record.envelope, { from: SENDER, to: ['bob@example.com'] });
    assert.equal(record.verdict.reason, 'spam-quarantined');
    assert.ok(record.results.some((result: { check: string }) => result.check === 'spamd'));
    assert.equal(record.size, Buffer.byteLength(stored, 'latin1'));

    await sleep(300);
    assert.equal(downstream.messages.length, 0, 'nothing reached the internal server');
  });

  test('clean mail still goes through both scanners to the internal server', async () => {
    const steps = await send('An ordinary message', 'Nothing to see here.\r\n');
    assert.equal(messageReply(steps).code, 250);
    const [delivered] = await downstream.waitForMessages(1);
    assert.match(delivered?.data.toString('latin1') ?? '', /Subject: An ordinary message/);
  });

  test('the metrics count the quarantined message', async () => {
    const text = await gateway.metrics();
    assert.match(text, /^moat_quarantine_stored_total 1$/m);
    assert.match(text, /^moat_quarantine_messages\{status="held"\} 1$/m);
    assert.match(text, /^moat_messages_total\{action="quarantine",reason="spam-quarantined"\} 1$/m);
  });

  test('moat quarantine list and show find it', async () => {
    const listed = await moat('quarantine', 'list');
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout,
      new RegExp(`^${heldId} .* ${SENDER} +bob@example.com +spam-quarantined `, 'm'));

    const shown = await moat('quarantine', 'show', heldId);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /^verdict: +quarantine spam-quarantined \(decided by spamd\)$/m);
    assert.match(shown.stdout, /^Subject: GTUBE for the quarantine$/m);

    const missing = await moat('quarantine', 'show', '20200101-000000-000000000000');
    assert.equal(missing.code, 66);
  });

  test('release delivers the original bytes behind X-Moat-Released, once', async () => {
    const stored = readFileSync(join(gateway.stateDir, 'quarantine', `${heldId}.eml`));
    const released = await moat('quarantine', 'release', heldId, '--by', 'postmaster');
    assert.equal(released.code, 0, released.stderr);
    assert.match(released.stdout, new RegExp(`^released ${heldId} to bob@example.com via `));

    const messages = await downstream.waitForMessages(2);
    const copy = messages[1]!;
    assert.deepEqual(copy.rcptTo, ['bob@example.com']);
    assert.equal(copy.mailFrom, SENDER);
    const text = copy.data.toString('latin1');
    const header = new RegExp(`^X-Moat-Released: by postmaster at \\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z, `
      + `id ${heldId}\\r\\n`);
    assert.match(text, header);
    assert.deepEqual(copy.data.subarray(copy.data.indexOf('\r\n') + 2), stored,
      'after the header: the stored bytes, byte for byte');
    assert.ok(text.endsWith(sentGtube), 'which end with the message the client sent');

    const again = await moat('quarantine', 'release', heldId, '--by', 'postmaster');
    assert.equal(again.code, 65);
    assert.match(again.stderr, /already released by postmaster/);
    const listed = await moat('quarantine', 'list', '--json');
    assert.deepEqual(JSON.parse(listed.stdout), [], 'released mail is no longer held');
  });

  test('a quarantine that cannot be written answers 451 4.3.0 and keeps nothing', async () => {
    const scratch = join(gateway.stateDir, 'quarantine', 'tmp');
    rmSync(scratch, { recursive: true, force: true });
    writeFileSync(scratch, 'in the way');
    try {
      const steps = await send('GTUBE with a broken disk', `${GTUBE_STRING}\r\n`);
      const reply = messageReply(steps);
      assert.equal(reply.code, 451);
      assert.match(reply.raw, /^451 4\.3\.0 /);
      const decision = await gateway.waitForDecision((line) =>
        line['reason'] === 'quarantine-store-failed');
      assert.equal(decision['action'], 'tempfail');
    } finally {
      rmSync(scratch, { force: true });
      mkdirSync(scratch);
    }
    const metrics = await gateway.metrics();
    assert.match(metrics, /^moat_quarantine_store_failures_total 1$/m);
  });

  test('purge by age from the command line', async () => {
    const steps = await send('GTUBE to purge', `${GTUBE_STRING}\r\n`);
    assert.equal(messageReply(steps).code, 250);
    const decision = await gateway.waitForDecision((line) => line['action'] === 'quarantine'
      && (line['evidence'] as Record<string, unknown>)['quarantine_id'] !== heldId);
    const id = String((decision['evidence'] as Record<string, unknown>)['quarantine_id']);

    const young = await moat('quarantine', 'purge', '--older-than', '1d');
    assert.equal(young.code, 0, young.stderr);
    assert.match(young.stdout, /^0 purged \(older than 1d\)$/m);
    assert.ok(existsSync(join(gateway.stateDir, 'quarantine', `${id}.eml`)));

    const all = await moat('quarantine', 'purge', '--older-than', '0s');
    assert.equal(all.code, 0, all.stderr);
    assert.match(all.stdout, new RegExp(`^purged ${id} `, 'm'));
    assert.match(all.stdout, new RegExp(`^purged ${heldId} `, 'm'), 'released ones go too');
    assert.deepEqual(readdirSync(join(gateway.stateDir, 'quarantine'))
      .filter((name) => /\.(eml|json)$/.test(name)), []);
    const events = readFileSync(join(gateway.stateDir, 'quarantine', 'events.log'), 'utf8');
    assert.match(events, new RegExp(`"event":"purged","id":"${id}"`));
  });

  test('the gateway purges by quarantine.retention on its own', async () => {
    const steps = await send('GTUBE kept briefly', `${GTUBE_STRING}\r\n`);
    assert.equal(messageReply(steps).code, 250);
    const folder = join(gateway.stateDir, 'quarantine');
    const stored = () => readdirSync(folder).filter((name) => name.endsWith('.json'));
    assert.equal(stored().length, 1);
    await gateway.stop();

    // The same state folder, a retention of one second: purged at start and every 10 s.
    await sleep(1100);
    writeFileSync(join(configDir, 'moat.ini'), `${INI}[quarantine]\nretention = 1s\n`
      + 'purge_interval = 10s\n');
    gateway = await startGateway({
      env: {
        MOAT_CLAMD: clamd.address, MOAT_SPAMD: spamd.address, MOAT_DOWNSTREAM: downstream.address,
        MOAT_CONFIG_DIR: configDir, MOAT_STATE_DIR: gateway.stateDir,
      },
    });
    const deadline = Date.now() + 15_000;
    while (stored().length > 0 && Date.now() < deadline) await sleep(100);
    assert.deepEqual(stored(), []);
    // The line is written after the files go; it reaches us through a pipe a moment later.
    const purged = (line: Record<string, unknown>): boolean => line['component'] === 'quarantine'
      && /purged quarantined messages past retention/.test(String(line['msg']));
    while (!gateway.lines().some(purged) && Date.now() < deadline) await sleep(50);
    assert.ok(gateway.lines().some(purged), 'no purge line in the log');
  });
});
