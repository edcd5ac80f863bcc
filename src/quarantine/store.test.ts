/*
 * The quarantine store on real files in a temporary folder: what store() leaves on disk,
 * listing and filters, lookups by good and bad ids, delete, purge by age, usage, locks and
 * crash debris.
 */

import assert from 'node:assert/strict';
import {
  existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, beforeEach, describe, it } from 'node:test';
import { parseAge } from './age';
import { QuarantineIdError, QuarantineIoError, QuarantineNotFoundError } from './errors';
import { ID_PATTERN, QuarantineStore, type StoreInput } from './store';

const MESSAGE = 'Received: from mx.sender.example\r\nFrom: "Alice" <alice@sender.example>\r\n'
  + 'Subject: Cheap\r\n offers\r\nTo: bob@example.com\r\n\r\nBuy now.\r\n.. not stuffed\r\n';

const folders: string[] = [];
after(() => folders.forEach((dir) => rmSync(dir, { recursive: true, force: true })));

function input(overrides: Partial<StoreInput> = {}): StoreInput {
  return {
    messageId: 'A1B2C3D4.1',
    receivedAt: new Date('2026-12-03T10:00:00Z'),
    envelope: { from: 'alice@sender.example', to: ['bob@example.com', 'carol@example.com'] },
    client: { ip: '203.0.113.7', helo: 'mx.sender.example', tls: false },
    verdict: {
      action: 'quarantine', reason: 'spam-quarantine',
      reply: { code: 250, enhanced: '2.0.0', text: 'Message accepted' }, decidedBy: 'spamd',
    },
    results: [
      { check: 'dirty-data', result: 'pass' },
      { check: 'spamd', result: 'fail', action: 'quarantine', reason: 'clean',
        evidence: { score: 1000 } },
    ],
    addedHeaders: [['X-Spam-Flag', 'YES']],
    ...overrides,
  } as StoreInput;
}

const source = (text: string) => () => Readable.from([Buffer.from(text, 'latin1')]);

describe('QuarantineStore', () => {
  let dir: string;
  let clock: Date;
  let store: QuarantineStore;

  beforeEach(() => {
    dir = join(mkdtempSync(join(tmpdir(), 'moat-quarantine-')), 'quarantine');
    folders.push(dir);
    clock = new Date('2026-12-03T10:00:05Z');
    store = new QuarantineStore(dir, { node: 'gw1', now: () => clock });
  });

  it('stores the bytes as given and a record with envelope, verdict and reasons', async () => {
    const record = await store.store(input(), source(MESSAGE));

    assert.match(record.id, ID_PATTERN);
    assert.match(record.id, /^20261203-100005-/);
    assert.equal(readFileSync(join(dir, `${record.id}.eml`), 'latin1'), MESSAGE);
    const onDisk = JSON.parse(readFileSync(join(dir, `${record.id}.json`), 'utf8'));
    assert.deepEqual(onDisk, record);
    assert.equal(record.status, 'held');
    assert.equal(record.node, 'gw1');
    assert.equal(record.size, Buffer.byteLength(MESSAGE, 'latin1'));
    assert.match(record.sha256, /^[0-9a-f]{64}$/);
    assert.deepEqual(record.envelope.to, ['bob@example.com', 'carol@example.com']);
    assert.deepEqual(record.reasons, ['spam-quarantine', 'clean']);
    assert.equal(record.subject, 'Cheap offers');
    assert.equal(record.headerFrom, '"Alice" <alice@sender.example>');
    assert.deepEqual(record.addedHeaders, [['X-Spam-Flag', 'YES']]);
    assert.deepEqual(readdirSync(join(dir, 'tmp')), [], 'nothing left in tmp/');
    const events = readFileSync(join(dir, 'events.log'), 'utf8').trim().split('\n');
    assert.equal(JSON.parse(events[0] ?? '').event, 'stored');
  });

  it('leaves nothing behind when the message cannot be read', async () => {
    const broken = () => new Readable({
      read() {
        this.destroy(new Error('client went away'));
      },
    });
    await assert.rejects(store.store(input(), broken), QuarantineIoError);
    assert.deepEqual(
      readdirSync(dir).filter((name) => name !== 'tmp' && name !== 'events.log'), []);
    assert.deepEqual(readdirSync(join(dir, 'tmp')), []);
  });

  it('fails with QuarantineIoError when the folder cannot be created', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'moat-quarantine-file-')), 'plain-file');
    folders.push(file);
    writeFileSync(file, 'not a folder');
    const blocked = new QuarantineStore(join(file, 'quarantine'));
    await assert.rejects(blocked.store(input(), source(MESSAGE)), QuarantineIoError);
  });

  it('lists held messages oldest first, filtered by reason and age', async () => {
    const first = await store.store(input(), source(MESSAGE));
    clock = new Date('2026-12-05T10:00:00Z');
    const second = await store.store(input({
      verdict: { action: 'quarantine', reason: 'malware-found',
        reply: { code: 250, enhanced: '2.0.0', text: 'ok' }, decidedBy: 'clamd' },
      results: [],
    }), source(MESSAGE));

    assert.deepEqual((await store.list()).map((record) => record.id), [first.id, second.id]);
    assert.deepEqual((await store.list({ reason: 'malware-found' })).map((r) => r.id), [second.id]);
    assert.deepEqual((await store.list({ reason: 'clean' })).map((r) => r.id), [first.id]);
    assert.deepEqual((await store.list({ olderThanMs: parseAge('1d') })).map((r) => r.id),
      [first.id]);
    assert.deepEqual(await store.list({ olderThanMs: parseAge('3d') }), []);
  });

  it('refuses malformed ids before touching a path, and says when an id is unknown', async () => {
    for (const bad of ['../../etc/passwd', '', '20261203-100005-ZZZZZZZZZZZZ', 'x.json']) {
      await assert.rejects(store.get(bad), QuarantineIdError);
    }
    await assert.rejects(store.get('20261203-100005-0123456789ab'), QuarantineNotFoundError);
    await assert.rejects(store.readMessage('20261203-100005-0123456789ab'),
      QuarantineNotFoundError);
  });

  it('deletes one message and logs who did it', async () => {
    const kept = await store.store(input(), source(MESSAGE));
    const gone = await store.store(input(), source(MESSAGE));
    await store.delete(gone.id, 'admin');

    assert.equal(existsSync(join(dir, `${gone.id}.eml`)), false);
    assert.equal(existsSync(join(dir, `${gone.id}.json`)), false);
    assert.deepEqual((await store.list()).map((record) => record.id), [kept.id]);
    await assert.rejects(store.delete(gone.id, 'admin'), QuarantineNotFoundError);
    const lines = readFileSync(store.eventsLog, 'utf8').trim().split('\n')
      .map((l) => JSON.parse(l));
    assert.deepEqual(lines.at(-1), { ts: clock.toISOString(), event: 'deleted', id: gone.id,
      node: 'gw1', by: 'admin' });
  });

  it('purges by age, held and released alike, and counts usage by status', async () => {
    const old = await store.store(input(), source(MESSAGE));
    const oldReleased = await store.store(input(), source(MESSAGE));
    await store.recordRelease(oldReleased.id, { by: 'admin', at: clock.toISOString(),
      to: ['bob@example.com'], reply: '250 2.0.0 ok', downstream: '127.0.0.1:25' });
    clock = new Date('2027-01-10T00:00:00Z');
    const fresh = await store.store(input(), source(MESSAGE));

    const size = Buffer.byteLength(MESSAGE, 'latin1');
    assert.deepEqual(await store.usage(), {
      held: { count: 2, bytes: 2 * size }, released: { count: 1, bytes: size },
    });
    const purged = await store.purge(parseAge('30d'), 'retention');
    assert.deepEqual(purged.map((record) => record.id).sort(), [old.id, oldReleased.id].sort());
    assert.deepEqual((await store.list({ status: 'any' })).map((record) => record.id), [fresh.id]);
    assert.deepEqual(await store.usage(), {
      held: { count: 1, bytes: size }, released: { count: 0, bytes: 0 },
    });
  });

  it('lets one holder lock a message at a time', async () => {
    const record = await store.store(input(), source(MESSAGE));
    const unlock = await store.lock(record.id, 'release');
    await assert.rejects(store.lock(record.id, 'delete'),
      (error: unknown) => error instanceof QuarantineIoError && error.lockHeld);
    await unlock();
    const again = await store.lock(record.id, 'delete');
    await again();
  });

  it('clears crash debris older than an hour when purging, and keeps newer files', async () => {
    await store.store(input(), source(MESSAGE));
    const debris = join(dir, 'tmp', '20261203-100005-aaaaaaaaaaaa.eml');
    const orphan = join(dir, '20261203-100005-bbbbbbbbbbbb.eml');
    const recent = join(dir, 'tmp', '20261203-100005-cccccccccccc.eml');
    for (const path of [debris, orphan, recent]) writeFileSync(path, 'partial');
    const longAgo = (clock.getTime() - 2 * 3_600_000) / 1000;
    utimesSync(debris, longAgo, longAgo);
    utimesSync(orphan, longAgo, longAgo);
    utimesSync(recent, clock.getTime() / 1000, clock.getTime() / 1000);

    await store.purge(parseAge('30d'), 'retention');
    assert.equal(existsSync(debris), false);
    assert.equal(existsSync(orphan), false);
    assert.equal(existsSync(recent), true);
  });
});
