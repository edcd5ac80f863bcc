/*
 * Proves the spamd harness: a real spamd with local tests only answers PING, scores GTUBE as
 * spam (about 1000 points) and an ordinary message as ham, and can be frozen and restarted.
 */

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { GTUBE_STRING, plainMessage } from './samples';
import { spamcRequest, spamdCheck, startSpamd, type SpamdServer } from './spamd';

describe('spamd harness', () => {
  let spamd: SpamdServer;

  before(async () => {
    spamd = await startSpamd();
  });
  after(async () => {
    await spamd?.stop();
  });

  it('answers PING with PONG', async () => {
    const reply = await spamcRequest(spamd.address, 'PING');
    assert.match(reply.statusLine, /^SPAMD\/1\.\d 0 PONG$/);
  });

  it('scores GTUBE at about 1000 points, as spam', async () => {
    const verdict = await spamdCheck(spamd.address, plainMessage({ body: `${GTUBE_STRING}\r\n` }));
    assert.equal(verdict.isSpam, true);
    assert.ok(verdict.score >= 900, `GTUBE scored ${verdict.score}`);
    assert.equal(verdict.threshold, 5);
    assert.ok(verdict.symbols.includes('GTUBE'), verdict.symbols.join(','));
  });

  it('scores an ordinary message as ham', async () => {
    const verdict = await spamdCheck(spamd.address, plainMessage());
    assert.equal(verdict.isSpam, false);
    assert.ok(verdict.score < verdict.threshold, `ordinary message scored ${verdict.score}`);
    assert.ok(!verdict.symbols.includes('GTUBE'));
  });

  it('scores a message whose last line has no newline (the client half-closes)', async () => {
    const verdict = await spamdCheck(spamd.address, plainMessage({ body: GTUBE_STRING }));
    assert.equal(verdict.isSpam, true);
  });

  it('stops answering while paused and answers again after resume', async () => {
    spamd.pause();
    await assert.rejects(spamcRequest(spamd.address, 'PING', '', 500), /no complete reply/);
    spamd.resume();
    const reply = await spamcRequest(spamd.address, 'PING');
    assert.match(reply.statusLine, / 0 PONG$/);
  });

  it('refuses connections after kill and comes back on the same port', async () => {
    await spamd.kill();
    await assert.rejects(spamcRequest(spamd.address, 'PING', '', 500), /ECONNREFUSED/);
    await spamd.start();
    const reply = await spamcRequest(spamd.address, 'PING');
    assert.match(reply.statusLine, / 0 PONG$/);
  });
});
