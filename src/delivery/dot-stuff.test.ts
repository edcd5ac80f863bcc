/*
 * Unit tests for dot-stuffing and the CRLF-only guarantee, over every chunk boundary.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { DotStuffer, dotStuffChunks } from './dot-stuff';
import { MessageInputError } from './errors';

const latin1 = (text: string): Buffer => Buffer.from(text, 'latin1');

/** Every way of cutting `raw` into two or three pieces, plus one byte at a time. */
function splittings(raw: Buffer): Buffer[][] {
  const ways: Buffer[][] = [[raw], [...raw].map((byte) => Buffer.from([byte]))];
  for (let first = 1; first < raw.length; first++) {
    ways.push([raw.subarray(0, first), raw.subarray(first)]);
    for (let second = first + 1; second < raw.length; second++) {
      ways.push([raw.subarray(0, first), raw.subarray(first, second), raw.subarray(second)]);
    }
  }
  return ways;
}

describe('DotStuffer', () => {
  it('doubles a leading dot on every line, whatever the chunk boundaries', () => {
    const raw = latin1('.first\r\nmid.dle\r\n..two\r\n.\r\nend.\r\n');
    const expected = latin1('..first\r\nmid.dle\r\n...two\r\n..\r\nend.\r\n.\r\n');
    for (const chunks of splittings(raw)) {
      assert.deepEqual(dotStuffChunks(chunks), expected, chunks.map(String).join('|'));
    }
  });

  it('adds the missing final CRLF before the terminating dot', () => {
    assert.deepEqual(dotStuffChunks([latin1('no newline')]), latin1('no newline\r\n.\r\n'));
    assert.deepEqual(dotStuffChunks([latin1('.')]), latin1('..\r\n.\r\n'));
  });

  it('sends only the terminator for an empty message', () => {
    assert.deepEqual(dotStuffChunks([]), latin1('.\r\n'));
  });

  it('refuses a bare LF at any chunk boundary', () => {
    const raw = latin1('Subject: x\r\n\r\nline\n.\r\n');
    for (const chunks of splittings(raw)) {
      assert.throws(() => dotStuffChunks(chunks), /bare LF at byte 18/);
    }
  });

  it('refuses a bare CR at any chunk boundary, including ".\\r" smuggling', () => {
    const raw = latin1('a\r\n.\rMAIL FROM:<x@example.net>\r\n');
    for (const chunks of splittings(raw)) {
      assert.throws(() => dotStuffChunks(chunks), MessageInputError);
    }
  });

  it('refuses a CR as the very last byte', () => {
    const stuffer = new DotStuffer();
    stuffer.push(latin1('text\r'));
    assert.throws(() => stuffer.finish(), /bare CR at end/);
  });

  it('passes a chunk without dots through untouched', () => {
    const chunk = latin1('plain\r\nlines\r\n');
    assert.equal(new DotStuffer().push(chunk), chunk);
  });
});
