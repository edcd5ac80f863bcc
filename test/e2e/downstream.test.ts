/*
 * End to end: the real gateway in front of a real SMTP server standing in for the internal
 * mailbox server, and what a client sees when that server misbehaves.
 *
 * Each scenario reads like a transcript: an envelope and a message go in over a loopback
 * socket; the test asserts the SMTP replies the client got, the bytes the internal server
 * recorded (or that it recorded nothing), and the decision line Moat printed.
 *
 * Gateways started here (one per configuration, shared by the tests that need it):
 *   main     MOAT_DOWNSTREAM = a plain downstream, [downstream] data_timeout = 1s
 *   dead     MOAT_DOWNSTREAM = a loopback port nothing listens on
 *   silent   MOAT_DOWNSTREAM = a TCP listener that accepts and never sends a greeting;
 *            default deadlines, so the test proves the shipped connect_timeout
 *   tls      [downstream] tls = required with the test CA, tls_name = localhost / wrong.example
 *   verify   [domains] recipients = verify, with its own downstream (stopped by the last test)
 *   held     a rule that quarantines: the stored message's decision line and its evidence
 *
 * Needs: dist/ built, openssl (test certificates).
 */

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { startDownstream, type Downstream } from '../harness/downstream';
import { startGateway, type Gateway } from '../harness/gateway';
import { freePort, LOOPBACK } from '../harness/ports';
import { makeTempDir } from '../harness/process';
import { messageDate } from '../harness/samples';
import {
  dotStuff, sendMail, SmtpTalk, type SendMailStep, type SmtpTalkReply,
} from '../harness/smtp-talk';
import { makeTestCertificates } from '../harness/tls';

const SENDER = 'alice@sender.example.org';

/** A small message with CRLF line ends; `subject` tells messages apart. */
function message(subject: string, body = 'Hello from the outside.\r\n'): string {
  return [
    'From: Alice <alice@sender.example.org>',
    'To: Bob <bob@example.com>',
    `Subject: ${subject}`,
    'Message-ID: <e2e-downstream@sender.example.org>',
    `Date: ${messageDate()}`,
    '',
    '',
  ].join('\r\n') + body;
}

function replyOf(steps: SendMailStep[], step: string): SendMailStep['reply'] {
  const found = steps.find((entry) => entry.step === step);
  assert.ok(found, `no reply for ${step}; steps: ${steps.map((entry) => entry.step).join(', ')}`);
  return found.reply;
}

function mail(gateway: Gateway, to: string[], data: string): Promise<SendMailStep[]> {
  return sendMail({ host: gateway.host, port: gateway.port, from: SENDER, to, data });
}

/** The decision line for the delivery of the message sent to `recipient`. */
function deliveryFor(gateway: Gateway, recipient: string): Promise<Record<string, unknown>> {
  return gateway.waitForDecision((line) => line['event'] === 'delivery'
    && JSON.stringify((line['envelope'] as { to?: unknown } | undefined)?.to ?? [])
      .includes(recipient));
}

/** The gateway's /metrics text. */
async function metricsOf(gateway: Gateway): Promise<string> {
  return gateway.metrics();
}

/** A quiet moment for a reply the gateway might still send, before asserting it did not. */
const settle = (ms = 300): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** One transaction with a raw client; times the reply to the final dot. */
async function timedMessage(
  gateway: Gateway, to: string, data: string,
): Promise<{ reply: SmtpTalkReply; elapsedMs: number }> {
  const talk = await SmtpTalk.connect(gateway.host, gateway.port);
  try {
    await talk.expect(220);
    await talk.command('EHLO client.example.org');
    assert.equal((await talk.command(`MAIL FROM:<${SENDER}>`)).code, 250);
    assert.equal((await talk.command(`RCPT TO:<${to}>`)).code, 250);
    assert.equal((await talk.command('DATA')).code, 354);
    const started = performance.now();
    talk.send(dotStuff(data));
    const reply = await talk.readReply();
    return { reply, elapsedMs: performance.now() - started };
  } finally {
    talk.close();
  }
}

/** Printable ASCII only: what Moat may repeat to an internet client. */
function assertSafeText(reply: SmtpTalkReply): void {
  const safe = /^(\d{3}[ -][\x20-\x7e]*\r\n)+$/;
  assert.match(reply.raw, safe, `unsafe reply: ${JSON.stringify(reply.raw)}`);
}

describe('downstream: a working internal server', () => {
  let downstream: Downstream;
  let gateway: Gateway;

  before(async () => {
    downstream = await startDownstream();
    gateway = await startGateway({
      env: { MOAT_DOWNSTREAM: downstream.address },
      ini: '[downstream]\ndata_timeout = 1s\n',
    });
  });

  after(async () => {
    await gateway?.stop();
    await downstream?.stop();
  });

  // First in this group, so the count covers every connection the gateway ever opened.
  test('three messages in a row share one downstream connection (pool reuse)', async () => {
    for (const subject of ['reuse one', 'reuse two', 'reuse three']) {
      const steps = await mail(gateway, ['bob@example.com'], message(subject));
      assert.equal(replyOf(steps, 'message').code, 250, replyOf(steps, 'message').raw);
    }
    const delivered = await downstream.waitForMessages(3);
    assert.equal(delivered.length, 3);
    assert.equal(downstream.connections, 1);
    assert.deepEqual(delivered.map((entry) => entry.connectionNumber), [1, 1, 1]);
  });

  test('a clean message arrives byte for byte, with only Moat\'s trace fields added', async () => {
    downstream.reset();
    const body = 'First line.\r\n.Leading dot line\r\n..two dots\r\nLast line.\r\n';
    const original = message('byte for byte', body);
    const steps = await mail(gateway, ['bytes@example.com'], original);
    assert.equal(replyOf(steps, 'message').code, 250, replyOf(steps, 'message').raw);

    const [delivered] = await downstream.waitForMessages(1);
    assert.ok(delivered);
    assert.deepEqual(delivered.rcptTo, ['bytes@example.com']);
    assert.equal(delivered.mailFrom, SENDER);

    // The body is the original exactly. The header section is the original's, with Received:
    // on top and, since this gateway has no scanners, X-Moat-Unscanned: at its end; no other
    // byte differs.
    const data = delivered.data.toString('latin1');
    const [head, ...rest] = data.split('\r\n\r\n');
    const [originalHead, ...originalRest] = original.split('\r\n\r\n');
    assert.equal(rest.join('\r\n\r\n'), originalRest.join('\r\n\r\n'), 'the body changed');
    const fields = (head ?? '').split(/\r\n(?![ \t])/);
    const received = fields.findIndex((field) => !field.startsWith('Received: '));
    assert.ok(received >= 1, `no Received: on top:\n${data}`);
    const trailing = fields.slice(received);
    const added = trailing.filter((field) => /^X-Moat-Unscanned: /.test(field));
    assert.deepEqual(added, ['X-Moat-Unscanned: malware (clamd not configured)',
      'X-Moat-Unscanned: spam (spamd not configured)']);
    assert.equal(trailing.slice(0, trailing.length - added.length).join('\r\n'), originalHead,
      `the original header fields changed:\n${data}`);

    // In data the dot lines are as written; on the wire they are stuffed; CRLF only.
    const wire = delivered.wire.toString('latin1');
    assert.ok(data.includes('\r\n.Leading dot line\r\n'), 'dot line not unstuffed in data');
    assert.ok(wire.includes('\r\n..Leading dot line\r\n'), 'dot line not stuffed on the wire');
    assert.ok(wire.includes('\r\n...two dots\r\n'), 'double dot line not stuffed on the wire');
    assert.doesNotMatch(wire, /(^|[^\r])\n/, 'bare LF on the wire');
    assert.doesNotMatch(wire, /\r(?!\n)/, 'bare CR on the wire');

    const line = await deliveryFor(gateway, 'bytes@example.com');
    assert.equal(line['action'], 'deliver');
    assert.equal(line['reason'], 'downstream-accepted');
  });

  test('one recipient refused (550) by the internal server: 250, the others get the message, '
    + 'the refusal is a recipient line and a count', async () => {
    downstream.reset();
    downstream.refuseRecipient('carol@example.com', { code: 550, text: '5.1.1 No such user' });
    const to = ['bob@example.com', 'carol@example.com', 'dave@example.com'];
    const steps = await mail(gateway, to, message('partial'));
    for (const recipient of to) assert.equal(replyOf(steps, `RCPT ${recipient}`).code, 250);
    assert.equal(replyOf(steps, 'message').code, 250, replyOf(steps, 'message').raw);

    const [delivered] = await downstream.waitForMessages(1);
    assert.deepEqual(delivered?.rcptTo, ['bob@example.com', 'dave@example.com']);

    const line = await deliveryFor(gateway, 'carol@example.com');
    assert.equal(line['reason'], 'downstream-partial');
    const refused = (line['evidence'] as { refused?: string[] }).refused ?? [];
    assert.equal(refused.length, 1, JSON.stringify(line));
    assert.match(refused[0] ?? '', /^carol@example\.com 550 5\.1\.1/);

    // One decision line for the refused recipient alone, with its reason code and reply.
    const recipientLine = await gateway.waitForDecision((entry) => entry['event'] === 'recipient'
      && entry['phase'] === 'queue' && entry['message_id'] === line['message_id']);
    assert.equal(recipientLine['action'], 'reject');
    assert.equal(recipientLine['reason'], 'downstream-rejected');
    assert.deepEqual((recipientLine['envelope'] as { to?: unknown }).to, ['carol@example.com']);
    assert.equal((recipientLine['downstream'] as { code?: unknown }).code, 550);
    const others = gateway.decisions().filter((entry) => entry['event'] === 'recipient'
      && entry['message_id'] === line['message_id']);
    assert.equal(others.length, 1, 'only the refused recipient gets a line');
    const counted = (await metricsOf(gateway)).split('\n').filter((entry) =>
      entry.startsWith('moat_recipients_total{') && entry.includes('action="reject"')
      && entry.includes('reason="downstream-rejected"'));
    assert.match(counted[0] ?? '', /\} [1-9]\d*$/, 'refusal not counted');
  });

  test('one recipient deferred (452) by the internal server: 452 for the whole message, '
    + 'nothing delivered, and the retry reaches every recipient', async () => {
    downstream.reset();
    downstream.refuseRecipient('judy@example.com', { code: 452, text: '4.2.2 Mailbox full' });
    const to = ['ivan@example.com', 'judy@example.com', 'ken@example.com'];
    const steps = await mail(gateway, to, message('deferred recipient'));
    for (const recipient of to) assert.equal(replyOf(steps, `RCPT ${recipient}`).code, 250);
    const reply = replyOf(steps, 'message');
    assert.match(reply.raw, /^452 4\.2\.2 Mailbox full/);

    const line = await deliveryFor(gateway, 'judy@example.com');
    assert.equal(line['action'], 'tempfail');
    assert.equal(line['reason'], 'downstream-tempfail');
    await settle();
    assert.equal(downstream.messages.length, 0, 'a deferred message reached the internal server');

    // The sender retries all three once the mailbox has room; each gets exactly one copy.
    downstream.reset();
    const retry = await mail(gateway, to, message('deferred recipient'));
    assert.equal(replyOf(retry, 'message').code, 250, replyOf(retry, 'message').raw);
    const delivered = await downstream.waitForMessages(1);
    await settle();
    assert.equal(downstream.messages.length, 1);
    assert.deepEqual(delivered[0]?.rcptTo, to);
  });

  test('the final dot refused with 554: the client gets 5xx with the text made safe',
    async () => {
      downstream.reset();
      const text = `5.7.1 Refus\u00e9: looks like spam \u2013 ${'x'.repeat(300)}`;
      downstream.replyToData({ code: 554, text });
      const steps = await mail(gateway, ['erin@example.com'], message('refused at dot'));
      const reply = replyOf(steps, 'message');
      assert.equal(Math.floor(reply.code / 100), 5, reply.raw);
      assert.match(reply.raw, /looks like spam/);
      assertSafeText(reply);
      assert.ok(reply.raw.length < 300, `reply not cut to a sane length: ${reply.raw.length}`);

      const line = await deliveryFor(gateway, 'erin@example.com');
      assert.equal(line['action'], 'reject');
      assert.equal(line['reason'], 'downstream-rejected');
      await settle();
      assert.equal(downstream.messages.length, 0);
    });

  test('the final dot answered 452: the client gets 4xx, nothing recorded', async () => {
    downstream.reset();
    downstream.replyToData({ code: 452, text: '4.3.1 Mailbox store busy' });
    const steps = await mail(gateway, ['frank@example.com'], message('tempfail at dot'));
    const reply = replyOf(steps, 'message');
    assert.equal(Math.floor(reply.code / 100), 4, reply.raw);

    const line = await deliveryFor(gateway, 'frank@example.com');
    assert.equal(line['action'], 'tempfail');
    assert.equal(line['reason'], 'downstream-tempfail');
    await settle();
    assert.equal(downstream.messages.length, 0);
  });

  test('a final-dot reply slower than data_timeout: 4xx 4.4.2, nothing recorded', async () => {
    downstream.reset();
    downstream.delayDataReply(3000);
    const { reply } = await timedMessage(gateway, 'gina@example.com', message('slow dot'));
    assert.match(reply.raw, /^4\d\d 4\.4\.2 /);

    // The downstream would have said 250 at 3 s; Moat hung up before that.
    await settle(3500);
    assert.equal(downstream.messages.length, 0);
    const line = await deliveryFor(gateway, 'gina@example.com');
    assert.equal(line['reason'], 'downstream-tempfail');
    assert.equal((line['downstream'] as { code?: unknown }).code, 451);
    downstream.reset();
  });

  test('a final-dot reply slower than data_timeout: the code is 451, as documented', async () => {
    downstream.reset();
    downstream.delayDataReply(1500);
    const { reply } = await timedMessage(gateway, 'gina@example.com', message('slow dot'));
    await settle(1000);
    downstream.reset();
    assert.match(reply.raw, /^451 4\.4\.2 /);
  });
});

describe('downstream: nothing listening on the internal server port', () => {
  let gateway: Gateway;

  before(async () => {
    const deadPort = await freePort();
    gateway = await startGateway({ env: { MOAT_DOWNSTREAM: `127.0.0.1:${deadPort}` } });
  });

  after(async () => {
    await gateway?.stop();
  });

  test('the client gets 4xx 4.4.1 within the 5 s deadline', async () => {
    const { reply, elapsedMs } = await timedMessage(gateway, 'bob@example.com', message('down'));
    assert.match(reply.raw, /^4\d\d 4\.4\.1 /);
    assert.ok(elapsedMs < 5000, `reply took ${Math.round(elapsedMs)} ms`);

    const line = await deliveryFor(gateway, 'bob@example.com');
    assert.equal(line['action'], 'tempfail');
    assert.equal(line['reason'], 'downstream-tempfail');
    assert.equal((line['downstream'] as { code?: unknown }).code, 451);
  });

  test('the client gets exactly 451 4.4.1, the reply src/verdict/reasons.ts '
    + 'documents', async () => {
    const { reply } = await timedMessage(gateway, 'carl@example.com', message('down again'));
    assert.match(reply.raw, /^451 4\.4\.1 /);
  });
});

describe('downstream: a server that accepts the connection and never greets', () => {
  const sockets: Socket[] = [];
  const received: Buffer[] = [];
  let listener: Server;
  let gateway: Gateway;

  before(async () => {
    listener = createServer((socket) => {
      sockets.push(socket);
      socket.on('data', (chunk: Buffer) => received.push(chunk));
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => listener.listen(0, LOOPBACK, resolve));
    const { port } = listener.address() as AddressInfo;
    gateway = await startGateway({ env: { MOAT_DOWNSTREAM: `${LOOPBACK}:${port}` } });
  });

  after(async () => {
    await gateway?.stop();
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => listener.close(() => resolve()));
  });

  test('the client gets 451 4.4.1 within the 5 s deadline; nothing is sent on', async () => {
    const { reply, elapsedMs } = await timedMessage(gateway, 'bob@example.com', message('silent'));
    assert.match(reply.raw, /^451 4\.4\.1 /);
    assert.ok(elapsedMs < 5000, `reply took ${Math.round(elapsedMs)} ms`);

    assert.ok(sockets.length >= 1, 'Moat never connected to the silent server');
    assert.equal(Buffer.concat(received).length, 0, 'Moat talked to a server that never greeted');
    const line = await deliveryFor(gateway, 'bob@example.com');
    assert.equal(line['action'], 'tempfail');
    assert.equal(line['reason'], 'downstream-tempfail');
    assert.match(String((line['evidence'] as { detail?: unknown }).detail), /greeting/);
  });
});

describe('downstream: STARTTLS to the internal server', () => {
  const certificates = makeTestCertificates({ dnsNames: ['localhost'] });
  let downstream: Downstream;
  let trusting: Gateway;
  let wrongName: Gateway;

  before(async () => {
    downstream = await startDownstream({
      tls: { key: certificates.key, cert: certificates.cert },
    });
    const ini = (name: string): string => [
      '[downstream]', 'tls = required', `ca_file = ${certificates.caCertPath}`,
      `tls_name = ${name}`, '',
    ].join('\n');
    const env = { MOAT_DOWNSTREAM: downstream.address };
    [trusting, wrongName] = await Promise.all([
      startGateway({ env, ini: ini('localhost') }),
      startGateway({ env, ini: ini('wrong.example') }),
    ]);
  });

  after(async () => {
    await Promise.all([trusting?.stop(), wrongName?.stop()]);
    await downstream?.stop();
  });

  test('a certificate naming tls_name, signed by ca_file: delivered over TLS', async () => {
    downstream.reset();
    const steps = await mail(trusting, ['bob@example.com'], message('over tls'));
    assert.equal(replyOf(steps, 'message').code, 250, replyOf(steps, 'message').raw);
    const [delivered] = await downstream.waitForMessages(1);
    assert.equal(delivered?.secure, true);
    const line = await deliveryFor(trusting, 'bob@example.com');
    assert.equal((line['evidence'] as { tls?: unknown }).tls, true);
  });

  test('a certificate that does not name tls_name: 4xx, nothing delivered', async () => {
    downstream.reset();
    const steps = await mail(wrongName, ['bob@example.com'], message('wrong name'));
    const reply = replyOf(steps, 'message');
    assert.equal(Math.floor(reply.code / 100), 4, reply.raw);
    const line = await deliveryFor(wrongName, 'bob@example.com');
    assert.equal(line['reason'], 'downstream-tempfail');
    await settle();
    assert.equal(downstream.messages.length, 0);
  });
});

describe('downstream: recipient verification (recipients = verify)', () => {
  let downstream: Downstream;
  let gateway: Gateway;

  before(async () => {
    downstream = await startDownstream();
    downstream.refuseRecipient('nobody@example.com', { code: 550, text: '5.1.1 No such user' });
    gateway = await startGateway({
      env: { MOAT_DOWNSTREAM: downstream.address },
      ini: '[domains]\nrecipients = verify\n',
    });
  });

  after(async () => {
    await gateway?.stop();
    await downstream?.stop();
  });

  test('an unknown mailbox gets 550 5.1.1 at RCPT; a known one gets 250', async () => {
    const talk = await SmtpTalk.connect(gateway.host, gateway.port);
    try {
      await talk.expect(220);
      await talk.command('EHLO client.example.org');
      assert.equal((await talk.command(`MAIL FROM:<${SENDER}>`)).code, 250);
      const unknown = await talk.command('RCPT TO:<nobody@example.com>');
      assert.match(unknown.raw, /^550 5\.1\.1 /);
      const known = await talk.command('RCPT TO:<bob@example.com>');
      assert.equal(known.code, 250, known.raw);
      assert.equal((await talk.command('DATA')).code, 354);
      talk.send(dotStuff(message('verified')));
      const accepted = await talk.readReply();
      assert.equal(accepted.code, 250, accepted.raw);
    } finally {
      talk.close();
    }
    const [delivered] = await downstream.waitForMessages(1);
    assert.deepEqual(delivered?.rcptTo, ['bob@example.com']);
    const line = await gateway.waitForDecision((entry) => entry['event'] === 'recipient'
      && entry['reason'] === 'recipient-unknown');
    assert.equal(line['action'], 'reject');
  });

  // Last: it stops this group's downstream.
  test('the internal server down: RCPT gets 450 4.4.3 (never accepted unverified)', async () => {
    await downstream.stop();
    const talk = await SmtpTalk.connect(gateway.host, gateway.port);
    try {
      await talk.expect(220);
      await talk.command('EHLO client.example.org');
      assert.equal((await talk.command(`MAIL FROM:<${SENDER}>`)).code, 250);
      // A mailbox nobody asked about yet, so no cached answer can stand in.
      const reply = await talk.command('RCPT TO:<hannah@example.com>');
      assert.match(reply.raw, /^450 4\.4\.3 /);
    } finally {
      talk.close();
    }
  });
});

describe('delivery step: a quarantined message is stored, not forwarded', () => {
  const HOLD_RULE = [
    'rules:',
    '  - id: hold-for-review',
    '    description: hold what the subject asks to hold',
    '    owner: test@example.com',
    '    mode: enforce',
    '    direction: any',
    '    when: { subject: { contains: please-hold } }',
    '    actions:',
    '      - quarantine: held for review',
    '',
  ].join('\n');
  let downstream: Downstream;
  let gateway: Gateway;

  before(async () => {
    downstream = await startDownstream();
    const rulesDir = makeTempDir('moat-rules-');
    writeFileSync(join(rulesDir, 'hold.yaml'), HOLD_RULE);
    gateway = await startGateway({
      env: { MOAT_DOWNSTREAM: downstream.address, MOAT_RULES_DIR: rulesDir },
    });
  });

  after(async () => {
    await gateway?.stop();
    await downstream?.stop();
  });

  test('the quarantine decision line carries the rules evidence, as a delivery line does',
    async () => {
      const steps = await mail(gateway, ['held@example.com'], message('please-hold this'));
      assert.equal(replyOf(steps, 'message').code, 250, replyOf(steps, 'message').raw);

      const line = await gateway.waitForDecision((entry) => entry['event'] === 'message'
        && entry['action'] === 'quarantine');
      const evidence = line['evidence'] as Record<string, unknown>;
      assert.match(String(evidence['quarantine_id']), /\S/);
      const rules = evidence['rules'] as { fired?: unknown; version?: unknown } | undefined;
      assert.deepEqual(rules?.fired, ['hold-for-review(enforce:quarantine)'], JSON.stringify(line));
      assert.match(String(rules?.version), /^[0-9a-f]{12}$/);
      await settle();
      assert.equal(downstream.messages.length, 0, 'a quarantined message was forwarded');
    });
});
