/*
 * The blocklist check on its own: query names (IPv4, IPv6 nibbles, IPv4-mapped), who is
 * skipped, how answers are judged, the score, and the shared deadline. The lookups go to the
 * real test DNS server through Moat's resolver; only the deadline test uses a lookup that
 * never answers.
 */

import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';

import { useTestDns, type DnsServer } from '../../test/harness/dns';
import { networkList, type DnsListSettings } from '../config/sections/reputation';
import { checkDnsLists, plainClientIp, reversedAddress, type AddressLookup } from './dnsbl';
import { parseCodes, parseZones } from './zones';

const INTERNAL = networkList(['127.0.0.0/8', '10.0.0.0/8', 'fc00::/7']);

function settings(zones: string, overrides: Partial<DnsListSettings> = {}): DnsListSettings {
  return {
    zones: parseZones(zones), threshold: 1, refuseAt: 'connect', deadlineMs: 300,
    errorCodes: parseCodes('127.255.255.0/24'), allowNetworks: [], allowList: networkList([]),
    ...overrides,
  };
}

describe('dnsbl check', () => {
  const testDns = useTestDns();
  let dns: DnsServer;
  const lookup: AddressLookup = testDns.lookup;
  beforeEach(() => {
    dns = testDns.dns;
  });

  it('builds query names: reversed octets, reversed IPv6 nibbles, mapped IPv4', () => {
    assert.equal(reversedAddress('203.0.113.7'), '7.113.0.203');
    assert.equal(reversedAddress('2001:db8::5'),
      '5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2');
    assert.equal(reversedAddress('2001:DB8:0:0:1::'),
      '0.0.0.0.0.0.0.0.0.0.0.0.1.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2');
    assert.equal(reversedAddress('::ffff:192.0.2.1').split('.').length, 32);
    assert.equal(plainClientIp('::ffff:192.0.2.1'), '192.0.2.1');
    assert.throws(() => reversedAddress('mail.example.org'), TypeError);
  });

  it('lists, sums weights, and names the block zones that listed', async () => {
    dns.add('7.113.0.203.a.example', 'A', '127.0.0.2')
      .add('7.113.0.203.b.example', 'A', '127.0.0.3')
      .add('7.113.0.203.c.example', 'A', '127.0.0.2');
    const verdict = await checkDnsLists('203.0.113.7',
      settings('block:a.example:0.5, block:b.example:0.5, allow:c.example:-0.25, block:d.example:1',
        { threshold: 0.75 }), INTERNAL, lookup);
    assert.equal(verdict.score, 0.75);
    assert.equal(verdict.refused, true);
    assert.deepEqual(verdict.listedBy, ['a.example', 'b.example']);
    assert.deepEqual(verdict.zones.map((zone) => zone.outcome),
      ['listed', 'listed', 'listed', 'clean']);
  });

  it('treats error codes and answers outside 127/8 as errors, and uncounted codes as clean',
    async () => {
      dns.add('7.113.0.203.err.example', 'A', '127.255.255.252')
        .add('7.113.0.203.hijack.example', 'A', '192.0.2.80')
        .add('7.113.0.203.narrow.example', 'A', '127.0.0.50');
      const verdict = await checkDnsLists('203.0.113.7',
        settings('block:err.example:1, block:hijack.example:1, block:narrow.example:1:127.0.0.2'),
        INTERNAL, lookup);
      assert.equal(verdict.refused, false);
      assert.deepEqual(verdict.zones.map((zone) => [zone.outcome, zone.weight]),
        [['error', 0], ['error', 0], ['clean', 0]]);
    });

  it('skips a zone that answers REFUSED, and one silent past the deadline', async () => {
    dns.refuse('refusing.example').blackhole('dead.example')
      .add('7.113.0.203.live.example', 'A', '127.0.0.2');
    const verdict = await checkDnsLists('203.0.113.7',
      settings('block:refusing.example:1, block:dead.example:1, block:live.example:1'),
      INTERNAL, lookup);
    assert.deepEqual(verdict.zones.map((zone) => zone.outcome), ['error', 'timeout', 'listed']);
    assert.equal(verdict.refused, true);
  });

  it('answers within the deadline even when a lookup never settles', async () => {
    const never: AddressLookup = () => new Promise(() => undefined);
    const started = Date.now();
    const verdict = await checkDnsLists('203.0.113.7', settings('block:a.example:1',
      { deadlineMs: 100 }), INTERNAL, never);
    assert.equal(verdict.zones[0]?.outcome, 'timeout');
    assert.ok(Date.now() - started < 5000);
  });

  it('skips internal networks and the local allowlist without asking', async () => {
    const zones = 'block:a.example:1';
    assert.equal((await checkDnsLists('10.0.0.5', settings(zones), INTERNAL, lookup)).skipped,
      'internal-network');
    assert.equal((await checkDnsLists('fd00::1', settings(zones), INTERNAL, lookup)).skipped,
      'internal-network');
    const allowList = networkList(['198.51.100.0/24']);
    const allowed = await checkDnsLists('198.51.100.9', settings(zones, { allowList }), INTERNAL,
      lookup);
    assert.equal(allowed.skipped, 'local-allowlist');
    assert.equal(allowed.refused, false);
    assert.equal(dns.queries.length, 0);
  });
});
