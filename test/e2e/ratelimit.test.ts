/*
 * End to end: rate limits shared by two real gateways through a real Redis, then through a
 * real three-master Redis Cluster.
 *
 * For each store, two pairs of gateways share it:
 *   short   every limit with a 2 s window (LIMITS_INI): each limit trips at exactly its
 *           maximum, answers with the limit's code and a retry hint, logs limit/key/count/window,
 *           counts moat_ratelimit_hits_total{limit}, and admits again once the window passed;
 *           counts are shared between the two gateways; exemptions.
 *   exact   messages_per_sender = 20/1m only: 60 concurrent attempts over both gateways, from
 *           60 addresses, are exactly 20 accepted messages.
 * With the single Redis, last: Redis frozen (the deadline is honoured, mail flows) and Redis
 * killed mid-run (mail flows, the errors are counted, the limits resume once it is back).
 *
 * Every client address is a documentation address presented with PROXY v1 from 127.0.0.1
 * (MOAT_PROXY_HOSTS), one set per test, so tests never share a count by accident.
 */

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { startDownstream, type Downstream } from '../harness/downstream';
import { startGateway, type Gateway } from '../harness/gateway';
import { startRedisCluster, type RedisCluster } from '../harness/redis-cluster';
import { startRedis, type RedisServer } from '../harness/redis';
import { proxyV1Header, sendMail, SmtpTalk } from '../harness/smtp-talk';

const WINDOW_MS = 2000;

const LIMITS_INI = [
  '[ratelimit]',
  'concurrent_connections_per_ip = 3',
  'connections_per_ip = 4/2s',
  'messages_per_ip = 5/2s',
  'messages_per_sender = 3/2s',
  'messages_per_sender_domain = 4/2s 421 exempt=@bulk.example',
  'recipients_per_message = 3',
  'recipients_per_sender = 5/2s',
  'messages_per_recipient = 3/2s',
  'exempt = 198.51.100.99, @trusted.example',
  'redis_timeout = 500ms',
  '',
].join('\n');

const EXACT_INI = '[ratelimit]\nmessages_per_sender = 20/1m\nredis_timeout = 1s\n';

let addressSeed = 0;
/** A fresh documentation address for one test. */
function nextIp(): string {
  addressSeed += 1;
  return `203.0.113.${addressSeed}`;
}

let senderSeed = 0;
/** A fresh sender, in a domain of its own unless one is given. */
function nextSender(domain?: string): string {
  senderSeed += 1;
  return `s${senderSeed}@${domain ?? `d${senderSeed}.sender.example`}`;
}

function presenting(ip: string): string {
  return proxyV1Header({ sourceAddress: ip, sourcePort: 40000, destinationAddress: '192.0.2.25',
    destinationPort: 25 });
}

function message(subject: string): string {
  return `From: <a@sender.example.org>\r\nTo: <b@example.com>\r\nSubject: ${subject}\r\n\r\nHi\r\n`;
}

/** Connected, greeted (or refused: the first reply is returned), EHLO done if greeted. */
async function open(gateway: Gateway, ip: string): Promise<{ talk: SmtpTalk; code: number;
  raw: string }> {
  const talk = await SmtpTalk.connect(gateway.host, gateway.port, { proxy: presenting(ip) });
  const greeting = await talk.readReply();
  if (greeting.code === 220) {
    const ehlo = await talk.command('EHLO client.example.org');
    assert.equal(ehlo.code, 250, ehlo.raw);
  }
  return { talk, code: greeting.code, raw: greeting.raw };
}

/** One connection: for each sender, MAIL (and RCPT each recipient), then RSET. */
async function transactions(
  gateway: Gateway, ip: string, senders: string[], recipients: string[] = [],
): Promise<Array<{ mail: string; rcpt: string[] }>> {
  const { talk, code, raw } = await open(gateway, ip);
  assert.equal(code, 220, raw);
  const replies: Array<{ mail: string; rcpt: string[] }> = [];
  try {
    for (const sender of senders) {
      const mail = await talk.command(`MAIL FROM:<${sender}>`);
      const rcpt: string[] = [];
      if (mail.code === 250) {
        for (const recipient of recipients) {
          rcpt.push((await talk.command(`RCPT TO:<${recipient}>`)).raw);
        }
      }
      replies.push({ mail: mail.raw, rcpt });
      if (mail.code === 421 || talk.closed) break;
      await talk.command('RSET');
    }
  } finally {
    talk.close();
  }
  return replies;
}

const codes = (replies: Array<{ mail: string }>): number[] =>
  replies.map((reply) => Number(reply.mail.slice(0, 3)));

async function metric(gateway: Gateway, pattern: RegExp): Promise<number> {
  const text = await gateway.metrics();
  return [...text.matchAll(new RegExp(pattern.source, 'gm'))]
    .reduce((sum, match) => sum + Number(match[1]), 0);
}

async function hitLine(gateways: Gateway[], limit: string, ip: string)
  : Promise<Record<string, unknown>> {
  const find = (line: Record<string, unknown>): boolean =>
    (line['evidence'] as { limit?: string } | undefined)?.limit === limit
    && (line['client'] as { ip?: string } | undefined)?.ip === ip;
  for (let attempt = 0; attempt < 50; attempt++) {
    for (const gateway of gateways) {
      const line = gateway.decisions().find(find);
      if (line) return line;
    }
    await sleep(100);
  }
  throw new Error(`no decision line for ${limit} from ${ip}`);
}

/** The scenarios every shared store must pass; `pair` is two gateways sharing the store. */
function limitScenarios(storeName: string, pair: () => [Gateway, Gateway]): void {
  test(`${storeName}: concurrent connections per address, counted across both gateways`,
    async () => {
      const [one, two] = pair();
      const ip = nextIp();
      const held = [await open(one, ip), await open(two, ip), await open(one, ip)];
      try {
        assert.deepEqual(held.map((session) => session.code), [220, 220, 220]);
        const fourth = await open(two, ip);
        fourth.talk.close();
        assert.match(fourth.raw, /^421 4\.7\.0 Too many open connections from your address/);

        // One closes: there is room for one more, on either gateway.
        held.shift()?.talk.close();
        await sleep(300);
        const again = await open(two, ip);
        held.push(again);
        assert.equal(again.code, 220, again.raw);
      } finally {
        for (const session of held) session.talk.close();
      }
      const line = await hitLine([one, two], 'concurrent_connections_per_ip', ip);
      assert.equal(line['reason'], 'ratelimit-concurrent-connections-per-ip');
      assert.equal((line['evidence'] as { count?: number }).count, 3);
    });

  test(`${storeName}: connections per address: 4 in 2 s, the 5th gets 421, then room again`,
    async () => {
      const [one, two] = pair();
      const ip = nextIp();
      const greet = async (gateway: Gateway): Promise<string> => {
        const session = await open(gateway, ip);
        session.talk.close();
        await sleep(50);
        return session.raw;
      };
      const replies = [await greet(one), await greet(two), await greet(one), await greet(two)];
      assert.ok(replies.every((raw) => raw.startsWith('220')), replies.join(''));
      assert.match(await greet(one), /^421 4\.7\.0 .*limit 4 per 2s.*try again in \d seconds/);
      await sleep(WINDOW_MS + 200);
      assert.match(await greet(two), /^220 /);
    });

  test(`${storeName}: messages per address: 5 MAILs in 2 s over both gateways, then 451`,
    async () => {
      const [one, two] = pair();
      const ip = nextIp();
      const first = await transactions(one, ip, [nextSender(), nextSender(), nextSender()]);
      const second = await transactions(two, ip, [nextSender(), nextSender(), nextSender()]);
      assert.deepEqual([...codes(first), ...codes(second)], [250, 250, 250, 250, 250, 451]);
      assert.match(second[2]?.mail ?? '', /^451 4\.7\.0 Too many messages from your address/);

      const line = await hitLine([one, two], 'messages_per_ip', ip);
      const evidence = line['evidence'] as Record<string, unknown>;
      assert.equal(line['event'], 'message');
      assert.equal(evidence['key'], `moat:rl:{ip:${ip}}:messages_per_ip`);
      assert.equal(evidence['count'], 5);
      assert.equal(evidence['window_ms'], WINDOW_MS);
      const hits = await metric(one, /^moat_ratelimit_hits_total\{limit="messages_per_ip"\} (\d+)/)
        + await metric(two, /^moat_ratelimit_hits_total\{limit="messages_per_ip"\} (\d+)/);
      assert.ok(hits >= 1, `hits ${hits}`);

      await sleep(WINDOW_MS + 200);
      assert.deepEqual(codes(await transactions(two, ip, [nextSender()])), [250]);
    });

  test(`${storeName}: messages per sender, from three addresses: 3, then 451`, async () => {
    const [one, two] = pair();
    const sender = nextSender();
    const replies = [
      ...await transactions(one, nextIp(), [sender, sender]),
      ...await transactions(two, nextIp(), [sender, sender]),
    ];
    assert.deepEqual(codes(replies), [250, 250, 250, 451]);
    assert.match(replies[3]?.mail ?? '', /^451 4\.7\.0 Too many messages from this sender/);
    await sleep(WINDOW_MS + 200);
    assert.deepEqual(codes(await transactions(one, nextIp(), [sender])), [250]);
  });

  test(`${storeName}: messages per sender domain: 4, then 421 and closed; exempt domain`,
    async () => {
      const [one, two] = pair();
      const domain = `d${++senderSeed}.example`;
      const first = await transactions(one, nextIp(), [1, 2].map(() => nextSender(domain)));
      const second = await transactions(two, nextIp(), [1, 2, 3].map(() => nextSender(domain)));
      assert.deepEqual([...codes(first), ...codes(second)], [250, 250, 250, 250, 421]);
      const bulk = await transactions(one, nextIp(), [1, 2, 3, 4, 5]
        .map(() => nextSender('bulk.example')));
      assert.deepEqual(codes(bulk), [250, 250, 250, 250, 250]);
      await sleep(WINDOW_MS + 200);
      assert.deepEqual(codes(await transactions(two, nextIp(), [nextSender(domain)])), [250]);
    });

  test(`${storeName}: recipients per message: the 4th RCPT gets 451 4.5.3`, async () => {
    const [one] = pair();
    const recipients = ['r1@example.com', 'r2@example.com', 'r3@example.com', 'r4@example.com'];
    const [reply] = await transactions(one, nextIp(), [nextSender()], recipients);
    assert.deepEqual(reply?.rcpt.map((raw) => raw.slice(0, 9)),
      ['250 2.1.5', '250 2.1.5', '250 2.1.5', '451 4.5.3'].map((text) => text.slice(0, 9)));
  });

  test(`${storeName}: recipients per sender: 5 in 2 s over both gateways, then 451`,
    async () => {
      const [one, two] = pair();
      const sender = nextSender();
      const first = await transactions(one, nextIp(), [sender],
        ['a1@example.com', 'a2@example.com', 'a3@example.com']);
      const second = await transactions(two, nextIp(), [sender],
        ['a4@example.com', 'a5@example.com', 'a6@example.com']);
      const rcptCodes = [...first, ...second].flatMap((reply) => reply.rcpt)
        .map((raw) => Number(raw.slice(0, 3)));
      assert.deepEqual(rcptCodes, [250, 250, 250, 250, 250, 451]);
      await sleep(WINDOW_MS + 200);
      const later = await transactions(one, nextIp(), [sender], ['a7@example.com']);
      assert.match(later[0]?.rcpt[0] ?? '', /^250 /);
    });

  test(`${storeName}: messages per recipient: a bombed mailbox takes 3 in 2 s, then 451`,
    async () => {
      const [one, two] = pair();
      const mailbox = `bombed${++senderSeed}@example.com`;
      const replies = [
        ...await transactions(one, nextIp(), [nextSender(), nextSender()], [mailbox]),
        ...await transactions(two, nextIp(), [nextSender(), nextSender()], [mailbox]),
      ].flatMap((reply) => reply.rcpt);
      assert.deepEqual(replies.map((raw) => Number(raw.slice(0, 3))), [250, 250, 250, 451]);
      assert.match(replies[3] ?? '', /^451 4\.7\.0 Too many messages for this recipient/);
      await sleep(WINDOW_MS + 200);
      const later = await transactions(one, nextIp(), [nextSender()], [mailbox]);
      assert.match(later[0]?.rcpt[0] ?? '', /^250 /);
    });

  test(`${storeName}: exempt address and exempt sender are never limited`, async () => {
    const [one, two] = pair();
    const many = Array.from({ length: 7 }, () => nextSender());
    assert.deepEqual(codes(await transactions(one, '198.51.100.99', many)), many.map(() => 250));
    const trusted = Array.from({ length: 7 }, () => 'ops@trusted.example');
    assert.deepEqual(codes(await transactions(two, nextIp(), trusted)), trusted.map(() => 250));
  });
}

/** 60 attempts from 60 addresses, half on each gateway, all at once: 20 messages accepted. */
function exactScenario(storeName: string, pair: () => [Gateway, Gateway]): void {
  test(`${storeName}: two gateways, 60 concurrent attempts, limit 20 per sender: exactly 20`,
    async () => {
      const [one, two] = pair();
      const sender = nextSender('exact.example');
      const attempts = await Promise.all(Array.from({ length: 60 }, (_unused, index) =>
        sendMail({ host: one.host, port: (index % 2 ? one : two).port, from: sender,
          to: ['exact@example.com'], data: message(`exact ${index}`), proxy: presenting(nextIp()),
          timeoutMs: 30_000 })));
      const final = attempts.map((steps) => steps.find((step) => step.step === 'message'));
      const accepted = final.filter((step) => step?.reply.code === 250).length;
      const refusedAtMail = attempts.filter((steps) =>
        steps.find((step) => step.step === 'MAIL')?.reply.code === 451).length;
      assert.equal(accepted, 20);
      assert.equal(refusedAtMail, 40);
    });
}

async function startPair(ini: string, env: Record<string, string>): Promise<[Gateway, Gateway]> {
  return Promise.all([startGateway({ ini, env }), startGateway({ ini, env })]);
}

describe('rate limits on one Redis', () => {
  let downstream: Downstream;
  let redis: RedisServer;
  let short: [Gateway, Gateway];
  let exact: [Gateway, Gateway];

  before(async () => {
    downstream = await startDownstream();
    redis = await startRedis();
    const env = { MOAT_DOWNSTREAM: downstream.address, MOAT_REDIS_URL: redis.url,
      MOAT_PROXY_HOSTS: '127.0.0.1' };
    short = await startPair(LIMITS_INI, env);
    exact = await startPair(EXACT_INI, env);
  });
  after(async () => {
    await Promise.all([...(short ?? []), ...(exact ?? [])].map((gateway) => gateway.stop()));
    await redis?.stop();
    await downstream?.stop();
  });

  limitScenarios('redis', () => short);
  exactScenario('redis', () => exact);

  test('redis frozen: each check gives up at the deadline and the mail is delivered',
    async () => {
      const [one] = short;
      const before = await metric(one,
        /^moat_ratelimit_fail_open_total\{[^}]*kind="timeout"[^}]*\} (\d+)/);
      redis.pause();
      let steps;
      try {
        steps = await sendMail({ host: one.host, port: one.port, from: nextSender(),
          to: ['frozen@example.com'], data: message('frozen'), proxy: presenting(nextIp()),
          timeoutMs: 8000 });
      } finally {
        redis.resume();
      }
      const final = steps.find((step) => step.step === 'message');
      assert.equal(final?.reply.code, 250, JSON.stringify(steps));
      const afterwards = await metric(one,
        /^moat_ratelimit_fail_open_total\{[^}]*kind="timeout"[^}]*\} (\d+)/);
      assert.ok(afterwards > before, `fail-open timeouts ${before} -> ${afterwards}`);
      const warn = one.lines().find((line) => line['component'] === 'ratelimit'
        && line['level'] === 'warn' && line['kind'] === 'timeout');
      assert.ok(warn, 'no warn line for the timeout');
      await sleep(500);
    });

  test('redis killed mid-run: mail flows, errors are counted, limits resume once it is back',
    async () => {
      const [one] = short;
      const ip = nextIp();
      assert.deepEqual(codes(await transactions(one, ip, [1, 2, 3, 4, 5, 6].map(() =>
        nextSender()))), [250, 250, 250, 250, 250, 451]);

      await redis.kill();
      try {
        const during = await transactions(one, ip, [1, 2, 3].map(() => nextSender()));
        assert.deepEqual(codes(during), [250, 250, 250]);
        const errors = await metric(one,
          /^moat_ratelimit_fail_open_total\{[^}]*kind="error"[^}]*\} (\d+)/);
        assert.ok(errors >= 3, `fail-open errors ${errors}`);
      } finally {
        await redis.start();
      }

      // Redis came back empty; once the client has reconnected, the limit holds exactly.
      const expected = [250, 250, 250, 250, 250, 451];
      let replies: number[] = [];
      for (let attempt = 0; attempt < 40 && replies.join() !== expected.join(); attempt++) {
        await sleep(250);
        replies = codes(await transactions(one, nextIp(), expected.map(() => nextSender())));
      }
      assert.deepEqual(replies, expected);
    });
});

test('SIGTERM with Redis connected: the drain closes the client and the process ends by '
  + 'itself, long before the force timer', async () => {
  const downstream = await startDownstream();
  const redis = await startRedis();
  // drain_timeout 30 s puts Haraka's force timer at 35 s: only a clean end exits before it.
  const gateway = await startGateway({
    env: { MOAT_DOWNSTREAM: downstream.address, MOAT_REDIS_URL: redis.url },
    ini: '[smtp]\ndrain_timeout = 30s\n[ratelimit]\nmessages_per_ip = 100/1m\n',
  });
  try {
    const steps = await sendMail({ host: gateway.host, port: gateway.port,
      from: 'drain@sender.example', to: ['user@example.com'], data: message('drain') });
    assert.equal(steps.find((step) => step.step === 'message')?.reply.code, 250);

    gateway.daemon.child.kill('SIGTERM');
    const exit = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => resolve(null), 20_000);
      gateway.daemon.child.once('exit', (code) => {
        clearTimeout(timer);
        resolve(code);
      });
    });
    assert.equal(exit, 0, 'the gateway did not end by itself within 20 s of SIGTERM');
    assert.ok(gateway.lines().some((line) => line['msg'] === 'drained'), 'no drained line');
  } finally {
    await gateway.kill();
    await redis.stop();
    await downstream.stop();
  }
});

describe('rate limits on a three-master Redis Cluster', () => {
  let downstream: Downstream;
  let cluster: RedisCluster;
  let short: [Gateway, Gateway];
  let exact: [Gateway, Gateway];

  before(async () => {
    downstream = await startDownstream();
    cluster = await startRedisCluster();
    const env = { MOAT_DOWNSTREAM: downstream.address, MOAT_REDIS_URL: cluster.url,
      MOAT_PROXY_HOSTS: '127.0.0.1' };
    short = await startPair(`${LIMITS_INI}redis_cluster = true\n`, env);
    exact = await startPair(`${EXACT_INI}redis_cluster = true\n`, env);
  });
  after(async () => {
    await Promise.all([...(short ?? []), ...(exact ?? [])].map((gateway) => gateway.stop()));
    await cluster?.stop();
    await downstream?.stop();
  });

  limitScenarios('cluster', () => short);
  exactScenario('cluster', () => exact);
});
