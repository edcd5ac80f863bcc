/*
 * Proves the clamd harness: a real clamd with the fixture database finds EICAR in a plain
 * body, in a base64 MIME attachment and inside a zip in an attachment, finds the Moat marker,
 * passes a clean message, and can be frozen and restarted.
 */

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { clamdCommand, clamdScan, startClamd, type ClamdServer } from './clamd';
import {
  CLAMAV_EICAR_NAME,
  CLAMAV_MARKER,
  CLAMAV_MARKER_NAME,
  EICAR_STRING,
  messageWithAttachment,
  plainMessage,
  zipArchive,
} from './samples';

describe('clamd harness', () => {
  let clamd: ClamdServer;

  before(async () => {
    clamd = await startClamd();
  });
  after(async () => {
    await clamd?.stop();
  });

  it('answers PING and reports its version', async () => {
    assert.equal(await clamdCommand(clamd.address, 'PING'), 'PONG');
    assert.match(await clamdCommand(clamd.address, 'VERSION'), /^ClamAV \d+\.\d+/);
  });

  it('finds EICAR in a plain message body', async () => {
    const message = plainMessage({ body: `Look:\r\n${EICAR_STRING}\r\n` });
    assert.equal(await clamdScan(clamd.address, message), `stream: ${CLAMAV_EICAR_NAME} FOUND`);
  });

  it('finds EICAR in a base64 MIME attachment', async () => {
    const message = messageWithAttachment('eicar.com', Buffer.from(EICAR_STRING));
    assert.ok(!message.includes(EICAR_STRING), 'the attachment must be encoded');
    assert.equal(await clamdScan(clamd.address, message), `stream: ${CLAMAV_EICAR_NAME} FOUND`);
  });

  it('finds EICAR inside a zip attached to a message', async () => {
    const zip = zipArchive([
      { name: 'readme.txt', content: Buffer.from('nothing to see\r\n') },
      { name: 'eicar.com', content: Buffer.from(EICAR_STRING) },
    ]);
    assert.ok(!zip.includes(EICAR_STRING), 'the zip must be compressed');
    const message = messageWithAttachment('files.zip', zip, 'application/zip');
    assert.equal(await clamdScan(clamd.address, message), `stream: ${CLAMAV_EICAR_NAME} FOUND`);
  });

  it('finds the Moat marker and passes a clean message', async () => {
    const marked = plainMessage({ body: `marker ${CLAMAV_MARKER} here\r\n` });
    assert.equal(await clamdScan(clamd.address, marked), `stream: ${CLAMAV_MARKER_NAME} FOUND`);
    assert.equal(await clamdScan(clamd.address, plainMessage()), 'stream: OK');
  });

  it('stops answering while paused and answers again after resume', async () => {
    clamd.pause();
    await assert.rejects(clamdCommand(clamd.address, 'PING', 500), /no complete reply/);
    clamd.resume();
    assert.equal(await clamdCommand(clamd.address, 'PING'), 'PONG');
  });

  it('refuses connections after kill and comes back on the same port', async () => {
    await clamd.kill();
    await assert.rejects(clamdCommand(clamd.address, 'PING', 500), /ECONNREFUSED/);
    await clamd.start();
    assert.equal(await clamdCommand(clamd.address, 'PING'), 'PONG');
  });
});

describe('clamd harness with small limits', () => {
  let clamd: ClamdServer;

  before(async () => {
    clamd = await startClamd({ settings: { MaxFileSize: '1K', MaxScanSize: '1K' } });
  });
  after(async () => {
    await clamd?.stop();
  });

  it('reports content past the limits as Heuristics.Limits.Exceeded, not clean', async () => {
    const message = plainMessage({ body: `${'x'.repeat(4096)}\r\n` });
    const reply = await clamdScan(clamd.address, message);
    assert.match(reply, /^stream: Heuristics\.Limits\.Exceeded\.\w+ FOUND$/);
  });
});

describe('clamd harness start errors', () => {
  it("fails fast with clamd's own words when its config is refused", async () => {
    await assert.rejects(startClamd({ settings: { MaxFileSize: 'banana' } }), (error: Error) => {
      assert.equal(error.name, 'DaemonStartError');
      assert.match(error.message, /exited before answering/);
      assert.match(error.message, /Incorrect argument format for option MaxFileSize/);
      return true;
    });
  });
});
