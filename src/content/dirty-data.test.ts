/*
 * Tests for dirty-data.ts: each kind, its line and offset, limits at their boundary, and lines
 * split across chunks (a CR at the end of one chunk, its LF at the start of the next).
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  DIRTY_DATA_KINDS, DirtyDataChecker, DirtyDataStateError, checkDirtyData, type DirtyDataKind,
} from './dirty-data';

const CLEAN = 'From: a@example.com\r\nTo: b@example.com\r\nSubject: hi\r\n\r\nBody\r\n.. dot\r\n';

/** Feed the text as the given pieces and return the report. */
function feedPieces(pieces: string[], limits = {}) {
  const checker = new DirtyDataChecker(limits);
  for (const piece of pieces) checker.feed(Buffer.from(piece, 'latin1'));
  return checker.end();
}

/** Split at every LF, keeping it, as Haraka hands DATA lines over. */
function asLines(text: string): string[] {
  return text.split(/(?<=\n)/);
}

describe('checkDirtyData', () => {
  it('finds nothing in clean CRLF text and counts lines and header lines', () => {
    const report = checkDirtyData(Buffer.from(CLEAN));
    assert.equal(report.firstProblem, null);
    assert.deepEqual(report.counts, {
      'bare-cr': 0, 'nul': 0, 'bare-lf': 0, 'line-too-long': 0, 'too-many-headers': 0,
    });
    assert.deepEqual([report.lines, report.bytes, report.headerLines, report.headerEnded],
      [6, Buffer.byteLength(CLEAN), 3, true]);
  });

  const cases: Array<[string, string, DirtyDataKind, number, number]> = [
    ['a bare CR inside a line', 'Subject: a\rb\r\n\r\n', 'bare-cr', 1, 10],
    ['a smuggled end of data', 'A: b\r\n\r\nx\r\n.\r\r\nMAIL FROM:<>\r\n', 'bare-cr', 4, 12],
    ['a NUL octet', 'A: b\r\n\r\nx\u0000y\r\n', 'nul', 3, 9],
    ['a bare LF', 'A: b\r\n\r\nline\n', 'bare-lf', 3, 12],
    ['a bare LF ending the header', 'A: b\r\n\nbody\r\n', 'bare-lf', 2, 6],
  ];
  for (const [title, text, kind, line, offset] of cases) {
    it(`reports ${title} as ${kind} with line and offset`, () => {
      const report = checkDirtyData(Buffer.from(text, 'latin1'));
      assert.deepEqual(report.firstProblem, { kind, line, offset });
      assert.equal(report.counts[kind], 1);
    });
  }

  it('reports a bare CR as the very last octet', () => {
    const report = checkDirtyData(Buffer.from('A: b\r\n\r\nx\r'));
    assert.deepEqual(report.firstProblem, { kind: 'bare-cr', line: 3, offset: 9 });
    assert.equal(report.lines, 3);
  });

  it('keeps the first problem and goes on counting every kind', () => {
    const text = 'A: \u0000\r\n\r\nx\ry\rz\n\u0000\r\n';
    const report = checkDirtyData(Buffer.from(text, 'latin1'));
    assert.deepEqual(report.firstProblem, { kind: 'nul', line: 1, offset: 3 });
    assert.deepEqual([report.counts.nul, report.counts['bare-cr'], report.counts['bare-lf']],
      [2, 2, 1]);
  });
});

describe('line length', () => {
  it('accepts 998 octets plus CRLF and refuses 999 plus CRLF by default', () => {
    const longest = `A: b\r\n\r\n${'x'.repeat(998)}\r\n`;
    assert.equal(checkDirtyData(Buffer.from(longest)).firstProblem, null);
    const over = `A: b\r\n\r\n${'x'.repeat(999)}\r\n`;
    assert.deepEqual(checkDirtyData(Buffer.from(over)).firstProblem,
      { kind: 'line-too-long', line: 3, offset: 8 + 1000 });
  });

  it('counts the line ending in the limit, and each long line once', () => {
    const limits = { maxLineLength: 10 };
    assert.equal(checkDirtyData(Buffer.from('12345678\r\n'), limits).firstProblem, null);
    const report = checkDirtyData(Buffer.from(`123456789\r\n${'y'.repeat(40)}\r\nok\r\n`),
      limits);
    assert.deepEqual(report.firstProblem, { kind: 'line-too-long', line: 1, offset: 10 });
    assert.equal(report.counts['line-too-long'], 2);
  });

  it('reports the earliest offset when a long line also holds a later NUL', () => {
    const text = `${'x'.repeat(12)}\u0000\r\n`;
    const report = checkDirtyData(Buffer.from(text, 'latin1'), { maxLineLength: 10 });
    assert.deepEqual(report.firstProblem, { kind: 'line-too-long', line: 1, offset: 10 });
    assert.equal(report.counts.nul, 1);
  });

  it('finds a long line arriving in pieces, and one never ended', () => {
    const checker = new DirtyDataChecker({ maxLineLength: 10 });
    checker.feed(Buffer.from('abcdef'));
    assert.equal(checker.firstProblem, null);
    checker.feed(Buffer.from('ghijkl'));
    assert.deepEqual(checker.firstProblem, { kind: 'line-too-long', line: 1, offset: 10 });
    checker.feed(Buffer.from('mn\r\n'));
    assert.equal(checker.end().counts['line-too-long'], 1);
  });
});

describe('header lines', () => {
  it('allows the limit and reports the first header line over it', () => {
    const header = (count: number) => 'X: y\r\n'.repeat(count);
    const limits = { maxHeaderLines: 3 };
    assert.equal(checkDirtyData(Buffer.from(`${header(3)}\r\nbody\r\n`), limits).firstProblem,
      null);
    const report = checkDirtyData(Buffer.from(`${header(5)}\r\nbody\r\n`), limits);
    assert.deepEqual(report.firstProblem, { kind: 'too-many-headers', line: 4, offset: 18 });
    assert.deepEqual([report.counts['too-many-headers'], report.headerLines], [2, 5]);
  });

  it('stops counting at the first empty line', () => {
    const report = checkDirtyData(Buffer.from(`X: y\r\n\r\n${'body\r\n'.repeat(9)}`),
      { maxHeaderLines: 1 });
    assert.equal(report.firstProblem, null);
    assert.equal(report.headerLines, 1);
  });

  it('counts a header without an empty line, its last line unterminated', () => {
    const report = checkDirtyData(Buffer.from('X: y\r\nZ: w'), { maxHeaderLines: 1 });
    assert.deepEqual(report.firstProblem, { kind: 'too-many-headers', line: 2, offset: 6 });
    assert.equal(report.headerEnded, false);
  });
});

describe('chunked input', () => {
  it('gives the same report line by line, octet by octet and whole', () => {
    const text = `${CLEAN}x\ry\r\n\u0000\r\nbare\n${'z'.repeat(1200)}\r\n`;
    const whole = feedPieces([text]);
    assert.deepEqual(feedPieces(asLines(text)), whole);
    assert.deepEqual(feedPieces(text.split('')), whole);
    assert.deepEqual(whole.counts, {
      'bare-cr': 1, 'nul': 1, 'bare-lf': 1, 'line-too-long': 1, 'too-many-headers': 0,
    });
  });

  it('accepts a CRLF split between two chunks', () => {
    const report = feedPieces(['A: b\r', '\n', '\r', '\nbody\r', '\n']);
    assert.equal(report.firstProblem, null);
    assert.deepEqual([report.lines, report.headerLines, report.headerEnded], [3, 1, true]);
  });

  it('reports a CR ending one chunk as bare when the next does not start with LF', () => {
    const report = feedPieces(['A: b\r\n\r\nbody\r', 'more\r\n']);
    assert.deepEqual(report.firstProblem, { kind: 'bare-cr', line: 3, offset: 12 });
  });

  it('ignores empty chunks, even between a CR and its LF', () => {
    const report = feedPieces(['A: b\r', '', '\n']);
    assert.equal(report.firstProblem, null);
  });

  it('refuses feed() after end()', () => {
    const checker = new DirtyDataChecker();
    checker.end();
    assert.throws(() => checker.feed(Buffer.from('x\r\n')), DirtyDataStateError);
  });
});

describe('DIRTY_DATA_KINDS', () => {
  it('has a one-line meaning for each kind', () => {
    assert.deepEqual(Object.keys(DIRTY_DATA_KINDS).sort(),
      ['bare-cr', 'bare-lf', 'line-too-long', 'nul', 'too-many-headers']);
  });
});
