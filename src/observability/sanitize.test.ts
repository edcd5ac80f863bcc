/*
 * sanitizeForLog and sanitizeValue: what untrusted text looks like once it reaches a log line.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { MAX_FIELD_CHARS, sanitizeForLog, sanitizeValue } from './sanitize';

test('printable ASCII passes unchanged', () => {
  const printable = 'alice@example.com <x> "quoted" ~!';
  assert.equal(sanitizeForLog(printable), printable);
});

test('CR, LF, NUL, ESC, TAB and DEL become \\xNN', () => {
  assert.equal(sanitizeForLog('a\r\nb\0c\x1b[31md\te\x7f'),
    'a\\x0d\\x0ab\\x00c\\x1b[31md\\x09e\\x7f');
});

test('a backslash is escaped, so a client cannot forge an escape sequence', () => {
  assert.equal(sanitizeForLog('fake\\x0dCR'), 'fake\\\\x0dCR');
  assert.notEqual(sanitizeForLog('fake\\x0d'), sanitizeForLog('fake\r'));
});

test('non-ASCII: latin-1 range as \\xNN, beyond as \\u{N}, lone surrogates too', () => {
  assert.equal(sanitizeForLog('café'), 'caf\\xe9');
  assert.equal(sanitizeForLog('ｍａｉｌ'), '\\u{ff4d}\\u{ff41}\\u{ff49}\\u{ff4c}');
  assert.equal(sanitizeForLog('x😀y'), 'x\\u{1f600}y');
  assert.equal(sanitizeForLog('a\ud800b'), 'a\\u{d800}b');
  assert.equal(sanitizeForLog('\u2028\u202e'), '\\u{2028}\\u{202e}');
});

test('the output is always printable ASCII, whatever the input', () => {
  let everything = '';
  for (let code = 0; code < 0x400; code++) everything += String.fromCharCode(code);
  const cleaned = sanitizeForLog(everything, 100_000);
  assert.match(cleaned, /^[\x20-\x7e]*$/);
});

test('a long string is cut to the limit and says how much is missing', () => {
  const cleaned = sanitizeForLog('x'.repeat(10_000));
  assert.equal(cleaned, `${'x'.repeat(MAX_FIELD_CHARS)}...[+${10_000 - MAX_FIELD_CHARS}]`);
  assert.equal(sanitizeForLog('abcdef', 3), 'abc...[+3]');
  assert.equal(sanitizeForLog('abc', 3), 'abc');
});

test('the cut never splits an escape sequence', () => {
  // 9 characters, then a CR whose escape (4 characters) does not fit in 10.
  assert.equal(sanitizeForLog('123456789\rtail', 10), '123456789...[+5]');
  assert.equal(sanitizeForLog('😀😀', 12), '\\u{1f600}...[+2]');
});

test('a Buffer is shown byte by byte', () => {
  const bytes = Buffer.from([0x48, 0x69, 0x0d, 0x0a, 0xc3, 0xa9, 0xff]);
  assert.equal(sanitizeForLog(bytes), 'Hi\\x0d\\x0a\\xc3\\xa9\\xff');
});

test('null, undefined and non-strings are made into text', () => {
  assert.equal(sanitizeForLog(undefined), '');
  assert.equal(sanitizeForLog(null), '');
  assert.equal(sanitizeForLog(42), '42');
});

test('sanitizeValue cleans strings and keys at every depth and bounds size', () => {
  const cleaned = sanitizeValue({
    'rule\nid': 'ok\r\n',
    score: 5.5,
    listed: true,
    nothing: undefined,
    nested: { zones: ['zen.example\x00', 7], deeper: { a: { b: { c: { d: { e: 'lost' } } } } } },
    many: Array.from({ length: 60 }, (_, index) => index),
    notFinite: Number.NaN,
  }) as Record<string, any>;

  assert.equal(cleaned['rule\\x0aid'], 'ok\\x0d\\x0a');
  assert.equal(cleaned.score, 5.5);
  assert.equal(cleaned.listed, true);
  assert.equal('nothing' in cleaned, false);
  assert.deepEqual(cleaned.nested.zones, ['zen.example\\x00', 7]);
  assert.equal(cleaned.nested.deeper.a.b.c.d, '[too deep]');
  assert.equal(cleaned.many.length, 51);
  assert.equal(cleaned.many[50], '...[+10]');
  assert.equal(cleaned.notFinite, 'NaN');
});

test('sanitizeValue turns an Error into name, message, code and cause', () => {
  const cause = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:3310'),
    { code: 'ECONNREFUSED' });
  const error = new Error('clamd unavailable\r\nInjected: yes', { cause });
  assert.deepEqual(sanitizeValue(error), {
    name: 'Error',
    message: 'clamd unavailable\\x0d\\x0aInjected: yes',
    cause: { name: 'Error', message: 'connect ECONNREFUSED 127.0.0.1:3310', code: 'ECONNREFUSED' },
  });
});
