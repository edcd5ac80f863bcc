/*
 * openAuthMessage with a source that, like Haraka's message stream, allows one pipe at a time
 * (a unit test: the gateway path is in test/e2e/auth.test.ts).
 */

import assert from 'node:assert/strict';
import { Readable, Writable } from 'node:stream';
import { describe, it } from 'node:test';

import { openAuthMessage } from './message-reader';

/** A 2 MB message in 64 KB chunks, and whether a pipe from it is still running. */
function source() {
  const body = Buffer.alloc(2 * 1024 * 1024, 0x61);
  const message = Buffer.concat([Buffer.from('From: a@example.org\r\nSubject: s\r\n\r\n'), body]);
  const state = { piping: false };
  const pipeInto = (destination: NodeJS.WritableStream): void => {
    if (state.piping) throw new Error('Cannot pipe while currently piping');
    state.piping = true;
    const chunks = [];
    for (let at = 0; at < message.length; at += 64 * 1024) {
      chunks.push(message.subarray(at, at + 64 * 1024));
    }
    const readable = Readable.from(chunks);
    readable.once('end', () => { state.piping = false; });
    readable.pipe(destination as Writable);
  };
  return { message, state, pipeInto };
}

describe('openAuthMessage', () => {
  it('passes the message through unchanged and keeps its header block', async () => {
    const { message, pipeInto } = source();
    const reader = openAuthMessage(pipeInto);
    const chunks: Buffer[] = [];
    for await (const chunk of reader.stream) chunks.push(chunk as Buffer);
    assert.ok(Buffer.concat(chunks).equals(message));
    assert.equal(await reader.headerBlock, 'From: a@example.org\r\nSubject: s\r\n');
  });

  it('release() after a reader gave up midway: the source ends, so it can be read again',
    async () => {
      const { state, pipeInto } = source();
      const reader = openAuthMessage(pipeInto);
      // A reader that takes one chunk and then never asks for more (a timed-out check).
      const stuck = new Writable({ highWaterMark: 1, write: () => undefined });
      reader.stream.pipe(stuck);
      await new Promise((resolve) => setTimeout(resolve, 20));
      assert.equal(state.piping, true, 'the stuck reader holds the source');

      await reader.release();
      assert.equal(state.piping, false, 'the source has ended');
      assert.equal(await reader.headerBlock, 'From: a@example.org\r\nSubject: s\r\n');
      assert.doesNotThrow(() => pipeInto(new Writable({ write: (_c, _e, done) => done() })));
    });

  it('finds the blank line split across chunks, before the message ends', async () => {
    // Line by line, as Haraka sends it, with CRLF CRLF cut in two; the source stays open.
    const open = new Readable({ read: () => undefined });
    for (const piece of ['From: a@example.org\r\n', 'Subject: s\r\n\r', '\nbody\r\n']) {
      open.push(Buffer.from(piece));
    }
    const reader = openAuthMessage((destination) => open.pipe(destination as Writable));
    reader.stream.resume();
    const notYet = new Promise<string>((resolve) => setTimeout(() => resolve('not settled'), 2000));
    assert.equal(await Promise.race([reader.headerBlock, notYet]),
      'From: a@example.org\r\nSubject: s\r\n');
    open.push(null);
    await reader.release();
  });
});
