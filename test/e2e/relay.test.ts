/*
 * End to end: relay control and recipient validation, over real SMTP.
 *
 * A real Moat process, a real SMTP server as the internal mailbox server, and a raw client.
 * Every open-relay trick must be refused at RCPT and never reach the internal server.
 */

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startDownstream, type Downstream } from '../harness/downstream';
import { startGateway, type Gateway } from '../harness/gateway';
import { SmtpTalk, sendMail } from '../harness/smtp-talk';

let downstream: Downstream;
let gateway: Gateway;

before(async () => {
  downstream = await startDownstream();
  gateway = await startGateway({
    env: { MOAT_DOWNSTREAM: downstream.address, MOAT_DOMAINS: 'example.com,example.net' },
    ini: '[domain example.net]\nrecipients = list\n',
    files: { 'recipients.txt': 'listed@example.net\n' },
  });
});

after(async () => {
  await gateway?.stop();
  await downstream?.stop();
});

async function rcptReply(path: string): Promise<{ code: number; text: string }> {
  const talk = await SmtpTalk.connect(gateway.host, gateway.port);
  try {
    await talk.expect(220);
    await talk.command('EHLO client.example.org');
    assert.equal((await talk.command('MAIL FROM:<sender@sender.example>')).code, 250);
    const reply = await talk.command(`RCPT TO:${path}`);
    await talk.command('QUIT');
    return { code: reply.code, text: reply.lines.join(' ') };
  } finally {
    talk.close();
  }
}

describe('relay control', () => {
  test('a recipient in an accepted domain is accepted and the message delivered', async () => {
    const steps = await sendMail({
      host: gateway.host, port: gateway.port, from: 'alice@sender.example',
      to: ['bob@example.com'], data: 'Subject: hello\r\n\r\nHi Bob\r\n',
    });
    const final = steps.find((step) => step.step === 'message');
    assert.equal(final?.reply.code, 250);
    const [message] = await downstream.waitForMessages(1);
    assert.deepEqual(message?.rcptTo, ['bob@example.com']);
    assert.equal(message?.mailFrom, 'alice@sender.example');
  });

  test('any other domain is relay denied with 550 5.7.1', async () => {
    for (const path of [
      '<bob@other.example>', '<bob@sub.example.com>', '<bob@example.com.evil.example>',
    ]) {
      const reply = await rcptReply(path);
      assert.equal(reply.code, 550, path);
      assert.match(reply.text, /^5\.7\.1 /, path);
    }
    const line = await gateway.waitForDecision((entry) => entry['reason'] === 'relay-denied');
    assert.equal(line['action'], 'reject');
  });

  const tricks: Array<[string, string]> = [
    ['percent hack', '<victim%target.example@example.com>'],
    ['quoted local part with @', '<"victim@target.example"@example.com>'],
    ['source route', '<@example.com:victim@target.example>'],
    ['source route list', '<@example.com,@relay.example:victim@target.example>'],
    ['bang path', '<target.example!victim@example.com>'],
    ['bang path without domain', '<target.example!victim>'],
    ['address literal', '<postmaster@[192.0.2.1]>'],
    ['IPv6 address literal', '<postmaster@[IPv6:2001:db8::1]>'],
    ['empty recipient', '<>'],
    ['missing domain', '<victim>'],
    ['two @', '<victim@target.example@example.com>'],
    ['trailing dot', '<victim@example.com.>'],
    ['unbalanced bracket', '<victim@example.com'],
  ];
  for (const [name, path] of tricks) {
    test(`open-relay trick refused: ${name}`, async () => {
      const reply = await rcptReply(path);
      assert.ok(reply.code >= 500 && reply.code < 600, `${path} got ${reply.code} ${reply.text}`);
    });
  }

  test('no trick ever reached the internal server', () => {
    for (const message of downstream.messages) {
      for (const recipient of message.rcptTo) {
        assert.match(recipient, /^[a-z0-9.]+@example\.com$/, `relayed to ${recipient}`);
      }
    }
  });
});

describe('recipient validation', () => {
  test('a list-mode domain refuses unknown users at RCPT with 550 5.1.1', async () => {
    const unknown = await rcptReply('<nobody@example.net>');
    assert.equal(unknown.code, 550);
    assert.match(unknown.text, /^5\.1\.1 /);
    const known = await rcptReply('<listed@example.net>');
    assert.equal(known.code, 250);
  });

  test('a refused recipient does not stop the accepted ones', async () => {
    const before = downstream.messages.length;
    const steps = await sendMail({
      host: gateway.host, port: gateway.port, from: 'alice@sender.example',
      to: ['nobody@example.net', 'listed@example.net', 'carol@example.com'],
      data: 'Subject: mixed\r\n\r\nHello\r\n',
    });
    assert.deepEqual(
      steps.filter((step) => step.step.startsWith('RCPT')).map((step) => step.reply.code),
      [550, 250, 250]);
    assert.equal(steps.find((step) => step.step === 'message')?.reply.code, 250);
    const messages = await downstream.waitForMessages(before + 1);
    assert.deepEqual(messages.at(-1)?.rcptTo, ['listed@example.net', 'carol@example.com']);
  });
});
