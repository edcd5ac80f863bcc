/*
 * Tests of local Maildir delivery in a temporary state directory: the stored bytes, the
 * tmp -> new move, unique names, and a tempfail when the message cannot be read or written.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, describe, it } from 'node:test';

import { MaildirDelivery } from './maildir';
import { messageSource } from './test-server';

const RAW = 'From: a@sender.example\r\nSubject: hi\r\n\r\n.dot line\r\nbody\r\n';
const ENVELOPE = { sender: 'a@sender.example', recipients: ['bob@corp.example', 'c@corp.example'] };

describe('MaildirDelivery', () => {
  const stateDir = mkdtempSync(path.join(tmpdir(), 'moat-maildir-'));
  after(() => rmSync(stateDir, { recursive: true, force: true }));

  it('stores the message as given under new/, with a Return-Path line', async () => {
    const delivery = new MaildirDelivery(stateDir);

    const result = await delivery.deliver(ENVELOPE, messageSource(RAW, 5), RAW.length);

    assert.equal(result.outcome, 'delivered');
    assert.equal(result.code, 250);
    assert.equal(result.downstream, `maildir:${path.join(stateDir, 'maildir')}`);
    assert.deepEqual(result.recipients.map(({ accepted }) => accepted), [true, true]);
    const stored = readdirSync(path.join(stateDir, 'maildir', 'new'));
    assert.equal(stored.length, 1);
    assert.deepEqual(readdirSync(path.join(stateDir, 'maildir', 'tmp')), []);
    assert.deepEqual(readdirSync(path.join(stateDir, 'maildir', 'cur')), []);
    const bytes = readFileSync(path.join(stateDir, 'maildir', 'new', stored[0] ?? ''), 'latin1');
    assert.equal(bytes, `Return-Path: <a@sender.example>\r\n${RAW}`);
  });

  it('gives every message its own file name', async () => {
    const delivery = new MaildirDelivery(stateDir);
    const before = readdirSync(path.join(stateDir, 'maildir', 'new')).length;

    await Promise.all([1, 2, 3].map(() => delivery.deliver(ENVELOPE, messageSource(RAW), 1)));

    assert.equal(readdirSync(path.join(stateDir, 'maildir', 'new')).length, before + 3);
  });

  it('tempfails 451 4.3.0 and leaves nothing behind when the message cannot be read', async () => {
    const delivery = new MaildirDelivery(stateDir);
    const before = readdirSync(path.join(stateDir, 'maildir', 'new')).length;
    const broken = (): Readable => new Readable({
      read() {
        this.destroy(new Error('spool file vanished'));
      },
    });

    const result = await delivery.deliver(ENVELOPE, broken, 1);

    assert.deepEqual([result.outcome, result.code, result.enhanced], ['tempfail', 451, '4.3.0']);
    assert.match(result.detail, /spool file vanished/);
    assert.equal(readdirSync(path.join(stateDir, 'maildir', 'new')).length, before);
    assert.deepEqual(readdirSync(path.join(stateDir, 'maildir', 'tmp')), []);
  });

  it('tempfails when the Maildir cannot be created', async () => {
    const brokenState = mkdtempSync(path.join(tmpdir(), 'moat-maildir-broken-'));
    writeFileSync(path.join(brokenState, 'maildir'), 'a file where the directory should be');
    try {
      const delivery = new MaildirDelivery(brokenState);
      const result = await delivery.deliver(ENVELOPE, messageSource(RAW), 1);
      assert.deepEqual([result.outcome, result.enhanced], ['tempfail', '4.3.0']);
      assert.match(result.detail, /ENOTDIR|EEXIST/);
    } finally {
      rmSync(brokenState, { recursive: true, force: true });
    }
  });
});
