/*
 * The scan scheduler's spamd turns (spamd.max_parallel), with a fake spamd client: at most that
 * many requests in flight, a large message waiting for its turn lets its prefix go and reads
 * it again when the turn comes, a small one keeps it, and a message whose turn does not come
 * within the spamd deadline gets a spamd timeout without losing a slot. spamd itself is
 * exercised for real in src/scan/clients.test.ts and the end-to-end tests.
 */

import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';

import { loadConfig } from '../config/load';
import type { ScanConfig } from '../config/sections/scan';
import type { Deadline } from './errors';
import { scanMessage } from './scheduler';
import { Slots } from './slots';
import type { SpamdClient, SpamdVerdict } from './spamd';

function scanConfig(ini: string): ScanConfig {
  const dir = mkdtempSync(join(tmpdir(), 'moat-scheduler-'));
  writeFileSync(join(dir, 'moat.ini'), ini);
  return loadConfig({ root: dir, configDir: dir, env: { MOAT_DOMAINS: 'example.com' } }).scan;
}

/** A message of about `bytes`, every line naming it, so a prefix shows whose it is. */
function message(name: string, bytes: number): Buffer {
  const head = `From: a@sender.example\r\nTo: b@example.com\r\nSubject: ${name}\r\n\r\n`;
  const line = `${name} ${'x'.repeat(70)}\r\n`;
  return Buffer.from(head + line.repeat(Math.ceil(bytes / line.length)), 'latin1');
}

/** A fake spamd: records what it was sent and how many requests were in flight at once. */
class FakeSpamd {
  readonly requests: Slots;
  readonly sent: Buffer[] = [];
  inFlight = 0;
  mostInFlight = 0;
  private readonly held: Array<() => void> = [];
  /** Answer at once (false: wait for answerAll()). */
  prompt = true;

  constructor(maxParallel: number) {
    this.requests = new Slots(maxParallel);
  }

  async check(body: Buffer, _deadline: Deadline): Promise<SpamdVerdict> {
    this.sent.push(body);
    this.inFlight += 1;
    this.mostInFlight = Math.max(this.mostInFlight, this.inFlight);
    await (this.prompt ? new Promise((resolve) => setTimeout(resolve, 5))
      : new Promise<void>((resolve) => this.held.push(resolve)));
    this.inFlight -= 1;
    return { isSpam: false, score: 0, threshold: 5, symbols: [], address: 'fake' };
  }

  answerAll(): void {
    for (const resolve of this.held.splice(0)) resolve();
  }
}

function job(raw: Buffer, spamd: FakeSpamd, config: ScanConfig, opens: { count: number }) {
  return {
    open: () => {
      opens.count += 1;
      const chunks: Buffer[] = [];
      for (let at = 0; at < raw.length; at += 64 * 1024) chunks.push(raw.subarray(at, at + 65536));
      return Readable.from(chunks);
    },
    clamd: null, spamd: spamd as unknown as SpamdClient, config,
  };
}

describe('scanMessage and spamd.max_parallel', () => {
  it('keeps at most max_parallel requests in flight; a large waiting message rereads its '
    + 'prefix, and every message is scored on its own', async () => {
    const config = scanConfig('[spamd]\nmax_size = 200K\n');
    const spamd = new FakeSpamd(2);
    const names = ['one', 'two', 'three', 'four', 'five'];
    const opens = names.map(() => ({ count: 0 }));
    const raws = names.map((name) => message(name, 300 * 1024));
    const reports = await Promise.all(raws.map((raw, index) =>
      scanMessage(job(raw, spamd, config, opens[index] as { count: number }))));

    assert.equal(spamd.mostInFlight, 2);
    reports.forEach((report, index) => {
      assert.equal(report.spamd.status, 'scored', names[index]);
      assert.equal(report.spamd.truncated, true);
      assert.ok(report.spamd.bytesSent > 190 * 1024 && report.spamd.bytesSent <= 200 * 1024);
    });
    for (const [index, name] of names.entries()) {
      const body = spamd.sent.find((sent) => sent.includes(`Subject: ${name}\r\n`));
      assert.ok(body, `spamd got ${name}`);
      assert.deepEqual(body, (raws[index] as Buffer).subarray(0, body.length));
      assert.ok(body.toString('latin1').endsWith('\r\n'), 'cut at a line end');
    }
    // The first two had a turn at once; the other three let their prefix go and read again.
    assert.deepEqual(opens.map((open) => open.count), [1, 1, 2, 2, 2]);
  });

  it('lets a small waiting message keep its prefix (one read)', async () => {
    const config = scanConfig('');
    const spamd = new FakeSpamd(1);
    const opens = [{ count: 0 }, { count: 0 }];
    const raws = [message('first', 20_000), message('second', 20_000)];
    const reports = await Promise.all(raws.map((raw, index) =>
      scanMessage(job(raw, spamd, config, opens[index] as { count: number }))));
    assert.deepEqual(reports.map((report) => report.spamd.status), ['scored', 'scored']);
    assert.equal(spamd.mostInFlight, 1);
    assert.deepEqual(opens.map((open) => open.count), [1, 1]);
  });

  it('gives a message whose turn does not come within the deadline a spamd timeout, and the '
    + 'slot is not lost', async () => {
    const config = scanConfig('[spamd]\ntimeout = 200ms\n');
    const spamd = new FakeSpamd(1);
    spamd.prompt = false;
    const first = scanMessage(job(message('first', 1000), spamd, config, { count: 0 }));
    const second = await scanMessage(job(message('second', 1000), spamd, config, { count: 0 }));
    assert.equal(second.spamd.status, 'error');
    assert.equal(second.spamd.error?.kind, 'timeout');
    assert.match(second.spamd.error?.message ?? '', /no turn within 200 ms/);
    assert.equal(spamd.sent.length, 1, 'the second was never sent');

    spamd.answerAll();
    assert.equal((await first).spamd.status, 'scored');
    // The one slot is free again: the next message has its turn at once.
    spamd.prompt = true;
    const third = await scanMessage(job(message('third', 1000), spamd, config, { count: 0 }));
    assert.equal(third.spamd.status, 'scored');
    assert.equal(spamd.requests.tryTake(), true);
  });
});
