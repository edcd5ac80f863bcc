/*
 * The benchmark's spamd front (bench/spamd-front.ts) as Moat's own spamd client sees it, in
 * front of a real spamd: forwarded requests get the real spamd's verdict (GTUBE scored as
 * spam), answered ones a clean verdict at once; PONG for PING either way; nothing answered
 * before the body is complete; EX_PROTOCOL for a request without a length; and counts of what
 * went which way.
 */

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { answerFor, startSpamdFront, type SpamdFront } from '../../bench/spamd-front';
import { Deadline } from '../../src/scan/errors';
import { SpamdClient } from '../../src/scan/spamd';
import { GTUBE_STRING, plainMessage } from '../harness/samples';
import { startSpamd, type SpamdServer } from '../harness/spamd';

let spamd: SpamdServer;
let front: SpamdFront;
let client: SpamdClient;
before(async () => {
  spamd = await startSpamd();
  front = await startSpamdFront(spamd.address);
  client = new SpamdClient({ addresses: [front.address], connectTimeoutMs: 500, user: null });
});
after(async () => {
  await front?.stop();
  await spamd?.stop();
});

const gtube = Buffer.from(plainMessage({ body: `${GTUBE_STRING}\r\n` }));

describe('spamd front', () => {
  test('forwards to the real spamd by default: GTUBE is spam, with its symbol', async () => {
    const verdict = await client.check(gtube, new Deadline(10_000));
    assert.equal(verdict.isSpam, true);
    assert.ok(verdict.score >= 900, `GTUBE scored ${verdict.score} through the front`);
    assert.ok(verdict.symbols.includes('GTUBE'), verdict.symbols.join(','));
    assert.equal((await client.ping(new Deadline(5000))).ok, true);
    assert.deepEqual([front.forwarded(), front.answered()], [2, 0]);
  });

  test('answers at once when told to, counting messages only, then forwards again',
    async () => {
      front.answerAtOnce();
      const verdict = await client.check(gtube, new Deadline(2000));
      assert.deepEqual({ ...verdict, address: '' }, {
        isSpam: false, score: 0, threshold: 5, symbols: ['MOAT_BENCH_STAND_IN'], address: '',
      });
      const large = Buffer.from(`Subject: x\r\n\r\n${'body line\r\n'.repeat(5000)}`);
      assert.equal((await client.check(large, new Deadline(2000))).score, 0);
      assert.equal((await client.ping(new Deadline(2000))).ok, true);
      assert.deepEqual([front.forwarded(), front.answered()], [2, 2]);

      front.forward();
      assert.equal((await client.check(gtube, new Deadline(10_000))).isSpam, true);
      assert.deepEqual([front.forwarded(), front.answered()], [3, 2]);
    });

  test('waits for the whole body and refuses a request without a length', () => {
    const head = 'SYMBOLS SPAMC/1.5\r\nContent-length: 10\r\n\r\n';
    assert.equal(answerFor(Buffer.from(`${head}12345`)), null);
    assert.match(answerFor(Buffer.from(`${head}1234567890`)) ?? '', /^SPAMD\/1\.1 0 EX_OK\r\n/);
    assert.equal(answerFor(Buffer.from('SYMBOLS SPAMC/1.5\r\n')), null);
    assert.match(answerFor(Buffer.from('SYMBOLS SPAMC/1.5\r\n\r\n')) ?? '', /^SPAMD\/1\.5 76 /);
  });
});
