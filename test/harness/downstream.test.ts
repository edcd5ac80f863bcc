/*
 * Proves the downstream (internal mailbox server) harness over real sockets, driven by the
 * raw client in smtp-talk.ts: exact bytes recorded, refusals, delayed and refused final
 * replies, a client hanging up before the 250, closed listener, refused greeting, STARTTLS.
 */

import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';

import { startDownstream, type Downstream } from './downstream';
import { sendMail, SmtpTalk } from './smtp-talk';
import { makeTestCertificates } from './tls';

const MESSAGE =
  'From: <a@example.org>\r\nTo: <b@example.com>\r\nSubject: t\r\n\r\n' +
  'line one\r\n.starts with a dot\r\n..two dots\r\nlast\r\n';

function codes(steps: Array<{ reply: { code: number } }>): number[] {
  return steps.map((step) => step.reply.code);
}

describe('downstream harness', () => {
  let downstream: Downstream;

  before(async () => {
    downstream = await startDownstream();
  });
  after(async () => {
    await downstream?.stop();
  });
  beforeEach(() => {
    downstream.reset();
  });

  it('records envelope, unstuffed message bytes and the stuffed bytes on the wire', async () => {
    const steps = await sendMail({
      host: downstream.host,
      port: downstream.port,
      helo: 'moat.test',
      from: 'a@example.org',
      to: ['b@example.com', 'c@example.com'],
      data: MESSAGE,
    });
    assert.deepEqual(codes(steps), [220, 250, 250, 250, 250, 354, 250, 221]);

    const [message] = await downstream.waitForMessages(1, 2000);
    assert.equal(message?.mailFrom, 'a@example.org');
    assert.deepEqual(message?.rcptTo, ['b@example.com', 'c@example.com']);
    assert.equal(message?.helo, 'moat.test');
    assert.equal(message?.data.toString('latin1'), MESSAGE);
    const wire = message?.wire.toString('latin1') ?? '';
    assert.ok(wire.includes('\r\n..starts with a dot\r\n...two dots\r\nlast\r\n.\r\n'), wire);
    assert.equal(downstream.connections, 1);
  });

  it('refuses a recipient with the given code and text', async () => {
    downstream.refuseRecipient('Gone@example.com', { code: 550, text: '5.1.1 No such user' });
    downstream.refuseRecipient('busy@example.com', { code: 450, text: '4.2.1 Try later' });
    const steps = await sendMail({
      host: downstream.host,
      port: downstream.port,
      from: 'a@example.org',
      to: ['gone@example.com', 'busy@example.com', 'ok@example.com'],
      data: MESSAGE,
    });
    const rcpt = steps.filter((step) => step.step.startsWith('RCPT')).map((step) => step.reply.raw);
    assert.deepEqual(rcpt, [
      '550 5.1.1 No such user\r\n',
      '450 4.2.1 Try later\r\n',
      '250 Accepted\r\n',
    ]);
    const [message] = await downstream.waitForMessages(1, 2000);
    assert.deepEqual(message?.rcptTo, ['ok@example.com']);
  });

  it('answers the final dot with a chosen reply and then records nothing', async () => {
    downstream.replyToNextData({ code: 451, text: '4.3.0 Mailbox store busy' });
    const refused = await sendMail({
      host: downstream.host, port: downstream.port, from: 'a@example.org', to: ['b@example.com'],
      data: MESSAGE,
    });
    assert.equal(refused.find((step) => step.step === 'message')?.reply.raw,
      '451 4.3.0 Mailbox store busy\r\n');
    assert.equal(downstream.messages.length, 0);

    const accepted = await sendMail({
      host: downstream.host, port: downstream.port, from: 'a@example.org', to: ['b@example.com'],
      data: MESSAGE,
    });
    assert.equal(accepted.find((step) => step.step === 'message')?.reply.code, 250);
    assert.equal(downstream.messages.length, 1);
  });

  it('does not record a message whose client hung up before the delayed 250', async () => {
    downstream.delayDataReply(300);
    const talk = await SmtpTalk.connect(downstream.host, downstream.port);
    await talk.expect(220);
    assert.equal((await talk.command('HELO moat.test')).code, 250);
    assert.equal((await talk.command('MAIL FROM:<a@example.org>')).code, 250);
    assert.equal((await talk.command('RCPT TO:<b@example.com>')).code, 250);
    assert.equal((await talk.command('DATA')).code, 354);
    talk.send('Subject: x\r\n\r\nbody\r\n.\r\n');
    await assert.rejects(talk.readReply(100), /no reply within/);
    talk.close();

    await new Promise((resolve) => setTimeout(resolve, 400));
    assert.equal(downstream.messages.length, 0);
  });

  it('records a delayed message once the client waited for the 250', async () => {
    downstream.delayDataReply(200);
    const steps = await sendMail({
      host: downstream.host, port: downstream.port, from: 'a@example.org', to: ['b@example.com'],
      data: MESSAGE,
    });
    assert.equal(steps.find((step) => step.step === 'message')?.reply.code, 250);
    assert.equal(downstream.messages.length, 1);
  });

  it('refuses connections while closed and accepts again on the same port', async () => {
    const port = downstream.port;
    await downstream.refuseConnections();
    await assert.rejects(SmtpTalk.connect(downstream.host, port), /ECONNREFUSED/);
    await downstream.acceptConnections();
    assert.equal(downstream.port, port);
    const talk = await SmtpTalk.connect(downstream.host, port);
    await talk.expect(220);
    talk.close();
    assert.equal(downstream.connections, 1);
  });

  it('refuses the greeting with a chosen reply', async () => {
    downstream.refuseGreeting({ code: 421, text: '4.3.2 Shutting down' });
    const steps = await sendMail({
      host: downstream.host, port: downstream.port, from: 'a@example.org', to: ['b@example.com'],
      data: MESSAGE,
    });
    assert.deepEqual(codes(steps), [421]);
    assert.equal(steps[0]?.reply.lines[0], '4.3.2 Shutting down');
  });
});

describe('downstream harness with STARTTLS', () => {
  const certificates = makeTestCertificates();
  let downstream: Downstream;

  before(async () => {
    downstream = await startDownstream({ tls: certificates });
  });
  after(async () => {
    await downstream?.stop();
  });

  it('offers STARTTLS with a certificate a client trusting the test CA accepts', async () => {
    const talk = await SmtpTalk.connect(downstream.host, downstream.port);
    await talk.expect(220);
    const ehlo = await talk.command('EHLO moat.test');
    assert.ok(ehlo.lines.includes('STARTTLS'), ehlo.raw);
    await talk.startTls({ ca: certificates.ca, servername: 'localhost' });
    assert.equal((await talk.command('EHLO moat.test')).code, 250);
    assert.equal((await talk.command('MAIL FROM:<a@example.org>')).code, 250);
    assert.equal((await talk.command('RCPT TO:<b@example.com>')).code, 250);
    assert.equal((await talk.command('DATA')).code, 354);
    assert.equal((await talk.command('Subject: tls\r\n\r\nsecret body\r\n.')).code, 250);
    talk.close();

    const [message] = await downstream.waitForMessages(1, 2000);
    assert.equal(message?.secure, true);
    assert.equal(message?.data.toString(), 'Subject: tls\r\n\r\nsecret body\r\n');
    assert.ok(message?.wire.toString('latin1').includes('secret body\r\n.\r\n'));
  });

  it('fails the handshake for a client that does not trust the test CA', async () => {
    const talk = await SmtpTalk.connect(downstream.host, downstream.port);
    await talk.expect(220);
    await talk.command('EHLO moat.test');
    await assert.rejects(talk.startTls({ servername: 'localhost' }), /TLS handshake failed/);
    talk.close();
  });
});
