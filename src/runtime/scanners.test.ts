/*
 * The local scanner supervisor with a real clamd (Debian clamav-daemon) on loopback: it
 * starts and answers, comes back on the same address after a crash, and is gone after stop.
 * spamd goes through the same code path; test/e2e/quickstart.test.ts runs both through
 * `npm start`'s entry point.
 */

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, describe, it } from 'node:test';
import { LocalScannerError, localScannersNeeded, ScannerSupervisor } from './scanners';

const REPO_ROOT = resolve(__dirname, '..', '..', '..');

function alive(pid: number): boolean {
  if (!existsSync(`/proc/${pid}/stat`)) return false;
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
  return state !== 'Z' && state !== 'X';
}

async function until(condition: () => boolean | Promise<boolean>, limitMs: number, what: string) {
  const deadline = Date.now() + limitMs;
  while (Date.now() < deadline) {
    if (await condition()) return;
    await sleep(100);
  }
  assert.fail(`not within ${limitMs} ms: ${what}`);
}

describe('localScannersNeeded', () => {
  it('runs locally only what has no address, and nothing when switched off', () => {
    assert.deepEqual(localScannersNeeded([], [], 'auto'), ['clamd', 'spamd']);
    assert.deepEqual(localScannersNeeded(['127.0.0.1:3310'], [], 'auto'), ['spamd']);
    assert.deepEqual(localScannersNeeded([], ['/run/spamd.sock'], 'auto'), ['clamd']);
    assert.deepEqual(localScannersNeeded(['a:1'], ['b:2'], 'auto'), []);
    assert.deepEqual(localScannersNeeded([], [], 'off'), []);
  });
});

describe('ScannerSupervisor with a real clamd', () => {
  const stateDir = mkdtempSync(join(tmpdir(), 'moat-scanners-'));
  const lines: Array<{ level: string; msg: string }> = [];
  const supervisor = new ScannerSupervisor(['clamd'], {
    stateDir,
    signatureDir: join(REPO_ROOT, 'clamav'),
    maxMessageBytes: 25 * 1024 * 1024,
    log: (level, msg) => lines.push({ level, msg }),
  });
  after(async () => {
    await supervisor.stop();
    rmSync(stateDir, { recursive: true, force: true });
  });

  it('starts clamd on loopback with its config under the state folder', async () => {
    const addresses = await supervisor.start();
    const clamd = supervisor.scanners[0]!;
    assert.match(addresses.clamd ?? '', /^127\.0\.0\.1:\d+$/);
    assert.equal(addresses.spamd, undefined);
    assert.equal(await clamd.answers(), true);
    const conf = readFileSync(join(stateDir, 'scanners', 'clamd', 'clamd.conf'), 'utf8');
    assert.match(conf, /^TCPAddr 127\.0\.0\.1$/m);
    assert.match(conf, /^StreamMaxLength 64M$/m);
    assert.ok(existsSync(join(stateDir, 'scanners', 'clamd', 'db', 'moat-test.ndb')));
  });

  it('restarts a crashed clamd on the same address, and says so', async () => {
    const clamd = supervisor.scanners[0]!;
    const before = { pid: clamd.pid!, address: clamd.address };

    // Crash the daemon itself (its own pid file), not the watchdog in front of it.
    const daemonPid = Number(readFileSync(join(clamd.workDir, 'clamd.pid'), 'utf8').trim());
    assert.notEqual(daemonPid, before.pid);
    process.kill(daemonPid, 'SIGKILL');

    await until(() => clamd.pid !== before.pid && clamd.pid !== null, 10_000, 'a new clamd');
    await until(() => clamd.answers(), 60_000, 'the new clamd answering');
    assert.equal(clamd.address, before.address);
    assert.equal(clamd.restarts, 1);
    assert.ok(lines.some(
      (line) => line.level === 'warn' && /clamd exited; restarting/.test(line.msg)));
  });

  it('stops clamd for good: no restart after stop', async () => {
    const clamd = supervisor.scanners[0]!;
    const pid = clamd.pid!;
    await supervisor.stop();
    await until(() => !alive(pid), 5000, 'clamd gone');
    await sleep(1500);
    assert.equal(await clamd.answers(500), false);
    assert.equal(clamd.restarts, 1);
  });

  it('fails clearly without signatures', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'moat-scanners-empty-'));
    const broken = new ScannerSupervisor(['clamd'], {
      stateDir: empty, signatureDir: join(empty, 'none'), maxMessageBytes: 1024, log: () => {},
    });
    try {
      await assert.rejects(broken.start(), (error: unknown) => error instanceof LocalScannerError
        && /no signature files/.test(error.message));
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });
});
