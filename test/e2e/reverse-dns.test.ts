/*
 * End to end: the client's name, forward-confirmed through Moat's resolver (the real test DNS
 * server), in the EHLO reply, the Received header the internal server gets and the decision
 * lines. Clients are TEST-NET addresses presented with PROXY v1 by 127.0.0.1.
 *
 * Gateways started here:
 *   confirm   reputation.reverse_dns = confirm (the default), deadline 300 ms
 *   off       reputation.reverse_dns = off
 */

import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';

import { ptrName } from '../../src/reputation/reverse-dns';
import { startDns, type DnsServer } from '../harness/dns';
import { startDownstream, type Downstream } from '../harness/downstream';
import { startGateway, type Gateway } from '../harness/gateway';
import { proxyV1Header, sendMail, type SendMailStep } from '../harness/smtp-talk';

const CONFIRMED = '192.0.2.41';
const UNCONFIRMED = '192.0.2.42';
const NO_PTR = '192.0.2.43';
const SLOW = '192.0.2.44';
const CONFIRMED_V6 = '2001:db8::41';

let dns: DnsServer;
let downstream: Downstream;
let confirmGateway: Gateway;
let offGateway: Gateway;

async function send(gateway: Gateway, clientIp: string, subject: string):
Promise<SendMailStep[]> {
  const v6 = clientIp.includes(':');
  return sendMail({
    host: gateway.host, port: gateway.port,
    proxy: proxyV1Header({ sourceAddress: clientIp, sourcePort: 40000,
      destinationAddress: v6 ? '2001:db8::25' : '192.0.2.25', destinationPort: 25 }),
    from: 'alice@sender.example.org', to: ['bob@example.com'],
    data: `From: alice@sender.example.org\r\nTo: bob@example.com\r\n`
      + `Subject: ${subject}\r\n\r\nHi.\r\n`,
  });
}

/** The Received line Moat added to the message the internal server got for subject. */
async function receivedFor(subject: string): Promise<string> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const message = downstream.messages.find((entry) =>
      entry.data.toString('utf8').includes(`Subject: ${subject}\r\n`));
    if (message) {
      const text = message.data.toString('utf8');
      const unfolded = text.slice(0, text.indexOf('\r\n\r\n')).replace(/\r\n[ \t]+/g, ' ');
      return unfolded.split('\r\n').find((line) => line.startsWith('Received:')) ?? '';
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`no message with subject ${subject} reached the internal server`);
}

function dataReply(steps: SendMailStep[]): number {
  return steps.find((step) => step.step === 'message')?.reply.code ?? 0;
}

function ehloText(steps: SendMailStep[]): string {
  return steps.find((step) => step.step === 'EHLO')?.reply.lines[0] ?? '';
}

async function decisionClient(gateway: Gateway, clientIp: string):
Promise<Record<string, unknown>> {
  const line = await gateway.waitForDecision((entry) => entry['event'] === 'delivery'
    && (entry['client'] as { ip?: string } | undefined)?.ip === clientIp);
  return line['client'] as Record<string, unknown>;
}

before(async () => {
  dns = await startDns();
  downstream = await startDownstream();
  const env = { MOAT_DNS_SERVERS: dns.address, MOAT_PROXY_HOSTS: '127.0.0.1',
    MOAT_DOWNSTREAM: downstream.address };
  [confirmGateway, offGateway] = await Promise.all([
    startGateway({ env, ini: '[reputation]\nreverse_dns_deadline = 300ms\n' }),
    startGateway({ env, ini: '[reputation]\nreverse_dns = off\n' }),
  ]);
});

after(async () => {
  await Promise.allSettled([confirmGateway?.stop(), offGateway?.stop()]);
  await Promise.allSettled([downstream?.stop(), dns?.stop()]);
});

describe('reverse DNS of the client', () => {
  beforeEach(() => {
    dns.clearRecords().heal()
      .add(ptrName(CONFIRMED), 'PTR', 'mx1.sender.example.org')
      .add('mx1.sender.example.org', 'A', CONFIRMED)
      .add(ptrName(UNCONFIRMED), 'PTR', 'forged.bank.example')
      .add('forged.bank.example', 'A', '198.51.100.9')
      .add(ptrName(SLOW), 'PTR', 'slow.sender.example')
      .add(ptrName(CONFIRMED_V6), 'PTR', 'v6.sender.example.org')
      .add('v6.sender.example.org', 'AAAA', CONFIRMED_V6)
      .blackhole('slow.sender.example')
      .resetQueryLog();
  });

  test('a confirmed name is in the EHLO reply, the Received header and the decision line',
    async () => {
      const steps = await send(confirmGateway, CONFIRMED, 'rdns-confirmed');
      assert.equal(dataReply(steps), 250, JSON.stringify(steps));
      assert.match(ehloText(steps), /Hello mx1\.sender\.example\.org \[192\.0\.2\.41\]/);
      assert.match(await receivedFor('rdns-confirmed'),
        /^Received: from client\.example\.org \(mx1\.sender\.example\.org \[192\.0\.2\.41\]\)/);
      const client = await decisionClient(confirmGateway, CONFIRMED);
      assert.equal(client['rdns'], 'mx1.sender.example.org');
      // Asked of Moat's resolver, which is the test DNS server.
      assert.equal(dns.queryCount(ptrName(CONFIRMED), 'PTR'), 1);
    });

  test('IPv6 is confirmed by AAAA', async () => {
    const steps = await send(confirmGateway, CONFIRMED_V6, 'rdns-v6');
    assert.equal(dataReply(steps), 250, JSON.stringify(steps));
    assert.match(await receivedFor('rdns-v6'), /\(v6\.sender\.example\.org \[2001:db8::41\]\)/);
  });

  test('a PTR name that does not point back is not used: the client is unknown', async () => {
    const steps = await send(confirmGateway, UNCONFIRMED, 'rdns-unconfirmed');
    assert.equal(dataReply(steps), 250, JSON.stringify(steps));
    const received = await receivedFor('rdns-unconfirmed');
    assert.match(received, /\(unknown \[192\.0\.2\.42\]\)/);
    assert.doesNotMatch(received, /bank/);
    const line = await confirmGateway.waitForDecision((entry) => entry['event'] === 'delivery'
      && (entry['client'] as { ip?: string } | undefined)?.ip === UNCONFIRMED);
    assert.equal((line['client'] as Record<string, unknown>)['rdns'], 'unknown');
    const checks = (line['evidence'] as { checks?: Array<{ check: string; result: string;
      evidence?: { outcome?: string; ptr?: string } }> }).checks ?? [];
    const rdns = checks.find((entry) => entry.check === 'rdns');
    assert.equal(rdns?.result, 'neutral', JSON.stringify(checks));
    assert.equal(rdns?.evidence?.outcome, 'unconfirmed');
    assert.equal(rdns?.evidence?.ptr, 'forged.bank.example');
  });

  test('no PTR record, and a confirmation past the deadline: unknown, and the mail flows',
    async () => {
      const [none, slow] = await Promise.all([
        send(confirmGateway, NO_PTR, 'rdns-none'), send(confirmGateway, SLOW, 'rdns-slow'),
      ]);
      assert.equal(dataReply(none), 250, JSON.stringify(none));
      assert.equal(dataReply(slow), 250, JSON.stringify(slow));
      assert.match(await receivedFor('rdns-none'), /\(unknown \[192\.0\.2\.43\]\)/);
      assert.match(await receivedFor('rdns-slow'), /\(unknown \[192\.0\.2\.44\]\)/);
      const warning = await confirmGateway.waitForLine((entry) =>
        entry['client_ip'] === SLOW && entry['outcome'] === 'timeout');
      assert.equal(warning['level'], 'warn');
      assert.match(String(warning['msg']), /reverse DNS/);
    });

  test('with reverse_dns = off nothing is asked and every client is unknown', async () => {
    const steps = await send(offGateway, CONFIRMED, 'rdns-off');
    assert.equal(dataReply(steps), 250, JSON.stringify(steps));
    assert.match(await receivedFor('rdns-off'), /\(unknown \[192\.0\.2\.41\]\)/);
    assert.equal(dns.queryCount(ptrName(CONFIRMED)), 0);
    assert.equal((await decisionClient(offGateway, CONFIRMED))['rdns'], undefined);
  });
});
