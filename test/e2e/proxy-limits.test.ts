/*
 * End to end: the inbound side of the real gateway. STARTTLS from the client, the PROXY
 * protocol (who may use it, and that the presented address is the one Moat judges), and the
 * connection and transaction limits: connections per address, message size, recipients, slow
 * drip, idle clients, early talkers. Last, the monitoring endpoint, and which dependencies
 * make /readyz answer 503.
 *
 * Gateways started here:
 *   limits   a certificate, proxy_hosts = 127.0.0.2, small limits (see LIMITS_INI); tests
 *            reach it from 127.0.0.1 directly, or from 127.0.0.2 with a PROXY header
 *   plain    no certificate, no proxy hosts, default limits, its own downstream (which the
 *            /readyz test stops last)
 *   scanned  a real clamd (on_failure = tempfail) and a real Redis, stopped one by one for
 *            /readyz: clamd makes the node unready, Redis (fail-open) is only reported
 *   lenient  a dead spamd with on_failure = deliver: reported, not unready
 *
 * The PROXY peer is 127.0.0.2, not 127.0.0.1: the harness decides a gateway is up when a
 * plain connection from 127.0.0.1 is greeted, and Haraka greets a listed proxy peer only
 * after its PROXY line.
 *
 * Needs: dist/ built, openssl (test certificates), clamd and redis-server, the loopback
 * address 127.0.0.2 (Linux routes all of 127.0.0.0/8 to lo).
 */

import assert from 'node:assert/strict';
import { connect as connectTcp, isIPv6, SocketAddress, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';

import { startClamd, type ClamdServer } from '../harness/clamd';
import { startDownstream, type Downstream } from '../harness/downstream';
import { startGateway, type Gateway } from '../harness/gateway';
import { freePort, LOOPBACK } from '../harness/ports';
import { startRedis, type RedisServer } from '../harness/redis';
import {
  dotStuff, proxyV1Header, proxyV2Header, sendMail, SmtpTalk, type SmtpTalkReply,
} from '../harness/smtp-talk';
import { makeTestCertificates } from '../harness/tls';

const SENDER = 'alice@sender.example.org';
const PROXY_PEER = '127.0.0.2';

const LIMITS_INI = [
  '[smtp]',
  'max_connections_per_ip = 2',
  'max_message_size = 10k',
  'max_recipients = 2',
  'min_data_rate = 1000',
  'min_data_rate_grace = 1s',
  'idle_timeout = 2s',
  '',
].join('\n');

function message(subject: string, body = 'Hello from the outside.\r\n'): string {
  return [
    'From: Alice <alice@sender.example.org>',
    'To: Bob <bob@example.com>',
    `Subject: ${subject}`,
    '',
    '',
  ].join('\r\n') + body;
}

/*
 * A raw client whose connection comes from PROXY_PEER. SmtpTalk.connect() cannot choose the
 * local address, so the socket is made here and handed to SmtpTalk (its constructor is
 * private in the type only).
 */
const SmtpTalkOnSocket = SmtpTalk as unknown as new (socket: Socket) => SmtpTalk;

function connectFromProxyPeer(gateway: Gateway, header: Buffer | string): Promise<SmtpTalk> {
  return new Promise((resolve, reject) => {
    const socket = connectTcp({ host: gateway.host, port: gateway.port, localAddress: PROXY_PEER });
    socket.once('error', reject);
    socket.once('connect', () => {
      socket.removeListener('error', reject);
      socket.write(header);
      resolve(new SmtpTalkOnSocket(socket));
    });
  });
}

/** PROXY v1 presenting `clientIp` (destination in the same family). */
function presenting(clientIp: string): string {
  const destinationAddress = clientIp.includes(':') ? '2001:db8::25' : '192.0.2.25';
  return proxyV1Header({ sourceAddress: clientIp, sourcePort: 40000, destinationAddress,
    destinationPort: 25 });
}

/** Greeting, EHLO, MAIL; returns the EHLO reply. */
async function openTransaction(talk: SmtpTalk, mailParameters = ''): Promise<SmtpTalkReply> {
  await talk.expect(220);
  const ehlo = await talk.command('EHLO client.example.org');
  assert.equal(ehlo.code, 250, ehlo.raw);
  const mail = await talk.command(`MAIL FROM:<${SENDER}>${mailParameters}`);
  assert.equal(mail.code, 250, mail.raw);
  return ehlo;
}

/** RCPT each (all must be accepted), DATA, the message; returns the final-dot reply. */
async function finishTransaction(
  talk: SmtpTalk, to: string[], data: string,
): Promise<SmtpTalkReply> {
  for (const recipient of to) {
    const reply = await talk.command(`RCPT TO:<${recipient}>`);
    assert.equal(reply.code, 250, reply.raw);
  }
  const data354 = await talk.command('DATA');
  assert.equal(data354.code, 354, data354.raw);
  talk.send(dotStuff(data));
  return talk.readReply();
}

/** The delivery decision line for the message sent to `recipient`. */
function deliveryFor(gateway: Gateway, recipient: string): Promise<Record<string, unknown>> {
  return gateway.waitForDecision((line) => line['event'] === 'delivery'
    && JSON.stringify((line['envelope'] as { to?: unknown } | undefined)?.to ?? [])
      .includes(recipient));
}

function clientOf(line: Record<string, unknown>): { ip?: string; tls?: boolean } {
  return (line['client'] ?? {}) as { ip?: string; tls?: boolean };
}

/** Every decision line that names `ip` as the client. */
function linesFrom(gateway: Gateway, ip: string): Array<Record<string, unknown>> {
  return gateway.decisions().filter((line) => clientOf(line).ip === ip);
}

/** The same address in one spelling (RFC 5952 for IPv6), so equal addresses compare equal. */
function canonicalIp(ip: string | undefined): string | undefined {
  if (ip === undefined || !isIPv6(ip)) return ip;
  return new SocketAddress({ address: ip, family: 'ipv6' }).address;
}

const settle = (ms = 300): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('inbound: TLS, PROXY and limits', () => {
  const certificates = makeTestCertificates();
  let downstream: Downstream;
  let gateway: Gateway;

  before(async () => {
    downstream = await startDownstream();
    gateway = await startGateway({
      env: {
        MOAT_DOWNSTREAM: downstream.address,
        MOAT_TLS_CERT: certificates.serverCertPath,
        MOAT_TLS_KEY: certificates.serverKeyPath,
        MOAT_PROXY_HOSTS: PROXY_PEER,
      },
      ini: LIMITS_INI,
    });
  });

  after(async () => {
    await gateway?.stop();
    await downstream?.stop();
  });

  test('commands pipelined behind STARTTLS are discarded, not run after the '
    + 'handshake', async () => {
    const talk = await SmtpTalk.connect(gateway.host, gateway.port);
    try {
      await talk.expect(220);
      await talk.command('EHLO client.example.org');
      await talk.startTls({ ca: certificates.ca, servername: 'localhost' },
        'MAIL FROM:<injected@evil.example>\r\n');
      assert.equal((await talk.command('EHLO client.example.org')).code, 250);
      // Had the injected MAIL run inside the TLS session, this RCPT would be accepted.
      const rcpt = await talk.command('RCPT TO:<bob@example.com>');
      assert.equal(rcpt.code, 503, rcpt.raw);
    } finally {
      talk.close();
    }
  });

  test('STARTTLS is advertised, the upgrade works, mail is delivered over it', async () => {
    downstream.reset();
    const talk = await SmtpTalk.connect(gateway.host, gateway.port);
    try {
      await talk.expect(220);
      const ehlo = await talk.command('EHLO client.example.org');
      assert.ok(ehlo.lines.includes('STARTTLS'), ehlo.raw);
      await talk.startTls({ ca: certificates.ca, servername: 'localhost' });
      const secureEhlo = await talk.command('EHLO client.example.org');
      assert.equal(secureEhlo.code, 250, secureEhlo.raw);
      assert.ok(!secureEhlo.lines.includes('STARTTLS'), 'STARTTLS offered again inside TLS');
      assert.equal((await talk.command(`MAIL FROM:<${SENDER}>`)).code, 250);
      const reply = await finishTransaction(talk, ['tls@example.com'], message('inbound tls'));
      assert.equal(reply.code, 250, reply.raw);
      await talk.command('QUIT');
    } finally {
      talk.close();
    }
    const [delivered] = await downstream.waitForMessages(1);
    assert.deepEqual(delivered?.rcptTo, ['tls@example.com']);
    const line = await deliveryFor(gateway, 'tls@example.com');
    assert.equal(clientOf(line).tls, true, JSON.stringify(line));
  });

  const presented: Array<[string, string, () => Buffer | string]> = [
    ['v1', '203.0.113.7', () => presenting('203.0.113.7')],
    ['v1', '2001:db8::7', () => presenting('2001:db8::7')],
    ['v2', '203.0.113.8', () => proxyV2Header({ sourceAddress: '203.0.113.8',
      sourcePort: 40000, destinationAddress: '192.0.2.25', destinationPort: 25 })],
    ['v2', '2001:db8::8', () => proxyV2Header({ sourceAddress: '2001:db8::8',
      sourcePort: 40000, destinationAddress: '2001:db8::25', destinationPort: 25 })],
  ];
  for (const [version, clientIp, header] of presented) {
    test(`PROXY ${version} from a listed host: ${clientIp} is the client address`, async () => {
      const recipient = `proxy-${version}-${clientIp.replace(/[.:]/g, '-')}@example.com`;
      const talk = await connectFromProxyPeer(gateway, header());
      try {
        await openTransaction(talk);
        const reply = await finishTransaction(talk, [recipient], message(`proxy ${version}`));
        assert.equal(reply.code, 250, reply.raw);
      } finally {
        talk.close();
      }
      const line = await deliveryFor(gateway, recipient);
      assert.equal(canonicalIp(clientOf(line).ip), clientIp, JSON.stringify(line));
    });
  }

  // One address, one spelling: limits, rate-limit keys and logs compare the text.
  test('PROXY v2 presents an IPv6 address in the same (RFC 5952) spelling as v1', async () => {
    const recipient = 'proxy-v2-spelling@example.com';
    const talk = await connectFromProxyPeer(gateway, proxyV2Header({ sourceAddress: '2001:db8::9',
      sourcePort: 40000, destinationAddress: '2001:db8::25', destinationPort: 25 }));
    try {
      await openTransaction(talk);
      const reply = await finishTransaction(talk, [recipient], message('proxy v2 spelling'));
      assert.equal(reply.code, 250, reply.raw);
    } finally {
      talk.close();
    }
    const line = await deliveryFor(gateway, recipient);
    assert.equal(clientOf(line).ip, '2001:db8::9', JSON.stringify(line));
  });

  /** Every reply until the server closes; throws if it goes quiet without closing. */
  async function repliesUntilClosed(talk: SmtpTalk): Promise<SmtpTalkReply[]> {
    const replies: SmtpTalkReply[] = [];
    try {
      for (;;) replies.push(await talk.readReply(5000));
    } catch (error) {
      if (!talk.closed) throw error;
    } finally {
      talk.close();
    }
    return replies;
  }

  test('PROXY v1 from a host not listed: refused, connection closed, never applied',
    async () => {
      const talk = await SmtpTalk.connect(gateway.host, gateway.port,
        { proxy: presenting('203.0.113.66') });
      const replies = await repliesUntilClosed(talk);
      const raw = replies.map((reply) => reply.raw).join('');
      assert.ok(replies.some((reply) => reply.code >= 400), `no refusal:\n${raw}`);
      assert.ok(replies.every((reply) => reply.code === 220 || reply.code >= 400), raw);
      await settle();
      assert.deepEqual(linesFrom(gateway, '203.0.113.66'), []);
    });

  test('PROXY v2 from a host not listed: refused, connection closed, never applied',
    async () => {
      // Haraka reads the binary header as text lines; its signature ends in "QUIT\n".
      const header = proxyV2Header({ sourceAddress: '203.0.113.67', sourcePort: 40000,
        destinationAddress: '192.0.2.25', destinationPort: 25 });
      const talk = await SmtpTalk.connect(gateway.host, gateway.port, { proxy: header });
      const replies = await repliesUntilClosed(talk);
      const raw = replies.map((reply) => reply.raw).join('');
      assert.ok(replies.some((reply) => reply.code >= 400), `no refusal:\n${raw}`);
      assert.ok(!replies.some((reply) => reply.code === 250), `got a 250:\n${raw}`);
      await settle();
      assert.deepEqual(linesFrom(gateway, '203.0.113.67'), []);
    });

  test('a third connection from one address: 421 4.7.0 and closed; another address is fine',
    async () => {
      const open: SmtpTalk[] = [];
      try {
        for (let index = 0; index < 2; index++) {
          const talk = await connectFromProxyPeer(gateway, presenting('198.51.100.20'));
          open.push(talk);
          await talk.expect(220);
        }
        const third = await connectFromProxyPeer(gateway, presenting('198.51.100.20'));
        open.push(third);
        const refusal = await third.readReply();
        assert.match(refusal.raw, /^421 4\.7\.0 /);
        assert.equal(await third.waitForClose(5000), true, 'third connection left open');

        const other = await connectFromProxyPeer(gateway, presenting('198.51.100.21'));
        open.push(other);
        await other.expect(220);
      } finally {
        for (const talk of open) talk.close();
      }
      const line = await gateway.waitForDecision((entry) =>
        entry['reason'] === 'too-many-connections-from-ip'
        && clientOf(entry).ip === '198.51.100.20');
      assert.equal(line['action'], 'tempfail');
    });

  test('size: SIZE 10240 advertised; SIZE=20000 and a 20 KB message get 552 5.3.4',
    async () => {
      downstream.reset();
      const talk = await SmtpTalk.connect(gateway.host, gateway.port);
      const bigBody = `${'A'.repeat(78)}\r\n`.repeat(256);
      try {
        await talk.expect(220);
        const ehlo = await talk.command('EHLO client.example.org');
        assert.ok(ehlo.lines.includes('SIZE 10240'), ehlo.raw);

        // Declared too big: refused at MAIL.
        const declared = await talk.command(`MAIL FROM:<${SENDER}> SIZE=20000`);
        assert.match(declared.raw, /^552 5\.3\.4 /);

        // Not declared: refused at the final dot.
        assert.equal((await talk.command(`MAIL FROM:<${SENDER}>`)).code, 250);
        const reply = await finishTransaction(talk, ['big@example.com'], message('big', bigBody));
        assert.match(reply.raw, /^552 5\.3\.4 /);
      } finally {
        talk.close();
      }
      await settle();
      assert.equal(downstream.messages.length, 0);
    });

  test('a third recipient gets 452 4.5.3; the message goes to the first two', async () => {
    downstream.reset();
    const steps = await sendMail({
      host: gateway.host, port: gateway.port, from: SENDER,
      to: ['one@example.com', 'two@example.com', 'three@example.com'],
      data: message('three recipients'),
    });
    const codes = Object.fromEntries(steps.map((step) => [step.step, step.reply.raw]));
    assert.match(codes['RCPT one@example.com'] ?? '', /^250 /);
    assert.match(codes['RCPT two@example.com'] ?? '', /^250 /);
    assert.match(codes['RCPT three@example.com'] ?? '', /^452 4\.5\.3 /);
    assert.match(codes['message'] ?? '', /^250 /);
    const [delivered] = await downstream.waitForMessages(1);
    assert.deepEqual(delivered?.rcptTo, ['one@example.com', 'two@example.com']);
  });

  test('a slow drip during DATA: 421 4.4.2 and closed, nothing delivered', async () => {
    downstream.reset();
    const talk = await SmtpTalk.connect(gateway.host, gateway.port);
    let dripping = true;
    try {
      await openTransaction(talk);
      assert.equal((await talk.command('RCPT TO:<drip@example.com>')).code, 250);
      assert.equal((await talk.command('DATA')).code, 354);

      // A few bytes every half second, well under 1000 bytes a second, never idle for 2 s.
      const drip = (async (): Promise<void> => {
        while (dripping && !talk.closed) {
          talk.send('Xx\r\n');
          await settle(500);
        }
      })();
      const reply = await talk.readReply(10_000);
      dripping = false;
      await drip;
      assert.match(reply.raw, /^421 4\.4\.2 /);
      assert.equal(await talk.waitForClose(5000), true, 'connection left open');
    } finally {
      dripping = false;
      talk.close();
    }
    await settle();
    assert.equal(downstream.messages.length, 0);
    const line = await gateway.waitForDecision((entry) => entry['reason'] === 'slow-data');
    assert.equal(line['action'], 'tempfail');
  });

  test('a client that says nothing for idle_timeout gets 421 and is closed', async () => {
    const talk = await SmtpTalk.connect(gateway.host, gateway.port);
    try {
      await talk.expect(220);
      const reply = await talk.readReply(8000);
      assert.equal(reply.code, 421, reply.raw);
      assert.equal(await talk.waitForClose(5000), true, 'connection left open');
    } finally {
      talk.close();
    }
  });
});

describe('inbound: no certificate, and the monitoring endpoint', () => {
  let downstream: Downstream;
  let gateway: Gateway;

  before(async () => {
    downstream = await startDownstream();
    gateway = await startGateway({ env: { MOAT_DOWNSTREAM: downstream.address } });
  });

  after(async () => {
    await gateway?.stop();
    await downstream?.stop();
  });

  const monitoring = (path: string): Promise<Response> =>
    fetch(`http://${gateway.host}:${gateway.metricsPort}${path}`,
      { signal: AbortSignal.timeout(5000) });

  test('without a certificate STARTTLS is not advertised', async () => {
    const talk = await SmtpTalk.connect(gateway.host, gateway.port);
    try {
      await talk.expect(220);
      const ehlo = await talk.command('EHLO client.example.org');
      assert.equal(ehlo.code, 250, ehlo.raw);
      assert.ok(!ehlo.lines.some((line) => /^STARTTLS\b/i.test(line)), ehlo.raw);
    } finally {
      talk.close();
    }
  });

  test('/healthz 200; /metrics counts a delivered message', async () => {
    const health = await monitoring('/healthz');
    assert.equal(health.status, 200);

    const steps = await sendMail({ host: gateway.host, port: gateway.port, from: SENDER,
      to: ['metrics@example.com'], data: message('count me') });
    const reply = steps.find((step) => step.step === 'message')?.reply;
    assert.equal(reply?.code, 250, reply?.raw);
    await deliveryFor(gateway, 'metrics@example.com');

    const metrics = await monitoring('/metrics');
    assert.equal(metrics.status, 200);
    const text = await metrics.text();
    assert.match(text, /^moat_messages_total\{[^}]*action="deliver"[^}]*\} [1-9]/m, text);
  });

  // Last: it stops this group's downstream.
  test('/readyz 200 with the internal server up, 503 with it stopped', async () => {
    const ready = await monitoring('/readyz');
    assert.equal(ready.status, 200, await ready.text());

    await downstream.stop();
    const notReady = await monitoring('/readyz');
    const body = await notReady.text();
    assert.equal(notReady.status, 503, body);
    assert.match(body, /downstream/);
  });
});

describe('the monitoring endpoint: /readyz with scanners and Redis configured', () => {
  let downstream: Downstream;
  let clamd: ClamdServer;
  let redis: RedisServer;
  let scanned: Gateway;
  let lenient: Gateway;

  before(async () => {
    [downstream, clamd, redis] = await Promise.all([startDownstream(), startClamd(),
      startRedis()]);
    const deadSpamd = `${LOOPBACK}:${await freePort()}`;
    [scanned, lenient] = await Promise.all([
      startGateway({ env: {
        MOAT_DOWNSTREAM: downstream.address, MOAT_CLAMD: clamd.address, MOAT_REDIS_URL: redis.url,
      } }),
      startGateway({ env: { MOAT_DOWNSTREAM: downstream.address, MOAT_SPAMD: deadSpamd },
        ini: '[spamd]\non_failure = deliver\n' }),
    ]);
  });

  after(async () => {
    await Promise.all([scanned?.stop(), lenient?.stop()]);
    await Promise.all([downstream?.stop(), clamd?.stop(), redis?.stop()]);
  });

  interface ReadyzBody {
    ready: boolean;
    checks: Record<string, { ok: boolean; detail: string; advisory?: boolean }>;
  }
  const readyz = async (target: Gateway): Promise<{ status: number; body: ReadyzBody }> => {
    const { status, body } = await target.readyz();
    return { status, body: body as unknown as ReadyzBody };
  };

  test('everything up: 200; clamd is a required check, Redis an advisory one', async () => {
    const { status, body } = await readyz(scanned);
    assert.equal(status, 200, JSON.stringify(body));
    assert.deepEqual(Object.keys(body.checks).sort(),
      ['clamd', 'downstream', 'draining', 'redis']);
    assert.equal(body.checks['clamd']?.ok, true);
    assert.equal(body.checks['clamd']?.advisory, undefined);
    assert.deepEqual([body.checks['redis']?.ok, body.checks['redis']?.advisory], [true, true]);
  });

  test('spamd down with on_failure = deliver: shown not ok, advisory, still 200', async () => {
    const { status, body } = await readyz(lenient);
    assert.equal(status, 200, JSON.stringify(body));
    assert.equal(body.ready, true);
    assert.deepEqual([body.checks['spamd']?.ok, body.checks['spamd']?.advisory], [false, true]);
  });

  test('Redis stopped: still 200 (rate limits fail open), Redis shown not ok', async () => {
    await redis.kill();
    const { status, body } = await readyz(scanned);
    assert.equal(status, 200, JSON.stringify(body));
    assert.equal(body.ready, true);
    assert.deepEqual([body.checks['redis']?.ok, body.checks['redis']?.advisory], [false, true]);
    assert.equal(body.checks['clamd']?.ok, true);
  });

  // Last: it stops clamd.
  test('clamd stopped (on_failure = tempfail): 503 naming clamd', async () => {
    await clamd.kill();
    const { status, body } = await readyz(scanned);
    assert.equal(status, 503, JSON.stringify(body));
    assert.equal(body.ready, false);
    assert.equal(body.checks['clamd']?.ok, false);
    assert.ok(body.checks['clamd']?.detail.includes(clamd.address), body.checks['clamd']?.detail);
    assert.equal(body.checks['downstream']?.ok, true, 'clamd alone must be the cause');
  });
});
