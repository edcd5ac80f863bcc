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

  it('agrees with a byte-by-byte reading on random messages and random chunkings', () => {
    let seed = 7;
    const random = (below: number): number => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % below;
    };
    const atoms = ['a', 'bc', '.', '..', '\r\n', '\r\n', '\r\n.', '\r', '\n'];
    for (let round = 0; round < 3000; round++) {
      const text = Array.from({ length: 1 + random(12) }, () => atoms[random(atoms.length)])
        .join('');
      // Mostly clean messages: drop the bare CR and LF atoms from two rounds in three.
      const raw = latin1(round % 3 === 0 ? text : text.replace(/\r(?!\n)|(?<!\r)\n/g, ''));
      const chunks: Buffer[] = [];
      for (let start = 0; start < raw.length;) {
        const end = Math.min(raw.length, start + 1 + random(5));
        chunks.push(raw.subarray(start, end));
        start = end;
      }
      assert.deepEqual(outcome(() => dotStuffChunks(chunks)), byteByByte(raw),
        JSON.stringify(raw.toString('latin1')));
    }
  });
});

function outcome(run: () => Buffer): string {
  try {
    return run().toString('latin1');
  } catch (error) {
    return `error: ${(error as Error).message}`;
  }
}

/** The rules read one byte at a time: the reference for the chunked implementation. */
function byteByByte(raw: Buffer): string {
  let out = '';
  let atLineStart = true;
  for (let index = 0; index < raw.length; index++) {
    const byte = raw[index];
    if (byte === 0x0d && raw[index + 1] !== 0x0a) {
      return outcome(() => {
        throw new MessageInputError(index === raw.length - 1 ? 'bare CR at end of message'
          : 'bare CR', index);
      });
    }
    if (byte === 0x0a && raw[index - 1] !== 0x0d) {
      return outcome(() => {
        throw new MessageInputError('bare LF', index);
      });
    }
    if (atLineStart && byte === 0x2e) out += '.';
    atLineStart = byte === 0x0a;
    out += String.fromCharCode(byte ?? 0);
  }
  return out + (atLineStart ? '.\r\n' : '\r\n.\r\n');
}
