/*
 * End to end: the quickstart scans for real. The gateway is started exactly as `npm start`
 * starts it (dist/src/runtime/main.js) with no scanner address: MOAT_CLAMD and MOAT_SPAMD
 * empty, no moat.ini. The transcript: Moat says it runs clamd and spamd itself, both listen on
 * loopback and answer PING, their files live under the state folder, clean mail is accepted,
 * EICAR and GTUBE are refused by those scanners, and after SIGTERM both daemons are gone.
 *
 * Needs: dist/ built, clamd and spamd installed (scripts/ensure-deps.sh).
 */

import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';

import { clamdCommand } from '../harness/clamd';
import { startGateway, type Gateway } from '../harness/gateway';
import { CLAMAV_EICAR_NAME, EICAR_STRING, GTUBE_STRING, plainMessage } from '../harness/samples';
import { sendMail, type SendMailStep } from '../harness/smtp-talk';
import { spamcRequest } from '../harness/spamd';

interface LocalScanner {
  address: string;
  pid: number;
}

function alive(pid: number): boolean {
  if (!existsSync(`/proc/${pid}/stat`)) return false;
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
  return state !== 'Z' && state !== 'X';
}

/** Every live process whose command line mentions folder (the daemons and their watchdogs). */
function processesUsing(folder: string): number[] {
  return readdirSync('/proc').filter((entry) => /^\d+$/.test(entry)).map(Number).filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes(folder) && alive(pid);
    } catch {
      return false;
    }
  });
}

function messageReply(steps: SendMailStep[]) {
  const found = steps.find((entry) => entry.step === 'message');
  assert.ok(found, `no reply to the message; steps: ${JSON.stringify(steps)}`);
  return found.reply;
}

describe('quickstart: npm start runs its own clamd and spamd', () => {
  let gateway: Gateway;
  const local: Record<string, LocalScanner> = {};

  const send = (subject: string, body: string): Promise<SendMailStep[]> => sendMail({
    host: gateway.host, port: gateway.port, from: 'alice@sender.example.org',
    to: ['bob@example.com'],
    data: plainMessage({ from: 'alice@sender.example.org', subject, body }),
  });

  before(async () => {
    gateway = await startGateway({
      env: { MOAT_CLAMD: '', MOAT_SPAMD: '', MOAT_LOCAL_SCANNERS: 'auto' },
      startTimeoutMs: 120_000,
    });
    for (const line of gateway.lines()) {
      const match = /^local (clamd|spamd) ready$/.exec(String(line['msg']));
      if (match) local[match[1]!] = { address: String(line['address']), pid: Number(line['pid']) };
    }
  });

  after(async () => {
    await gateway?.stop();
  });

  test('says which scanners are local, and both listen on loopback and answer', async () => {
    assert.ok(gateway.lines().some((line) =>
      /^starting local clamd and spamd/.test(String(line['msg']))), 'start-up says so');
    assert.match(local['clamd']?.address ?? '', /^127\.0\.0\.1:\d+$/);
    assert.match(local['spamd']?.address ?? '', /^127\.0\.0\.1:\d+$/);

    assert.equal(await clamdCommand(local['clamd']!.address, 'PING'), 'PONG');
    const pong = await spamcRequest(local['spamd']!.address, 'PING', '', 5000);
    assert.match(pong.statusLine, /^SPAMD\/[\d.]+ 0 PONG/);

    // Their configuration and logs live in the state folder.
    const scanners = join(gateway.stateDir, 'scanners');
    assert.deepEqual(readdirSync(scanners).sort(), ['clamd', 'spamd']);
    assert.match(readFileSync(join(scanners, 'clamd', 'clamd.conf'), 'utf8'),
      /^TCPAddr 127\.0\.0\.1$/m);
    for (const name of ['clamd', 'spamd']) {
      const cmdline = readFileSync(`/proc/${local[name]!.pid}/cmdline`, 'latin1');
      assert.ok(cmdline.includes(scanners), `${name} runs with files in ${scanners}`);
    }
  });

  test('clean mail is accepted into the local Maildir', async () => {
    const steps = await send('Hello from the quickstart', 'Nothing to see here.\r\n');
    assert.equal(messageReply(steps).code, 250, JSON.stringify(steps));
    const delivered = readdirSync(join(gateway.stateDir, 'maildir', 'new'));
    assert.equal(delivered.length, 1);
  });

  test('EICAR is refused by the local clamd, naming the signature', async () => {
    const reply = messageReply(await send('EICAR', `${EICAR_STRING}\r\n`));
    assert.equal(reply.code, 554, reply.raw);
    assert.ok(reply.raw.includes(CLAMAV_EICAR_NAME), reply.raw);
  });

  test('GTUBE is refused by the local spamd', async () => {
    const reply = messageReply(await send('GTUBE', `${GTUBE_STRING}\r\n`));
    assert.equal(reply.code, 550, reply.raw);
  });

  test('after SIGTERM both daemons are gone', async () => {
    const pids = processesUsing(join(gateway.stateDir, 'scanners'));
    for (const scanner of Object.values(local)) assert.ok(pids.includes(scanner.pid));
    assert.ok(pids.length >= 4, `the daemons and their watchdogs: ${pids.join(' ')}`);
    await gateway.stop();

    const deadline = Date.now() + 10_000;
    while (pids.some(alive) && Date.now() < deadline) await sleep(100);
    assert.deepEqual(pids.filter(alive), [], 'no scanner outlives the gateway');
    await assert.rejects(clamdCommand(local['clamd']!.address, 'PING', 1000));
    await assert.rejects(spamcRequest(local['spamd']!.address, 'PING', '', 1000));
  });
});
