/*
 * The limit syntax: what an operator may write in [ratelimit], and the precise complaint for
 * what they may not.
 */

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { ConfigError } from '../config/errors';
import { loadConfig } from '../config/load';
import { ValueProblem } from '../config/values';
import { describeWindow, parseExemptions, parseLimit } from './limits';

const problem = (pattern: RegExp) => (error: unknown): boolean =>
  error instanceof ValueProblem && pattern.test(error.expected);

describe('parseLimit', () => {
  test('MAX/WINDOW with the default answer, and with 421, exemptions in any order', () => {
    const plain = parseLimit('messages_per_sender', '100/1h');
    assert.equal(plain?.maximum, 100);
    assert.equal(plain?.windowMs, 3_600_000);
    assert.equal(plain?.answer, 451);
    assert.deepEqual(plain?.exempt, { networks: [], senders: [] });

    const full = parseLimit('messages_per_ip', '5/30s exempt=192.0.2.0/24,@Partner.example 421');
    assert.equal(full?.answer, 421);
    assert.equal(full?.windowMs, 30_000);
    assert.deepEqual(full?.exempt, { networks: ['192.0.2.0/24'], senders: ['@partner.example'] });
  });

  test('empty is off; the limits without a window take MAX alone', () => {
    assert.equal(parseLimit('messages_per_ip', '  '), null);
    const concurrent = parseLimit('concurrent_connections_per_ip', '20');
    assert.equal(concurrent?.windowMs, null);
    assert.equal(concurrent?.answer, 421);
    assert.equal(parseLimit('recipients_per_message', '50 451')?.maximum, 50);
  });

  test('each mistake is named', () => {
    assert.throws(() => parseLimit('messages_per_ip', '100'), problem(/window is missing/));
    assert.throws(() => parseLimit('messages_per_ip', '100/1x'), problem(/the window in/));
    assert.throws(() => parseLimit('messages_per_ip', '0/1h'), problem(/the maximum in .*1 to/));
    assert.throws(() => parseLimit('messages_per_ip', '10/1h 550'),
      problem(/421 or 451, not "550"/));
    assert.throws(() => parseLimit('messages_per_ip', '10/1h 421 451'),
      problem(/answer given twice/));
    assert.throws(() => parseLimit('concurrent_connections_per_ip', '10/1h'), problem(/no window/));
    assert.throws(() => parseLimit('connections_per_ip', '10/1m 451'),
      problem(/only be answered 421/));
    assert.throws(() => parseLimit('messages_per_ip', '10/1h exempt=nothere'),
      problem(/not "nothere"/));
  });
});

describe('parseExemptions', () => {
  test('addresses, networks, senders and @domains', () => {
    assert.deepEqual(parseExemptions('2001:db8::/32, 198.51.100.7,Alerts@Example.org'), {
      networks: ['2001:db8::/32', '198.51.100.7'], senders: ['alerts@example.org'] });
    assert.throws(() => parseExemptions('192.0.2.0/40'), problem(/the network "192.0.2.0\/40"/));
    assert.throws(() => parseExemptions('alice@'), problem(/sender address or @domain/));
  });
});

test('describeWindow writes windows as an operator would', () => {
  assert.equal(describeWindow(3_600_000), '1h');
  assert.equal(describeWindow(120_000), '2m');
  assert.equal(describeWindow(90_000), '90s');
  assert.equal(describeWindow(1500), '1500ms');
});

describe('[ratelimit] in moat.ini', () => {
  const load = (ini: string) => {
    const root = mkdtempSync(join(tmpdir(), 'moat-ratelimit-config-'));
    try {
      writeFileSync(join(root, 'moat.ini'), ini);
      return loadConfig({ root, configDir: '.', env: {} });
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  };

  test('off unless configured, except concurrent connections (20)', () => {
    const config = load('').rateLimit;
    assert.deepEqual(config.limits.map((spec) => [spec.name, spec.maximum]),
      [['concurrent_connections_per_ip', 20]]);
    assert.equal(config.redisTimeoutMs, 50);
  });

  test('a bad limit stops start-up naming the file, line, key and the mistake', () => {
    const ini = '[ratelimit]\nmessages_per_ip = 10/1h\nmessages_per_sender = 5/1h 550\n';
    assert.throws(() => load(ini),
      (error: unknown) => error instanceof ConfigError
        && /moat\.ini:3/.test(error.message) && /ratelimit\.messages_per_sender/.test(error.message)
        && /421 or 451, not "550"/.test(error.message));
  });
});
