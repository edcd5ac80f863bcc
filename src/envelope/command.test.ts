/*
 * Tests for command.ts: the path cut out of raw MAIL FROM and RCPT TO lines as clients write
 * them, including the forms Haraka would tolerate and Moat's parser must still see.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { extractCommandPath } from './command';

describe('extractCommandPath', () => {
  it('cuts the bracketed path of MAIL FROM and RCPT TO', () => {
    assert.equal(extractCommandPath('MAIL FROM:<alice@sender.example>', 'MAIL FROM'),
      '<alice@sender.example>');
    assert.equal(extractCommandPath('RCPT TO:<bob@corp.example>', 'RCPT TO'),
      '<bob@corp.example>');
  });

  it('accepts spaces after the colon and around the verb', () => {
    assert.equal(extractCommandPath('MAIL FROM: <alice@sender.example>', 'MAIL FROM'),
      '<alice@sender.example>');
    assert.equal(extractCommandPath('RCPT TO:   <bob@corp.example>', 'RCPT TO'),
      '<bob@corp.example>');
    assert.equal(extractCommandPath('MAIL  FROM : <alice@sender.example>', 'MAIL FROM'),
      '<alice@sender.example>');
  });

  it('accepts lower and mixed case verbs', () => {
    assert.equal(extractCommandPath('mail from:<alice@sender.example>', 'MAIL FROM'),
      '<alice@sender.example>');
    assert.equal(extractCommandPath('Rcpt To:<bob@corp.example>', 'RCPT TO'),
      '<bob@corp.example>');
  });

  it('stops at the closing bracket, leaving the parameters out', () => {
    assert.equal(
      extractCommandPath('MAIL FROM:<alice@sender.example> SIZE=1024 BODY=8BITMIME', 'MAIL FROM'),
      '<alice@sender.example>');
    assert.equal(extractCommandPath('RCPT TO:<bob@corp.example> NOTIFY=NEVER', 'RCPT TO'),
      '<bob@corp.example>');
  });

  it('returns the null reverse path as it is', () => {
    assert.equal(extractCommandPath('MAIL FROM:<>', 'MAIL FROM'), '<>');
    assert.equal(extractCommandPath('MAIL FROM:<> SIZE=10', 'MAIL FROM'), '<>');
  });

  it('does not end the path at a > inside a quoted local part', () => {
    assert.equal(extractCommandPath('RCPT TO:<"a>b"@corp.example> NOTIFY=NEVER', 'RCPT TO'),
      '<"a>b"@corp.example>');
  });

  it('honours an escaped quote inside a quoted local part', () => {
    assert.equal(extractCommandPath('RCPT TO:<"a\\">b"@corp.example> X=1', 'RCPT TO'),
      '<"a\\">b"@corp.example>');
  });

  it('returns the first word when the client sent no brackets', () => {
    assert.equal(extractCommandPath('MAIL FROM:alice@sender.example SIZE=10', 'MAIL FROM'),
      'alice@sender.example');
    assert.equal(extractCommandPath('RCPT TO: bob@corp.example', 'RCPT TO'), 'bob@corp.example');
  });

  it('returns an empty path when nothing follows the colon', () => {
    assert.equal(extractCommandPath('RCPT TO:', 'RCPT TO'), '');
  });

  it('returns the rest of the line when the closing bracket is missing', () => {
    assert.equal(extractCommandPath('RCPT TO:<bob@corp.example', 'RCPT TO'), '<bob@corp.example');
    assert.equal(extractCommandPath('RCPT TO:<"a>b@corp.example', 'RCPT TO'), '<"a>b@corp.example');
  });

  it('returns null for the wrong verb or a line that is not the command', () => {
    assert.equal(extractCommandPath('RCPT TO:<bob@corp.example>', 'MAIL FROM'), null);
    assert.equal(extractCommandPath('MAIL FROM:<alice@sender.example>', 'RCPT TO'), null);
    assert.equal(extractCommandPath('MAIL <alice@sender.example>', 'MAIL FROM'), null);
    assert.equal(extractCommandPath('MAILFROM:<alice@sender.example>', 'MAIL FROM'), null);
    assert.equal(extractCommandPath(' RCPT TO:<bob@corp.example>', 'RCPT TO'), null);
    assert.equal(extractCommandPath('', 'RCPT TO'), null);
  });
});
