/*
 * End to end: SMTP smuggling and dirty data, byte by byte.
 *
 * Each variant is sent raw over a socket. What Moat accepts must reach the internal server
 * CRLF-only and correctly dot-stuffed; what it refuses must never reach it at all.
 */

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startDownstream, type Downstream } from '../harness/downstream';
import { startGateway, type Gateway } from '../harness/gateway';
import { SmtpTalk } from '../harness/smtp-talk';

let downstream: Downstream;
let gateway: Gateway;

before(async () => {
  downstream = await startDownstream();
  gateway = await startGateway({
    env: { MOAT_DOWNSTREAM: downstream.address }, ini: '[smtp]\ngreeting_delay = 300ms\n',
  });
});

after(async () => {
  await gateway?.stop();
  await downstream?.stop();
});

/** Opens a transaction up to the 354 and returns the session. */
async function openData(): Promise<SmtpTalk> {
  const talk = await SmtpTalk.connect(gateway.host, gateway.port);
  await talk.expect(220);
  assert.equal((await talk.command('EHLO client.example.org')).code, 250);
  assert.equal((await talk.command('MAIL FROM:<alice@sender.example>')).code, 250);
  assert.equal((await talk.command('RCPT TO:<bob@example.com>')).code, 250);
  assert.equal((await talk.command('DATA')).code, 354);
  return talk;
}

/** Sends raw DATA bytes (which must include the terminator) and returns the reply code. */
async function sendRaw(body: string): Promise<{ code: number; text: string }> {
  const talk = await openData();
  try {
    talk.send(Buffer.from(body, 'latin1'));
    const reply = await talk.readReply();
    return { code: reply.code, text: reply.lines.join(' ') };
  } finally {
    talk.close();
  }
}

function delivered(marker: string): boolean {
  return downstream.messages.some((message) => message.wire.includes(marker)
    || message.data.includes(marker));
}

describe('dirty data is refused and never forwarded', () => {
  const variants: Array<[string, string, RegExp]> = [
    ['bare CR inside a line', 'Subject: cr\r\n\r\nM1 one\rtwo\r\n.\r\n', /^5\.6\.0 .*bare CR/],
    ['smuggled end of data with bare CR',
      'Subject: cr2\r\n\r\nM2\r\n.\rMAIL FROM:<x@evil.example>\r\n.\r\n',
      /^5\.6\.0 /],
    ['NUL byte', 'Subject: nul\r\n\r\nM3 a\u0000b\r\n.\r\n', /^5\.6\.0 .*NUL/],
    ['line of 1001 octets', `Subject: long\r\n\r\nM4${'x'.repeat(1001)}\r\n.\r\n`,
      /^5\.6\.0 .*998/],
  ];
  for (const [name, body, text] of variants) {
    test(name, async () => {
      const marker = body.match(/M\d/)?.[0] ?? '';
      const reply = await sendRaw(body);
      assert.equal(reply.code, 554, `${name}: ${reply.code} ${reply.text}`);
      assert.match(reply.text, text);
      await sleep(100);
      assert.equal(delivered(`\r\n${marker}`), false, `${name} reached the internal server`);
    });
  }

  test('bare LF is refused with a disconnect, and nothing is forwarded', async () => {
    const talk = await openData();
    talk.send(Buffer.from('Subject: lf\r\n\r\nM5 line\n.\nMAIL FROM:<x@evil.example>\r\n.\r\n',
      'latin1'));
    const reply = await talk.readReply();
    assert.ok(reply.code >= 400 && reply.code < 600, `got ${reply.code}`);
    assert.equal(await talk.waitForClose(), true);
    await sleep(100);
    assert.equal(delivered('M5 line'), false);
  });

  test('too many header lines', async () => {
    const headers = Array.from({ length: 1001 }, (_, index) => `X-H${index}: v\r\n`).join('');
    const reply = await sendRaw(`${headers}\r\nM6\r\n.\r\n`);
    assert.equal(reply.code, 554);
    assert.match(reply.text, /header/);
  });
});

describe('what is forwarded is clean', () => {
  test('dot-stuffing survives: lines starting with a dot arrive intact, stuffed on the '
    + 'wire', async () => {
    const count = downstream.messages.length;
    const reply = await sendRaw('Subject: dots\r\n\r\n..leading dot\r\n...two dots\r\n.\r\n');
    assert.equal(reply.code, 250);
    const [message] = (await downstream.waitForMessages(count + 1)).slice(-1);
    assert.ok(message);
    assert.ok(message.data.includes('\r\n.leading dot\r\n..two dots\r\n'), message.data.toString());
    assert.ok(message.wire.includes('\r\n..leading dot\r\n...two dots\r\n'));
    assert.doesNotMatch(message.wire.toString('latin1'), /[^\r]\n|\r[^\n]/, 'wire is CRLF-only');
  });

  test('commands pipelined after the final dot are refused, not run', async () => {
    const talk = await openData();
    try {
      const count = downstream.messages.length;
      talk.send('Subject: pipe\r\n\r\nM7\r\n.\r\nMAIL FROM:<x@evil.example>\r\n'
        + 'RCPT TO:<bob@example.com>\r\n');
      const first = await talk.readReply();
      assert.equal(first.code, 250);
      const next = await talk.readReply();
      assert.equal(next.code, 503);
      await sleep(200);
      assert.equal(downstream.messages.length, count + 1);
    } finally {
      talk.close();
    }
  });

  test('commands sent before the greeting get 554 and a disconnect', async () => {
    const talk = await SmtpTalk.connect(gateway.host, gateway.port);
    talk.send('EHLO early.example\r\nMAIL FROM:<x@evil.example>\r\n');
    const refused = await talk.readReply();
    assert.equal(refused.code, 554);
    assert.match(refused.lines.join(' '), /^5\.5\.0 /);
    assert.equal(await talk.waitForClose(), true);
    const line = await gateway.waitForDecision((entry) => entry['reason'] === 'early-talker');
    assert.equal(line['action'], 'reject');
  });
});
