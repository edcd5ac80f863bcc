/*
 * Releasing to a real SMTP server on loopback (src/delivery/test-server.ts) through the real
 * Forwarder: the bytes that arrive, the record afterwards, and every way a release is refused
 * or fails.
 */

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, beforeEach, describe, it } from 'node:test';
import { Forwarder } from '../delivery/forwarder';
import { closedPort, RecordingServer, testDownstreamConfig } from '../delivery/test-server';
import { ReleaseDeliveryError, ReleaseRefusedError } from './errors';
import { releaseMessage } from './release';
import { QuarantineStore, type QuarantineRecord } from './store';

const MESSAGE = 'Received: from mx.sender.example\r\nFrom: alice@sender.example\r\n'
  + 'Subject: held\r\n\r\n.leading dot\r\nbody\r\n';

describe('releaseMessage', () => {
  let server: RecordingServer;
  let forwarder: Forwarder;
  let store: QuarantineStore;
  let record: QuarantineRecord;
  const folders: string[] = [];
  const at = new Date('2026-12-04T08:30:00.000Z');

  before(async () => {
    server = await RecordingServer.start();
    forwarder = new Forwarder(testDownstreamConfig(server.address));
  });
  after(async () => {
    await forwarder.close();
    await server.stop();
    folders.forEach((dir) => rmSync(dir, { recursive: true, force: true }));
  });
  beforeEach(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'moat-release-'));
    folders.push(dir);
    store = new QuarantineStore(dir, { node: 'gw1' });
    record = await store.store({
      messageId: 'T1', receivedAt: at,
      envelope: { from: 'alice@sender.example', to: ['bob@example.com'] },
      client: { ip: '203.0.113.7' },
      verdict: { action: 'quarantine', reason: 'clean',
        reply: { code: 250, enhanced: '2.0.0', text: 'ok' }, decidedBy: 'test' },
      results: [], addedHeaders: [['X-Spam-Flag', 'YES']],
    }, () => Readable.from([Buffer.from(MESSAGE, 'latin1')]));
    server.messages.length = 0;
    server.finalReply = null;
  });

  it('delivers the stored bytes behind one X-Moat-Released header and records it', async () => {
    const outcome = await releaseMessage(store, forwarder, record.id, {
      by: 'admin', now: () => at,
    });

    const header = `X-Moat-Released: by admin at ${at.toISOString()}, id ${record.id}`;
    assert.equal(outcome.header, header);
    assert.equal(server.messages.length, 1);
    const received = server.messages[0]!;
    assert.equal(received.bytes.toString('latin1'), `${header}\r\n${MESSAGE}`);
    assert.equal(received.sender, 'alice@sender.example');
    assert.deepEqual(received.recipients, ['bob@example.com']);

    const after = await store.get(record.id);
    assert.equal(after.status, 'released');
    assert.equal(after.releases.length, 1);
    assert.equal(after.releases[0]?.by, 'admin');
    assert.deepEqual(after.releases[0]?.to, ['bob@example.com']);
    assert.match(after.releases[0]?.reply ?? '', /^250 /);
    assert.deepEqual(await store.list(), [], 'a released message is no longer listed as held');
  });

  it('sends to --to recipients instead, and refuses a second release unless asked', async () => {
    await releaseMessage(store, forwarder, record.id, { by: 'admin', to: ['audit@example.com'] });
    assert.deepEqual(server.messages[0]?.recipients, ['audit@example.com']);

    await assert.rejects(releaseMessage(store, forwarder, record.id, { by: 'other' }),
      (error: unknown) => error instanceof ReleaseRefusedError && /already released by admin/
        .test(error.message));
    await releaseMessage(store, forwarder, record.id, { by: 'other', again: true });
    assert.equal(server.messages.length, 2);
    assert.equal((await store.get(record.id)).releases.length, 2);
  });

  it('refuses a --by or --to that cannot go into a header or envelope', async () => {
    for (const by of ['', 'admin\r\nBcc: x@evil.example', 'a b', 'x'.repeat(65)]) {
      await assert.rejects(releaseMessage(store, forwarder, record.id, { by }),
        ReleaseRefusedError, JSON.stringify(by));
    }
    await assert.rejects(releaseMessage(store, forwarder, record.id,
      { by: 'admin', to: ['<bob@example.com>'] }), ReleaseRefusedError);
    assert.equal(server.messages.length, 0);
  });

  it('keeps the message held when the internal server refuses, temporary or for good', async () => {
    server.finalReply = { code: 452, message: 'mailbox full' };
    await assert.rejects(releaseMessage(store, forwarder, record.id, { by: 'admin' }),
      (error: unknown) => error instanceof ReleaseDeliveryError && error.temporary);
    server.finalReply = { code: 554, message: 'policy' };
    await assert.rejects(releaseMessage(store, forwarder, record.id, { by: 'admin' }),
      (error: unknown) => error instanceof ReleaseDeliveryError && !error.temporary);
    assert.equal((await store.get(record.id)).status, 'held');

    // The lock was given back each time: a later release works.
    server.finalReply = null;
    await releaseMessage(store, forwarder, record.id, { by: 'admin' });
  });

  it('reports an unreachable internal server as temporary', async () => {
    const down = new Forwarder(testDownstreamConfig(await closedPort()));
    try {
      await assert.rejects(releaseMessage(store, down, record.id, { by: 'admin' }),
        (error: unknown) => error instanceof ReleaseDeliveryError && error.temporary);
    } finally {
      await down.close();
    }
    assert.equal((await store.get(record.id)).status, 'held');
  });
});
