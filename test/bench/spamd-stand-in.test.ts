/*
 * The benchmark's spamd stand-in (bench/spamd-stand-in.ts) as Moat's own spamd client sees it:
 * a clean verdict for a whole request, PONG for PING, nothing before the body is complete,
 * EX_PROTOCOL for a request without a length, and a count of what it answered.
 */

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { answerFor, startSpamdStandIn, type SpamdStandIn } from '../../bench/spamd-stand-in';
import { Deadline } from '../../src/scan/errors';
import { SpamdClient } from '../../src/scan/spamd';

let standIn: SpamdStandIn;
before(async () => {
  standIn = await startSpamdStandIn();
});
after(async () => {
  await standIn?.stop();
});

describe('spamd stand-in', () => {
  test('answers SYMBOLS with a clean verdict and PING with PONG, counting messages only',
    async () => {
      const client = new SpamdClient({
        addresses: [standIn.address], connectTimeoutMs: 500, user: null,
      });
      const message = Buffer.from(`Subject: x\r\n\r\n${'body line\r\n'.repeat(5000)}`);
      const verdict = await client.check(message, new Deadline(2000));
      assert.deepEqual({ ...verdict, address: '' }, {
        isSpam: false, score: 0, threshold: 5, symbols: ['MOAT_BENCH_STAND_IN'], address: '',
      });
      assert.equal((await client.ping(new Deadline(2000))).ok, true);
      assert.equal(standIn.answered(), 1);
    });

  test('waits for the whole body and refuses a request without a length', () => {
    const head = 'SYMBOLS SPAMC/1.5\r\nContent-length: 10\r\n\r\n';
    assert.equal(answerFor(Buffer.from(`${head}12345`)), null);
    assert.match(answerFor(Buffer.from(`${head}1234567890`)) ?? '', /^SPAMD\/1\.1 0 EX_OK\r\n/);
    assert.equal(answerFor(Buffer.from('SYMBOLS SPAMC/1.5\r\n')), null);
    assert.match(answerFor(Buffer.from('SYMBOLS SPAMC/1.5\r\n\r\n')) ?? '', /^SPAMD\/1\.5 76 /);
  });
});
