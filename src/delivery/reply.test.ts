/*
 * Unit tests for SMTP reply parsing and for the text Moat may relay from the downstream.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { parseReply, ReplyParser, ReplyProtocolError, safeReplyText } from './reply';

describe('parseReply', () => {
  it('reads a single-line reply with an enhanced status code', () => {
    const reply = parseReply('550 5.1.1 <nobody@corp.example>: no such user\r\n');
    assert.equal(reply.code, 550);
    assert.equal(reply.enhanced, '5.1.1');
    assert.equal(reply.text, '<nobody@corp.example>: no such user');
  });

  it('reads a reply without an enhanced code', () => {
    const reply = parseReply('220 mail.corp.example ESMTP ready');
    assert.deepEqual([reply.code, reply.enhanced], [220, '']);
    assert.equal(reply.text, 'mail.corp.example ESMTP ready');
  });

  it('ignores an enhanced code whose class disagrees with the reply code', () => {
    const reply = parseReply('250 5.1.1 odd but not ours to fix');
    assert.equal(reply.enhanced, '');
    assert.equal(reply.text, '5.1.1 odd but not ours to fix');
  });

  it('joins a multi-line reply and keeps each line for EHLO keywords', () => {
    const reply = parseReply(
      '250-mail.corp.example\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250 8BITMIME\r\n');
    assert.equal(reply.code, 250);
    assert.deepEqual(reply.lines, ['mail.corp.example', 'PIPELINING', 'SIZE 1000', '8BITMIME']);
  });

  it('accepts a bare code with nothing after it', () => {
    const reply = parseReply('250 ');
    assert.equal(reply.text, '');
  });

  it('refuses a line that is not a reply', () => {
    assert.throws(() => parseReply('hello there\r\n'), ReplyProtocolError);
  });

  it('refuses a code change inside a multi-line reply', () => {
    assert.throws(() => parseReply('250-one\r\n550 two\r\n'), ReplyProtocolError);
  });
});

describe('ReplyParser', () => {
  it('assembles replies split across arbitrary chunks', () => {
    const wire = Buffer.from('250-first\r\n250 second\r\n354 go ahead\r\n');
    for (let cut = 1; cut < wire.length; cut++) {
      const parser = new ReplyParser();
      const replies = [...parser.push(wire.subarray(0, cut)), ...parser.push(wire.subarray(cut))];
      assert.deepEqual(replies.map((reply) => reply.code), [250, 354], `cut at ${cut}`);
      assert.equal(replies[0]?.text, 'first second');
    }
  });

  it('refuses an endless line instead of buffering it', () => {
    const parser = new ReplyParser();
    assert.throws(() => parser.push(Buffer.alloc(10_000, 0x41)), ReplyProtocolError);
  });

  it('refuses an endless multi-line reply', () => {
    const parser = new ReplyParser();
    assert.throws(() => parser.push(Buffer.from('250-x\r\n'.repeat(500))), ReplyProtocolError);
  });
});

describe('safeReplyText', () => {
  it('removes CR, LF, control and non-ASCII characters', () => {
    const text = safeReplyText('bad\r\n250 injected\x00 caf\u00e9\tend');
    assert.equal(text, 'bad 250 injected caf end');
  });

  it('cuts long text to 200 characters', () => {
    const text = safeReplyText('x'.repeat(1000));
    assert.equal(text.length, 200);
    assert.ok(text.endsWith('...'));
  });

  it('leaves short printable text alone', () => {
    assert.equal(safeReplyText('Mailbox full'), 'Mailbox full');
  });
});
