/*
 * The limiter on the in-process store (and, for grouping and failures, on stores that group
 * like a cluster or fail like a dead Redis): which limits an event touches, their keys,
 * exemptions, the reply, the rollback when one group refuses, and fail-open.
 */

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import type { RateLimitConfig } from '../config/sections/ratelimit';
import { parseExemptions, parseLimit, type LimitName } from './limits';
import { keyFor, keyPart, RateLimiter } from './limiter';
import { MemoryCounterStore } from './memory-store';
import { CounterStoreError, type CounterCheck, type TakeResult } from './store';

function config(limits: Partial<Record<LimitName, string>>, exempt = ''): RateLimitConfig {
  return {
    limits: Object.entries(limits).map(([name, raw]) => {
      const spec = parseLimit(name as LimitName, raw ?? '');
      assert.ok(spec);
      return spec;
    }),
    exempt: parseExemptions(exempt),
    redisTimeoutMs: 50, redisCluster: false, connectionLeaseMs: 60_000,
  };
}

let sequence = 0;
const member = (): string => `m${++sequence}`;
const client = '203.0.113.7';

/** A memory store that groups by hash tag, like a cluster. */
class TaggedMemoryStore extends MemoryCounterStore {
  override groupOf(key: string): string {
    return /\{([^}]+)\}/.exec(key)?.[1] ?? key;
  }
}

describe('rate limiter', () => {
  test('messages per sender: the third is refused with limit, key, count and a retry hint',
    async () => {
      const limiter = new RateLimiter(config({ messages_per_sender: '2/1h' }),
        new MemoryCounterStore());
      const send = () => limiter.check('mail',
        { clientIp: client, sender: 'alice@sender.example.org', member: member() });
      assert.equal((await send()).hit, null);
      assert.equal((await send()).hit, null);
      const hit = (await send()).hit;
      assert.equal(hit?.limit, 'messages_per_sender');
      assert.equal(hit?.key, 'moat:rl:{dom:sender.example.org}:messages_per_sender:'
        + 'alice@sender.example.org');
      assert.equal(hit?.count, 2);
      assert.equal(hit?.answer, 451);
      assert.match(hit?.text ?? '',
        /^Too many messages from this sender \(limit 2 per 1h\), try again in \d+ seconds$/);
    });

  test('keys: one hash tag per subject; the sender keys share the domain tag', () => {
    const spec = (name: LimitName, raw: string) => parseLimit(name, raw) ?? assert.fail();
    const subjects = { clientIp: '2001:db8::1', sender: 'a@x.example', recipient: 'b@example.com',
      member: 'm' };
    assert.equal(keyFor(spec('messages_per_ip', '1/1h'), subjects),
      'moat:rl:{ip:2001:db8::1}:messages_per_ip');
    assert.equal(keyFor(spec('messages_per_sender_domain', '1/1h'), subjects),
      'moat:rl:{dom:x.example}:messages_per_sender_domain');
    assert.equal(keyFor(spec('messages_per_recipient', '1/1h'), subjects),
      'moat:rl:{rcpt:b@example.com}:messages_per_recipient');
    assert.equal(keyFor(spec('messages_per_sender', '1/1h'), { ...subjects, sender: '' }), null);
    assert.equal(keyPart('Evil}{x% y\r'), 'evil%7d%7bx%25%20y%0d');
  });

  test('exempt networks and senders skip the limit; others still count', async () => {
    const limiter = new RateLimiter(
      config({ messages_per_ip: '1/1h exempt=198.51.100.0/24' }, '@partner.example'),
      new MemoryCounterStore());
    const check = (clientIp: string, sender: string) =>
      limiter.check('mail', { clientIp, sender, member: member() });
    for (let index = 0; index < 3; index++) {
      assert.deepEqual((await check('198.51.100.9', 'x@y.example')).exempted, ['messages_per_ip']);
      assert.equal((await check('192.0.2.9', 'ops@partner.example')).hit, null);
    }
    assert.equal((await check('192.0.2.9', 'x@y.example')).hit, null);
    assert.equal((await check('192.0.2.9', 'x@y.example')).hit?.limit, 'messages_per_ip');
  });

  test('recipients per message counts the transaction, without the store', async () => {
    const limiter = new RateLimiter(config({ recipients_per_message: '2' }),
      new MemoryCounterStore());
    const rcpt = (recipientsSoFar: number) => limiter.check('rcpt', { clientIp: client,
      sender: 'a@x.example', recipient: 'b@example.com', recipientsSoFar, member: member() });
    assert.equal((await rcpt(1)).hit, null);
    assert.equal((await rcpt(2)).hit?.limit, 'recipients_per_message');
  });

  test('cluster groups: a refusal in one group gives back what the other group took',
    async () => {
      const store = new TaggedMemoryStore();
      const limiter = new RateLimiter(
        config({ messages_per_ip: '2/1h', messages_per_sender: '1/1h' }), store);
      const send = (sender: string) => limiter.check('mail',
        { clientIp: client, sender, member: member() });
      assert.equal((await send('a@x.example')).hit, null);
      assert.equal((await send('a@x.example')).hit?.limit, 'messages_per_sender');
      // The refused message did not stay counted against the address: one more fits.
      assert.equal((await send('b@x.example')).hit, null);
      assert.equal((await send('c@x.example')).hit?.limit, 'messages_per_ip');
    });

  test('a failing store lets the event through and says which limits failed open',
    async () => {
      class DeadStore extends MemoryCounterStore {
        override async take(checks: CounterCheck[]): Promise<TakeResult> {
          throw new CounterStoreError('redis', 'take', checks.map((check) => check.key), 'down');
        }
      }
      const limiter = new RateLimiter(config({ concurrent_connections_per_ip: '1',
        connections_per_ip: '1/1m' }), new DeadStore());
      const outcome = await limiter.check('connect', { clientIp: client, member: 'conn' });
      assert.equal(outcome.hit, null);
      assert.deepEqual(outcome.failures.map((failure) => failure.limits),
        [['concurrent_connections_per_ip', 'connections_per_ip']]);
      // The connection is still tracked, so its entry is released (or renewed) later.
      assert.equal(outcome.lease?.member, 'conn');
    });
});
