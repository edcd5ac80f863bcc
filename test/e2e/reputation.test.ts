/*
 * End to end: DNS blocklists and allowlists, over real SMTP, against the real test DNS server.
 *
 * Clients are presented with the PROXY protocol (127.0.0.1 is a listed proxy host) as TEST-NET
 * addresses, which are not internal networks. Gateways started here:
 *   connect  refuse_at = connect; zones (DNS_ZONES):
 *              bl.example      block 1, counts 127.0.0.2-127.0.0.11
 *              half-a/half-b   block 0.5 each (two listings reach the threshold of 1)
 *              errcode.example block 1, answers 127.255.255.254 (an error, never a listing)
 *              dead.example    block 1, never answers (past the deadline: fail-open)
 *              wl.example      allow -2
 *            and allow_networks = 198.51.100.128/25
 *   rcpt     refuse_at = rcpt, bl.example only
 *
 * The deadline is 500 ms so every connection to `connect` waits that long for dead.example.
 */

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { startDns, type DnsServer } from '../harness/dns';
import { startDownstream, type Downstream } from '../harness/downstream';
import { startGateway, type Gateway } from '../harness/gateway';
import { proxyV1Header, sendMail, SmtpTalk, type SendMailStep } from '../harness/smtp-talk';

const LISTED = '203.0.113.7';
const UNLISTED = '203.0.113.8';
const ERROR_CODED = '203.0.113.9';
const ALLOWED_BY_ZONE = '203.0.113.10';
const HALF_LISTED = '203.0.113.11';
const TWICE_HALF_LISTED = '203.0.113.12';
const CACHED = '203.0.113.13';
const LISTED_V6 = '2001:db8::5';
const LOCAL_ALLOWED = '198.51.100.200';

const DNS_ZONES = [
  'block:bl.example:1:127.0.0.2-127.0.0.11',
  'block:half-a.example:0.5',
  'block:half-b.example:0.5',
  'block:errcode.example:1',
  'block:dead.example:1',
  'allow:wl.example:-2',
].join(', ');

let dns: DnsServer;
let downstream: Downstream;
let connectGateway: Gateway;
let rcptGateway: Gateway;

function reversed(ip: string): string {
  if (!ip.includes(':')) return ip.split('.').reverse().join('.');
  const [head = '', tail = ''] = ip.split('::');
  const headGroups = head ? head.split(':') : [];
  const tailGroups = tail ? tail.split(':') : [];
  const zeros = Array<string>(8 - headGroups.length - tailGroups.length).fill('0');
  const hex = [...headGroups, ...zeros, ...tailGroups].map((g) => g.padStart(4, '0')).join('');
  return hex.split('').reverse().join('.');
}

function presenting(clientIp: string): string {
  const v6 = clientIp.includes(':');
  return proxyV1Header({ sourceAddress: clientIp, sourcePort: 40000,
    destinationAddress: v6 ? '2001:db8::25' : '192.0.2.25', destinationPort: 25 });
}

async function mailFrom(gateway: Gateway, clientIp: string, body = 'Hello.\r\n'):
Promise<SendMailStep[]> {
  return sendMail({
    host: gateway.host, port: gateway.port, proxy: presenting(clientIp),
    from: 'alice@sender.example.org', to: ['bob@example.com'],
    data: `From: alice@sender.example.org\r\nTo: bob@example.com\r\nSubject: hi\r\n\r\n${body}`,
  });
}

function replyOf(steps: SendMailStep[], step: string): { code: number; text: string } {
  const found = steps.find((entry) => entry.step === step);
  return { code: found?.reply.code ?? 0, text: found?.reply.lines.join(' ') ?? '' };
}

function connectionLine(gateway: Gateway, clientIp: string): Promise<Record<string, unknown>> {
  return gateway.waitForDecision((line) => line['event'] === 'connection'
    && (line['client'] as { ip?: string } | undefined)?.ip === clientIp);
}

type ZoneEvidence = { zone: string; outcome: string; weight: number; answers?: string;
  detail?: string };

function zonesOf(line: Record<string, unknown>): Map<string, ZoneEvidence> {
  const evidence = line['evidence'] as { dnsbl: { zones: ZoneEvidence[] } };
  return new Map(evidence.dnsbl.zones.map((zone) => [zone.zone, zone]));
}

before(async () => {
  dns = await startDns();
  dns.blackhole('dead.example');
  dns.add(`${reversed(LISTED)}.bl.example`, 'A', '127.0.0.2')
    .add(`${reversed(LISTED_V6)}.bl.example`, 'A', '127.0.0.4')
    .add(`${reversed(LOCAL_ALLOWED)}.bl.example`, 'A', '127.0.0.2')
    .add(`${reversed(ALLOWED_BY_ZONE)}.bl.example`, 'A', '127.0.0.2')
    .add(`${reversed(ALLOWED_BY_ZONE)}.wl.example`, 'A', '127.0.10.3')
    .add(`${reversed(ERROR_CODED)}.errcode.example`, 'A', '127.255.255.254')
    .add(`${reversed(HALF_LISTED)}.half-a.example`, 'A', '127.0.0.2')
    .add(`${reversed(TWICE_HALF_LISTED)}.half-a.example`, 'A', '127.0.0.2')
    .add(`${reversed(TWICE_HALF_LISTED)}.half-b.example`, 'A', '127.0.0.3')
    // A listing in bl.example with a code outside 127.0.0.2-127.0.0.11 does not count.
    .add(`${reversed(CACHED)}.bl.example`, 'A', '127.0.0.99');
  downstream = await startDownstream();

  const env = { MOAT_DNS_SERVERS: dns.address, MOAT_PROXY_HOSTS: '127.0.0.1',
    MOAT_DOWNSTREAM: downstream.address };
  [connectGateway, rcptGateway] = await Promise.all([
    startGateway({ env, ini: [
      '[reputation]', `zones = ${DNS_ZONES}`, 'threshold = 1', 'refuse_at = connect',
      'deadline = 500ms', 'allow_networks = 198.51.100.128/25', '',
    ].join('\n') }),
    startGateway({ env, ini: [
      '[reputation]', 'zones = block:bl.example:1:127.0.0.2-127.0.0.11', 'refuse_at = rcpt', '',
    ].join('\n') }),
  ]);
});

after(async () => {
  await connectGateway?.stop();
  await rcptGateway?.stop();
  await downstream?.stop();
  await dns?.stop();
});

describe('DNS blocklists at connect', () => {
  test('a listed client is refused at the greeting with 554 5.7.1 naming the list', async () => {
    const steps = await mailFrom(connectGateway, LISTED);
    assert.equal(steps.length, 1);
    const greeting = replyOf(steps, 'greeting');
    assert.equal(greeting.code, 554);
    assert.match(greeting.text, /5\.7\.1 .*\[203\.0\.113\.7\] is listed by bl\.example/);

    const line = await connectionLine(connectGateway, LISTED);
    assert.equal(line['action'], 'reject');
    assert.equal(line['reason'], 'dnsbl-listed');
    const zones = zonesOf(line);
    assert.deepEqual(zones.get('bl.example'),
      { zone: 'bl.example', kind: 'block', outcome: 'listed', weight: 1, answers: '127.0.0.2' });
    assert.equal((line['evidence'] as { dnsbl: { score: number } }).dnsbl.score, 1);
  });

  test('an unlisted client sends mail; a timed-out zone is skipped, logged, counted', async () => {
    const steps = await mailFrom(connectGateway, UNLISTED);
    assert.equal(replyOf(steps, 'greeting').code, 220);
    assert.equal(replyOf(steps, 'message').code, 250);

    const line = await connectionLine(connectGateway, UNLISTED);
    assert.equal(line['action'], 'accept');
    const zones = zonesOf(line);
    assert.equal(zones.get('bl.example')?.outcome, 'clean');
    assert.equal(zones.get('dead.example')?.outcome, 'timeout');
    const warn = connectGateway.lines().find((entry) => entry['component'] === 'reputation'
      && entry['zone'] === 'dead.example' && entry['client_ip'] === UNLISTED);
    assert.equal(warn?.['level'], 'warn');
    assert.equal(warn?.['outcome'], 'timeout');
  });

  test('an IPv6 client listed under its reversed nibbles is refused', async () => {
    const steps = await mailFrom(connectGateway, LISTED_V6);
    assert.equal(replyOf(steps, 'greeting').code, 554);
    const line = await connectionLine(connectGateway, LISTED_V6);
    assert.equal(zonesOf(line).get('bl.example')?.answers, '127.0.0.4');
  });

  test('a zone answering 127.255.255.254 is an error, not a listing', async () => {
    const steps = await mailFrom(connectGateway, ERROR_CODED);
    assert.equal(replyOf(steps, 'message').code, 250);
    const zone = zonesOf(await connectionLine(connectGateway, ERROR_CODED)).get('errcode.example');
    assert.equal(zone?.outcome, 'error');
    assert.equal(zone?.weight, 0);
    assert.match(zone?.detail ?? '', /error code 127\.255\.255\.254/);
  });

  test('an answer outside the counted codes does not list the client', async () => {
    const steps = await mailFrom(connectGateway, CACHED);
    assert.equal(replyOf(steps, 'message').code, 250);
    const zone = zonesOf(await connectionLine(connectGateway, CACHED)).get('bl.example');
    assert.equal(zone?.outcome, 'clean');
    assert.equal(zone?.answers, '127.0.0.99');
  });

  test('an allowlist zone lowers the score below the threshold', async () => {
    const steps = await mailFrom(connectGateway, ALLOWED_BY_ZONE);
    assert.equal(replyOf(steps, 'message').code, 250);
    const line = await connectionLine(connectGateway, ALLOWED_BY_ZONE);
    assert.equal((line['evidence'] as { dnsbl: { score: number } }).dnsbl.score, -1);
    assert.equal(zonesOf(line).get('wl.example')?.outcome, 'listed');
  });

  test('a client in allow_networks is not looked up at all', async () => {
    const steps = await mailFrom(connectGateway, LOCAL_ALLOWED);
    assert.equal(replyOf(steps, 'message').code, 250);
    const line = await connectionLine(connectGateway, LOCAL_ALLOWED);
    assert.deepEqual(line['evidence'], { dnsbl: { skipped: 'local-allowlist' },
      refuse_at: 'connect' });
    // No list is asked (the client's own name still is: its PTR under in-addr.arpa).
    assert.equal(dns.queries.filter((query) => query.name.startsWith(reversed(LOCAL_ALLOWED))
      && !query.name.endsWith('.in-addr.arpa')).length, 0);
    assert.equal(dns.queryCount(`${reversed(LOCAL_ALLOWED)}.in-addr.arpa`, 'PTR'), 1);
  });

  test('an internal client (RFC 1918) is not looked up and not logged', async () => {
    const steps = await mailFrom(connectGateway, '10.1.2.3');
    assert.equal(replyOf(steps, 'message').code, 250);
    // Neither the lists nor its reverse DNS.
    assert.equal(dns.queries.filter((query) => query.name.startsWith('3.2.1.10.')).length, 0);
  });

  test('weights add up: one half listing passes, two refuse naming both lists', async () => {
    assert.equal(replyOf(await mailFrom(connectGateway, HALF_LISTED), 'message').code, 250);
    const steps = await mailFrom(connectGateway, TWICE_HALF_LISTED);
    const greeting = replyOf(steps, 'greeting');
    assert.equal(greeting.code, 554);
    assert.match(greeting.text, /listed by half-a\.example, half-b\.example/);
  });

  test('a second connection is answered from the cache, without new queries', async () => {
    const name = `${reversed(UNLISTED)}.bl.example`;
    await mailFrom(connectGateway, UNLISTED);
    const before = dns.queryCount(name);
    assert.ok(before >= 1);
    await mailFrom(connectGateway, UNLISTED);
    assert.equal(dns.queryCount(name), before);
  });

  test('the message verdict carries the dnsbl result', async () => {
    // A NUL byte gets the message refused at the end of DATA, so its line lists every result.
    const steps = await mailFrom(connectGateway, HALF_LISTED, 'Hello\0there.\r\n');
    assert.equal(replyOf(steps, 'message').code, 554);
    const line = await connectGateway.waitForDecision((entry) => entry['event'] === 'message'
      && (entry['client'] as { ip?: string }).ip === HALF_LISTED);
    const results = (line['evidence'] as { results: string[] }).results;
    assert.ok(results.includes('dnsbl=neutral'), results.join(' '));
  });

  test('a refused connection is counted once, as refused_policy, never as accepted', async () => {
    const count = async (outcome: string): Promise<number> => {
      const text = await connectGateway.metrics();
      const match = new RegExp(`^moat_connections_total\\{outcome="${outcome}"\\} (\\d+)`, 'm')
        .exec(text);
      return Number(match?.[1] ?? 0);
    };
    const [accepted, refused] = [await count('accepted'), await count('refused_policy')];
    assert.equal(replyOf(await mailFrom(connectGateway, LISTED), 'greeting').code, 554);
    assert.equal(await count('refused_policy'), refused + 1);
    assert.equal(await count('accepted'), accepted);
  });

  test('resolver and list metrics are on /metrics', async () => {
    const metrics = await connectGateway.metrics();
    assert.match(metrics, /^moat_dns_lookups_total\{type="A",outcome="nxdomain"\} [1-9]/m);
    assert.match(metrics, /^moat_dns_cache_total\{result="hit"\} [1-9]/m);
    assert.match(metrics, /^moat_dns_query_seconds_count\{type="A",outcome="ok"\} [1-9]/m);
    assert.match(metrics, /^moat_dnsbl_lookups_total\{zone="bl.example",outcome="listed"\} [1-9]/m);
    assert.match(metrics,
      /^moat_dnsbl_lookups_total\{zone="dead.example",outcome="timeout"\} [1-9]/m);
    assert.match(metrics,
      /^moat_dnsbl_lookups_total\{zone="errcode.example",outcome="error"\} [1-9]/m);
    assert.match(metrics, /^moat_connections_total\{outcome="refused_policy"\} [1-9]/m);
  });
});

describe('DNS blocklists at RCPT', () => {
  test('a listed client is greeted, then each recipient is refused naming the list', async () => {
    const talk = await SmtpTalk.connect(rcptGateway.host, rcptGateway.port,
      { proxy: presenting(LISTED) });
    try {
      await talk.expect(220);
      await talk.command('EHLO client.example.org');
      assert.equal((await talk.command('MAIL FROM:<alice@sender.example.org>')).code, 250);
      for (const rcpt of ['bob@example.com', 'carol@example.com']) {
        const reply = await talk.command(`RCPT TO:<${rcpt}>`);
        assert.equal(reply.code, 554);
        assert.match(reply.lines.join(' '), /5\.7\.1 .*listed by bl\.example/);
      }
      await talk.command('QUIT');
    } finally {
      talk.close();
    }

    const line = await rcptGateway.waitForDecision((entry) => entry['event'] === 'recipient'
      && (entry['envelope'] as { to?: string[] }).to?.[0] === '<carol@example.com>');
    assert.equal(line['reason'], 'dnsbl-listed');
    assert.equal((line['envelope'] as { from: string }).from, 'alice@sender.example.org');
    assert.equal(zonesOf(line).get('bl.example')?.outcome, 'listed');
  });

  test('an unlisted client is accepted', async () => {
    const steps = await mailFrom(rcptGateway, UNLISTED);
    assert.equal(replyOf(steps, 'message').code, 250);
  });
});
