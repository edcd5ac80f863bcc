/*
 * Tests for relay.ts: exact domain match only, and the replies for refused paths.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import type { DomainPolicy } from '../config/types';
import { parseEnvelopePath } from './address';
import { decideRecipient, decideSender } from './relay';

function policy(domain: string): DomainPolicy {
  return { domain, recipientMode: 'any', recipients: new Set(), overrides: new Map() };
}

const DOMAINS = new Map<string, DomainPolicy>([
  ['example.com', policy('example.com')],
  ['sales.example.net', policy('sales.example.net')],
]);

function rcpt(path: string) {
  return decideRecipient(parseEnvelopePath(path, { role: 'recipient' }), DOMAINS);
}

describe('decideRecipient', () => {
  it('accepts an accepted domain, in any letter case, and hands over its policy', () => {
    const decision = rcpt('<User@EXAMPLE.com>');
    assert.equal(decision.action, 'accept');
    assert.equal(decision.reason, 'accepted-domain');
    assert.equal(decision.code, 250);
    assert.equal(decision.policy, DOMAINS.get('example.com'));
    assert.equal(decision.evidence.domain, 'example.com');
  });

  it('accepts a listed subdomain', () => {
    assert.equal(rcpt('<a@sales.example.net>').action, 'accept');
  });

  for (const path of ['<a@other.example>', '<a@sub.example.com>', '<a@example.net>',
    '<a@xexample.com>', '<a@example.com.evil.example>']) {
    it(`denies relaying to ${path} with 550 5.7.1`, () => {
      const decision = rcpt(path);
      assert.equal(decision.action, 'reject');
      assert.equal(decision.reason, 'relay-denied');
      assert.equal(decision.code, 550);
      assert.equal(decision.enhanced, '5.7.1');
      assert.equal(decision.policy, null);
    });
  }

  for (const [path, code] of [
    ['<user%evil.example@example.com>', 'percent-hack'],
    ['<"user@evil.example"@example.com>', 'quoted-relay-chars'],
    ['<@relay.example:user@example.com>', 'source-route'],
    ['<evil.example!user@example.com>', 'bang-path'],
    ['<user@[192.0.2.1]>', 'address-literal'],
  ] as const) {
    it(`refuses the relay trick ${path} as relaying, reason ${code}`, () => {
      const decision = rcpt(path);
      assert.deepEqual([decision.action, decision.code, decision.enhanced, decision.reason],
        ['reject', 550, '5.7.1', code]);
    });
  }

  it('refuses other syntax errors with 501 5.1.3 and the address reason code', () => {
    const decision = rcpt('<us..er@example.com>');
    assert.deepEqual([decision.action, decision.code, decision.enhanced, decision.reason],
      ['reject', 501, '5.1.3', 'bad-local-part']);
    assert.equal(rcpt('<>').reason, 'null-recipient');
  });

  it('denies a domain whose map key does not match the policy (fails closed)', () => {
    const broken = new Map([['example.com', policy('example.org')]]);
    const decision = decideRecipient(
      parseEnvelopePath('<a@example.com>', { role: 'recipient' }), broken);
    assert.equal(decision.reason, 'relay-denied');
  });
});

describe('decideSender', () => {
  it('accepts the null sender and a valid sender', () => {
    const bounce = decideSender(parseEnvelopePath('<>', { role: 'sender' }));
    assert.deepEqual([bounce.action, bounce.reason, bounce.evidence.nullSender],
      ['accept', 'sender-ok', true]);
    assert.equal(decideSender(parseEnvelopePath('<a@b.example>', { role: 'sender' })).action,
      'accept');
  });

  it('refuses a bad sender with 501 5.1.7 and the address reason code', () => {
    const decision = decideSender(parseEnvelopePath('<a@[192.0.2.1]>', { role: 'sender' }));
    assert.deepEqual([decision.action, decision.code, decision.enhanced, decision.reason],
      ['reject', 501, '5.1.7', 'address-literal']);
  });
});
