/*
 * Tests for recipients.ts: each mode, each reply, the cache, coalescing and failing closed.
 *
 * The internal server is a fake verify function here (unit test); the clock is injected.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import type { DomainPolicy, RecipientMode } from '../config/types';
import { parseEnvelopePath, type ParsedAddress } from './address';
import {
  RecipientChecker, type RecipientCheckOptions, type VerifyAnswer, type VerifyRecipient,
} from './recipients';

const ACCEPT: VerifyAnswer = { result: 'accept', code: 250, enhanced: '2.1.5', text: 'OK' };
const REJECT: VerifyAnswer = { result: 'reject', code: 550, enhanced: '5.1.1', text: 'No such' };
const TEMPFAIL: VerifyAnswer = { result: 'tempfail', code: 451, enhanced: '4.3.0', text: 'Busy' };

function address(path: string): ParsedAddress {
  const result = parseEnvelopePath(path, { role: 'recipient' });
  assert.ok(result.ok, path);
  return result;
}

function policy(mode: RecipientMode, recipients: string[] = []): DomainPolicy {
  return {
    domain: 'example.com', recipientMode: mode, recipients: new Set(recipients),
    overrides: new Map(),
  };
}

/** A fake internal server: answers from a table and counts the questions. */
class FakeServer {
  asked: string[] = [];
  constructor(private readonly answers: Record<string, VerifyAnswer>) {}
  readonly verify: VerifyRecipient = async (recipient) => {
    this.asked.push(recipient);
    return this.answers[recipient] ?? REJECT;
  };
}

function checker(verify: VerifyRecipient | null, extra: Partial<RecipientCheckOptions> = {}) {
  const clock = { now: 1_000_000 };
  const recipientChecker = new RecipientChecker({
    verify, positiveTtlMs: 60_000, negativeTtlMs: 10_000, now: () => clock.now, ...extra,
  });
  return { recipientChecker, clock };
}

describe('RecipientChecker: modes any and list', () => {
  it('any accepts every local part without asking', async () => {
    const server = new FakeServer({});
    const { recipientChecker } = checker(server.verify);
    const decision = await recipientChecker.check(address('<nobody@example.com>'), policy('any'));
    assert.deepEqual([decision.action, decision.reason, decision.evidence.source],
      ['accept', 'recipient-any', 'policy']);
    assert.equal(server.asked.length, 0);
  });

  it('list accepts a listed address in any letter case, and a catch-all', async () => {
    const { recipientChecker } = checker(null);
    const listed = await recipientChecker.check(address('<Alice@example.com>'),
      policy('list', ['alice@example.com']));
    assert.deepEqual([listed.action, listed.code, listed.enhanced, listed.reason],
      ['accept', 250, '2.1.5', 'recipient-listed']);
    assert.equal(listed.evidence.source, 'list');
    const caught = await recipientChecker.check(address('<anyone@example.com>'),
      policy('list', ['@example.com']));
    assert.equal(caught.reason, 'recipient-catch-all');
  });

  it('list refuses an unlisted address with 550 5.1.1; another domain\'s catch-all does not '
    + 'count', async () => {
    const { recipientChecker } = checker(null);
    const decision = await recipientChecker.check(address('<bob@example.com>'),
      policy('list', ['alice@example.com', '@example.org', 'bob@example.org']));
    assert.deepEqual([decision.action, decision.code, decision.enhanced, decision.reason],
      ['reject', 550, '5.1.1', 'recipient-not-listed']);
  });

  it('refuses a recipient of another domain than the policy (fails closed)', async () => {
    const { recipientChecker } = checker(null);
    const decision = await recipientChecker.check(address('<a@example.org>'), policy('any'));
    assert.equal(decision.reason, 'relay-denied');
  });
});

describe('RecipientChecker: verify', () => {
  it('accepts what the server accepts and refuses what it refuses, keeping its reply as '
    + 'evidence', async () => {
    const server = new FakeServer({ 'alice@example.com': ACCEPT });
    const { recipientChecker } = checker(server.verify);
    const known = await recipientChecker.check(address('<alice@example.com>'), policy('verify'));
    assert.deepEqual([known.action, known.reason, known.evidence.source],
      ['accept', 'recipient-verified', 'verify']);
    const unknown = await recipientChecker.check(address('<bob@example.com>'), policy('verify'));
    assert.deepEqual([unknown.action, unknown.code, unknown.enhanced, unknown.reason],
      ['reject', 550, '5.1.1', 'recipient-unknown']);
    assert.equal(unknown.evidence.downstreamText, 'No such');
    assert.notEqual(unknown.text, 'No such');
  });

  it('fails closed with 450 4.4.3 on tempfail, throw, rejection, bad answer, timeout and '
    + 'no verifier', async () => {
    const failing: Array<[VerifyRecipient | null, string]> = [
      [async () => TEMPFAIL, 'verify-tempfail'],
      [() => { throw new Error('socket closed'); }, 'verify-error'],
      [async () => { throw new Error('connection refused'); }, 'verify-error'],
      [async () => ({ result: 'maybe' }) as unknown as VerifyAnswer, 'verify-error'],
      [() => new Promise<VerifyAnswer>(() => {}), 'verify-timeout'],
      [null, 'verify-unavailable'],
    ];
    for (const [verify, reason] of failing) {
      const { recipientChecker } = checker(verify, { verifyTimeoutMs: 20 });
      const decision = await recipientChecker.check(address('<a@example.com>'),
        policy('verify'));
      assert.deepEqual([decision.action, decision.code, decision.enhanced, decision.reason],
        ['tempfail', 450, '4.4.3', reason], reason);
    }
  });

  it('list+verify refuses unlisted without asking and verifies listed ones', async () => {
    const server = new FakeServer({ 'alice@example.com': ACCEPT });
    const { recipientChecker } = checker(server.verify);
    const mode = policy('list+verify', ['alice@example.com', 'gone@example.com']);
    const unlisted = await recipientChecker.check(address('<carol@example.com>'), mode);
    assert.equal(unlisted.reason, 'recipient-not-listed');
    assert.deepEqual(server.asked, []);
    const verified = await recipientChecker.check(address('<alice@example.com>'), mode);
    assert.deepEqual([verified.reason, verified.evidence.listed], ['recipient-verified',
      'address']);
    const gone = await recipientChecker.check(address('<gone@example.com>'), mode);
    assert.equal(gone.reason, 'recipient-unknown');
  });

  it('list+verify never accepts a listed address it could not verify', async () => {
    const { recipientChecker } = checker(async () => TEMPFAIL);
    const decision = await recipientChecker.check(address('<alice@example.com>'),
      policy('list+verify', ['alice@example.com']));
    assert.equal(decision.action, 'tempfail');
  });
});

describe('RecipientChecker: cache', () => {
  it('remembers an accepted address for the positive TTL', async () => {
    const server = new FakeServer({ 'alice@example.com': ACCEPT });
    const { recipientChecker, clock } = checker(server.verify);
    const alice = address('<alice@example.com>');
    await recipientChecker.check(alice, policy('verify'));
    clock.now += 59_999;
    const cached = await recipientChecker.check(alice, policy('verify'));
    assert.deepEqual([cached.action, cached.evidence.source, cached.evidence.ageMs],
      ['accept', 'cache', 59_999]);
    assert.equal(server.asked.length, 1);
    clock.now += 1;
    const fresh = await recipientChecker.check(alice, policy('verify'));
    assert.equal(fresh.evidence.source, 'verify');
    assert.equal(server.asked.length, 2);
  });

  it('remembers an unknown address for the shorter negative TTL', async () => {
    const server = new FakeServer({});
    const { recipientChecker, clock } = checker(server.verify);
    const bob = address('<bob@example.com>');
    await recipientChecker.check(bob, policy('verify'));
    clock.now += 9_999;
    const cached = await recipientChecker.check(bob, policy('verify'));
    assert.deepEqual([cached.reason, cached.evidence.source], ['recipient-unknown', 'cache']);
    clock.now += 1;
    await recipientChecker.check(bob, policy('verify'));
    assert.equal(server.asked.length, 2);
  });

  it('never caches a tempfail or an error', async () => {
    let calls = 0;
    const { recipientChecker } = checker(async () => {
      calls++;
      if (calls === 1) return TEMPFAIL;
      if (calls === 2) throw new Error('reset');
      return ACCEPT;
    });
    const alice = address('<alice@example.com>');
    assert.equal((await recipientChecker.check(alice, policy('verify'))).action, 'tempfail');
    assert.equal((await recipientChecker.check(alice, policy('verify'))).action, 'tempfail');
    assert.equal((await recipientChecker.check(alice, policy('verify'))).action, 'accept');
    assert.equal(calls, 3);
    assert.equal(recipientChecker.cacheSize, 1);
  });

  it('shares one request among concurrent checks of the same address', async () => {
    const waiting = new Map<string, (value: VerifyAnswer) => void>();
    const asked: string[] = [];
    const { recipientChecker } = checker((recipient) => {
      asked.push(recipient);
      return new Promise<VerifyAnswer>((resolve) => { waiting.set(recipient, resolve); });
    });
    const alice = address('<alice@example.com>');
    const first = recipientChecker.check(alice, policy('verify'));
    const second = recipientChecker.check(alice, policy('verify'));
    const other = recipientChecker.check(address('<bob@example.com>'), policy('verify'));
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(asked, ['alice@example.com', 'bob@example.com']);

    waiting.get('alice@example.com')?.(ACCEPT);
    waiting.get('bob@example.com')?.(REJECT);
    const [one, two, three] = await Promise.all([first, second, other]);
    assert.deepEqual([one.action, one.evidence.coalesced], ['accept', false]);
    assert.deepEqual([two.action, two.evidence.coalesced], ['accept', true]);
    assert.equal(three.action, 'reject');

    // Once settled, the next check is served from the cache, not from the old request.
    const later = await recipientChecker.check(alice, policy('verify'));
    assert.equal(later.evidence.source, 'cache');
    assert.equal(asked.length, 2);
  });

  it('evicts the least recently used address when full', async () => {
    const server = new FakeServer({
      'a@example.com': ACCEPT, 'b@example.com': ACCEPT, 'c@example.com': ACCEPT,
    });
    const { recipientChecker } = checker(server.verify, { maxCacheEntries: 2 });
    const [a, b, c] = ['a', 'b', 'c'].map((local) => address(`<${local}@example.com>`));
    for (const rcpt of [a, b, a, c]) await recipientChecker.check(rcpt!, policy('verify'));
    assert.deepEqual(server.asked, ['a@example.com', 'b@example.com', 'c@example.com']);
    assert.equal(recipientChecker.cacheSize, 2);

    // a was used after b, so b went.
    assert.equal((await recipientChecker.check(a!, policy('verify'))).evidence.source, 'cache');
    assert.equal((await recipientChecker.check(b!, policy('verify'))).evidence.source, 'verify');
  });
});
