/*
 * Integration tests of the Forwarder against a real SMTP server on 127.0.0.1 (test-server.ts):
 * byte-exact delivery, per-recipient refusals (5xx: the others get it; 4xx: all deferred),
 * downstream errors and deadlines, bad input, recipient verification and the readiness probe.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, beforeEach, describe, it } from 'node:test';

import type { DownstreamConfig } from '../config/types';
import { Forwarder } from './forwarder';
import {
  closedPort,
  messageSource,
  RecordingServer,
  testDownstreamConfig,
} from './test-server';

const MESSAGE = [
  'From: Alice <alice@sender.example>',
  'To: bob@corp.example',
  'Subject: dots',
  '',
  '.a line starting with a dot',
  '..two dots',
  '.',
  'last line',
  '',
].join('\r\n');

describe('Forwarder against a real SMTP server', () => {
  let server: RecordingServer;
  const forwarders: Forwarder[] = [];
  const forwarder = (overrides: Partial<DownstreamConfig> = {}): Forwarder => {
    const made = new Forwarder(testDownstreamConfig(server.address, overrides));
    forwarders.push(made);
    return made;
  };

  before(async () => {
    server = await RecordingServer.start({ size: 10_000_000 });
  });
  beforeEach(() => {
    server.messages.length = 0;
    server.refuse.clear();
    server.finalReply = null;
    server.finalDelayMs = 0;
  });
  after(async () => {
    await Promise.all(forwarders.map((made) => made.close()));
    await server.stop();
  });

  it('delivers the exact bytes, lines starting with a dot included, over tiny chunks', async () => {
    const result = await forwarder().deliver(
      { sender: 'alice@sender.example', recipients: ['bob@corp.example', 'carol@corp.example'] },
      messageSource(MESSAGE, 3),
      Buffer.byteLength(MESSAGE),
    );

    assert.equal(result.outcome, 'delivered');
    assert.equal(result.code, 250);
    assert.equal(result.downstream, `127.0.0.1:${server.address.port}`);
    assert.deepEqual(result.recipients.map(({ accepted }) => accepted), [true, true]);
    assert.equal(server.messages.length, 1);
    const [stored] = server.messages;
    assert.equal(stored?.sender, 'alice@sender.example');
    assert.deepEqual(stored?.recipients, ['bob@corp.example', 'carol@corp.example']);
    assert.equal(stored?.bytes.toString('latin1'), MESSAGE);
  });

  it('streams a large message with backpressure, byte for byte', async () => {
    const line = '.0123456789'.repeat(9) + '\r\n';
    const large = `Subject: large\r\n\r\n${line.repeat(40_000)}`;

    const result = await forwarder().deliver(
      { sender: 'a@sender.example', recipients: ['bob@corp.example'] },
      messageSource(large, 16 * 1024), Buffer.byteLength(large));

    assert.equal(result.outcome, 'delivered');
    assert.ok(server.messages[0]?.bytes.equals(Buffer.from(large, 'latin1')));
  });

  it('announces SIZE and BODY=8BITMIME in MAIL FROM', async () => {
    await forwarder().deliver(
      { sender: 'a@sender.example', recipients: ['bob@corp.example'] }, messageSource(MESSAGE), 77);
    assert.equal(server.messages[0]?.mailParameters.SIZE, '77');
    assert.equal(server.messages[0]?.mailParameters.BODY, '8BITMIME');
  });

  it('delivers a bounce with the null sender', async () => {
    const result = await forwarder().deliver(
      { sender: '', recipients: ['bob@corp.example'] }, messageSource(MESSAGE), 100);
    assert.equal(result.outcome, 'delivered');
    assert.equal(server.messages[0]?.sender, '');
  });

  it('delivers to the accepted recipients when one is refused', async () => {
    server.refuse.set('gone@corp.example', { code: 550, message: 'No such user' });

    const result = await forwarder().deliver(
      { sender: 'alice@sender.example',
        recipients: ['bob@corp.example', 'gone@corp.example', 'carol@corp.example'] },
      messageSource(MESSAGE), 100);

    assert.equal(result.outcome, 'partial');
    assert.equal(result.code, 250);
    const byRecipient = new Map(result.recipients.map((entry) => [entry.recipient, entry]));
    assert.equal(byRecipient.get('gone@corp.example')?.code, 550);
    assert.equal(byRecipient.get('gone@corp.example')?.accepted, false);
    assert.match(byRecipient.get('gone@corp.example')?.text ?? '', /No such user/);
    assert.equal(byRecipient.get('bob@corp.example')?.accepted, true);
    assert.deepEqual(server.messages[0]?.recipients, ['bob@corp.example', 'carol@corp.example']);
  });

  it('defers the whole message when one recipient is deferred and others accepted', async () => {
    server.refuse.set('full@corp.example', { code: 452, message: 'Mailbox full' });
    server.refuse.set('gone@corp.example', { code: 550, message: 'No such user' });
    const sender = forwarder();
    const opened = server.connections;

    const result = await sender.deliver(
      { sender: 'alice@sender.example',
        recipients: ['bob@corp.example', 'full@corp.example', 'gone@corp.example'] },
      messageSource(MESSAGE), 100);

    assert.equal(result.outcome, 'tempfail');
    assert.equal(result.code, 452);
    assert.match(result.text, /Mailbox full/);
    assert.match(result.detail, /full@corp\.example deferred with 452/);
    const byRecipient = new Map(result.recipients.map((entry) => [entry.recipient, entry]));
    assert.deepEqual([...byRecipient.keys()].sort(),
      ['bob@corp.example', 'full@corp.example', 'gone@corp.example']);
    assert.ok(result.recipients.every((entry) => !entry.accepted));
    assert.equal(byRecipient.get('bob@corp.example')?.code, 452);
    assert.equal(byRecipient.get('gone@corp.example')?.code, 550);
    assert.equal(server.messages.length, 0);

    // The RSET left the connection clean: the next message reuses it, for its recipient only.
    server.refuse.clear();
    const next = await sender.deliver(
      { sender: 'alice@sender.example', recipients: ['carol@corp.example'] },
      messageSource(MESSAGE), 100);
    assert.equal(next.outcome, 'delivered');
    assert.deepEqual(server.messages.map((entry) => entry.recipients), [['carol@corp.example']]);
    assert.equal(server.connections, opened + 1);
  });

  it('tempfails when every recipient is refused and one refusal was temporary', async () => {
    server.refuse.set('gone@corp.example', { code: 550, message: 'No such user' });
    server.refuse.set('full@corp.example', { code: 450, message: 'Mailbox busy' });

    const result = await forwarder().deliver(
      { sender: 'a@sender.example', recipients: ['gone@corp.example', 'full@corp.example'] },
      messageSource(MESSAGE), 100);

    assert.equal(result.outcome, 'tempfail');
    assert.equal(result.code, 450);
    assert.equal(server.messages.length, 0);
  });

  it('rejects when every recipient is refused permanently', async () => {
    server.refuse.set('gone@corp.example', { code: 550, message: 'No such user' });

    const result = await forwarder().deliver(
      { sender: 'a@sender.example', recipients: ['gone@corp.example'] }, messageSource(MESSAGE), 1);

    assert.equal(result.outcome, 'rejected');
    assert.equal(result.code, 550);
    assert.equal(server.messages.length, 0);
  });

  it('rejects on a 5xx final reply and tempfails on a 4xx one', async () => {
    const envelope = { sender: 'a@sender.example', recipients: ['bob@corp.example'] };
    server.finalReply = { code: 554, message: 'Content refused' };
    const refused = await forwarder().deliver(envelope, messageSource(MESSAGE), 100);
    server.finalReply = { code: 452, message: 'Out of storage' };
    const deferred = await forwarder().deliver(envelope, messageSource(MESSAGE), 100);

    assert.equal(refused.outcome, 'rejected');
    assert.equal(refused.code, 554);
    assert.equal(refused.recipients[0]?.accepted, false);
    assert.equal(deferred.outcome, 'tempfail');
    assert.equal(deferred.code, 452);
    assert.equal(server.messages.length, 0);
  });

  it('tempfails 4.4.2 on a slow final reply, and the server discards the message', async () => {
    server.finalDelayMs = 600;

    const result = await forwarder({ dataTimeoutMs: 150 }).deliver(
      { sender: 'a@sender.example', recipients: ['bob@corp.example'] }, messageSource(MESSAGE), 1);

    assert.equal(result.outcome, 'tempfail');
    assert.deepEqual([result.code, result.enhanced], [451, '4.4.2']);
    await sleep(900);
    assert.equal(server.messages.length, 0);
  });

  it('delivers when the final reply is slow but within the deadline', async () => {
    server.finalDelayMs = 100;

    const result = await forwarder({ dataTimeoutMs: 2000 }).deliver(
      { sender: 'a@sender.example', recipients: ['bob@corp.example'] }, messageSource(MESSAGE), 1);

    assert.equal(result.outcome, 'delivered');
    assert.equal(server.messages.length, 1);
  });

  it('tempfails 4.3.0 and sends nothing on a bare LF or bare CR in the message', async () => {
    const envelope = { sender: 'a@sender.example', recipients: ['bob@corp.example'] };
    const bareLf = await forwarder().deliver(
      envelope, messageSource('Subject: x\r\n\r\na\nb\r\n'), 1);
    const bareCr = await forwarder().deliver(
      envelope, messageSource('Subject: x\r\n\r\na\r\n.\r\nQUIT\r\n.\rx\r\n', 19), 1);

    assert.deepEqual([bareLf.outcome, bareLf.code, bareLf.enhanced], ['tempfail', 451, '4.3.0']);
    assert.match(bareLf.detail, /bare LF/);
    assert.deepEqual([bareCr.outcome, bareCr.enhanced], ['tempfail', '4.3.0']);
    await sleep(100);
    assert.equal(server.messages.length, 0);
  });

  it('refuses an envelope address that would break the command line', async () => {
    const result = await forwarder().deliver(
      { sender: 'a@sender.example', recipients: ['bob@corp.example>\r\nRCPT TO:<x@y.example'] },
      messageSource(MESSAGE), 1);
    assert.deepEqual([result.outcome, result.enhanced], ['tempfail', '4.3.0']);
  });

  it('verifies recipients: accept, reject and tempfail', async () => {
    server.refuse.set('gone@corp.example', { code: 550, message: 'No such user' });
    server.refuse.set('busy@corp.example', { code: 451, message: 'Directory busy' });
    const checker = forwarder();

    const accepted = await checker.verifyRecipient('bob@corp.example');
    const rejected = await checker.verifyRecipient('gone@corp.example');
    const deferred = await checker.verifyRecipient('busy@corp.example');

    assert.equal(accepted.result, 'accept');
    assert.deepEqual([rejected.result, rejected.code], ['reject', 550]);
    assert.deepEqual([deferred.result, deferred.code], ['tempfail', 451]);
    assert.equal(server.messages.length, 0);
  });

  it('reports ready when the downstream answers EHLO', async () => {
    const probe = await forwarder().probe();
    assert.equal(probe.ok, true);
  });
});

describe('Forwarder with a downstream size limit', () => {
  it('rejects a message larger than the announced SIZE at MAIL', async () => {
    const limited = await RecordingServer.start({ size: 1000 });
    const forwarder = new Forwarder(testDownstreamConfig(limited.address));
    try {
      const result = await forwarder.deliver(
        { sender: 'a@sender.example', recipients: ['bob@corp.example'] },
        messageSource(MESSAGE), 5000);

      assert.equal(result.outcome, 'rejected');
      assert.equal(result.code, 552);
      assert.equal(result.recipients[0]?.code, 552);
      assert.equal(limited.messages.length, 0);
    } finally {
      await forwarder.close();
      await limited.stop();
    }
  });
});

describe('Forwarder with the downstream down', () => {
  it('tempfails 451 4.4.1 for delivery, verification and readiness', async () => {
    const address = await closedPort();
    const events: string[] = [];
    const forwarder = new Forwarder(testDownstreamConfig(address), {
      observer: (event, outcome) => events.push(`${event}:${outcome}`),
    });

    const result = await forwarder.deliver(
      { sender: 'a@sender.example', recipients: ['bob@corp.example', 'carol@corp.example'] },
      messageSource(MESSAGE), 1);
    const verdict = await forwarder.verifyRecipient('bob@corp.example');
    const probe = await forwarder.probe();
    await forwarder.close();

    assert.deepEqual([result.outcome, result.code, result.enhanced], ['tempfail', 451, '4.4.1']);
    assert.deepEqual(result.recipients.map(({ code }) => code), [451, 451]);
    assert.match(result.detail, /ECONNREFUSED|refused/);
    assert.doesNotMatch(result.text, /127\.0\.0\.1/);
    assert.equal(verdict.result, 'tempfail');
    assert.equal(probe.ok, false);
    assert.ok(events.includes('connect:error'));
    assert.ok(events.includes('deliver:tempfail'));
    assert.ok(events.includes('verify:tempfail'));
  });
});
