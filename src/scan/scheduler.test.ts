/*
 * The scan scheduler's spamd turns (spamd.max_parallel), with a fake spamd client: at most that
 * many requests in flight, a large message waiting for its turn lets its prefix go and reads
 * it again when the turn comes, a small one keeps it, and a message whose turn does not come
 * within the spamd deadline gets a spamd timeout without losing a slot; and the same turns for
 * clamd (clamd.max_parallel, clamd.queue_timeout), with a fake clamd. The scanners themselves
 * are exercised for real in src/scan/clients.test.ts and the end-to-end tests.
 */

import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';

import { loadConfig } from '../config/load';
import type { ScanConfig } from '../config/sections/scan';
import type { ClamdClient, ClamdScan, ClamdVerdict } from './clamd';
import { ScannerError, type Deadline } from './errors';
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

  async check(body: Buffer, deadline: Deadline): Promise<SpamdVerdict> {
    if (deadline.expired) throw new ScannerError('spamd', 'timeout', 'fake', 'deadline passed');
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

/** A fake clamd: every scan is clean, a few milliseconds after its end (or when let go). */
class FakeClamd {
  readonly requests: Slots;
  inFlight = 0;
  mostInFlight = 0;
  readonly deadlines: Deadline[] = [];
  readonly ended: number[] = [];
  prompt = true;
  private readonly held: Array<() => void> = [];

  constructor(maxParallel: number) {
    this.requests = new Slots(maxParallel);
  }

  scan(deadline: Deadline): ClamdScan {
    this.deadlines.push(deadline);
    this.inFlight += 1;
    this.mostInFlight = Math.max(this.mostInFlight, this.inFlight);
    let finish: (verdict: ClamdVerdict) => void = () => undefined;
    const result = new Promise<ClamdVerdict>((resolve) => {
      finish = resolve;
    });
    const done = (): void => {
      this.inFlight -= 1;
      this.ended.push(Date.now());
      finish({ status: 'clean', address: 'fake' });
    };
    return {
      result, write: async () => undefined, abort: done,
      end: () => {
        if (this.prompt) setTimeout(done, 20);
        else this.held.push(done);
      },
    } as unknown as ClamdScan;
  }

  answerAll(): void {
    for (const done of this.held.splice(0)) done();
  }
}

function job(
  raw: Buffer, spamd: FakeSpamd | null, config: ScanConfig, opens: { count: number },
  clamd: FakeClamd | null = null,
) {
  return {
    open: () => {
      opens.count += 1;
      const chunks: Buffer[] = [];
      for (let at = 0; at < raw.length; at += 64 * 1024) chunks.push(raw.subarray(at, at + 65536));
      return Readable.from(chunks);
    },
    clamd: clamd as unknown as ClamdClient | null,
    spamd: spamd as unknown as SpamdClient | null, config,
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

describe('scanMessage and clamd.max_parallel', () => {
  it('lets clamd.max_parallel messages be scanned at once; clamd.timeout starts with the turn',
    async () => {
      const config = scanConfig('[clamd]\nmax_parallel = 1\n');
      const clamd = new FakeClamd(1);
      const raws = ['one', 'two', 'three'].map((name) => message(name, 2000));
      const reports = await Promise.all(raws.map((raw) =>
        scanMessage(job(raw, null, config, { count: 0 }, clamd))));
      assert.deepEqual(reports.map((report) => report.clamd.status), ['clean', 'clean', 'clean']);
      assert.equal(clamd.mostInFlight, 1);
      // Each deadline was set when that message's turn came: after the previous scan ended.
      for (let index = 1; index < 3; index += 1) {
        const turnAt = (clamd.deadlines[index] as Deadline).at - config.clamd.timeoutMs;
        assert.ok(turnAt >= (clamd.ended[index - 1] as number), `message ${index + 1}`);
      }
    });

  it('gives a message whose turn does not come within clamd.queue_timeout a clamd timeout, '
    + 'still asks spamd, and the slot is not lost', async () => {
    const config = scanConfig('[clamd]\nmax_parallel = 1\nqueue_timeout = 200ms\n');
    const clamd = new FakeClamd(1);
    clamd.prompt = false;
    const spamd = new FakeSpamd(8);
    const first = scanMessage(job(message('first', 1000), spamd, config, { count: 0 }, clamd));
    const second = await scanMessage(
      job(message('second', 1000), spamd, config, { count: 0 }, clamd));
    assert.equal(second.clamd.status, 'error');
    assert.equal(second.clamd.error?.kind, 'timeout');
    assert.match(second.clamd.error?.message ?? '', /no turn within 200 ms/);
    assert.equal(second.spamd.status, 'scored');
    assert.equal(clamd.deadlines.length, 1, 'the second never reached clamd');

    clamd.answerAll();
    assert.equal((await first).clamd.status, 'clean');
    assert.equal(clamd.requests.tryTake(), true, 'the slot came back');
  });

  it('starts spamd.timeout with the clamd turn: a message that waited longer still gets scored',
    async () => {
      const config = scanConfig('[clamd]\nmax_parallel = 1\n[spamd]\ntimeout = 300ms\n');
      const clamd = new FakeClamd(1);
      clamd.prompt = false;
      const spamd = new FakeSpamd(8);
      const first = scanMessage(job(message('first', 1000), spamd, config, { count: 0 }, clamd));
      const second = scanMessage(job(message('second', 1000), spamd, config, { count: 0 }, clamd));
      await new Promise((resolve) => setTimeout(resolve, 500));
      clamd.prompt = true;
      clamd.answerAll();
      const reports = await Promise.all([first, second]);
      assert.deepEqual(reports.map((report) => report.clamd.status), ['clean', 'clean']);
      assert.deepEqual(reports.map((report) => report.spamd.status), ['scored', 'scored']);
    });
});
