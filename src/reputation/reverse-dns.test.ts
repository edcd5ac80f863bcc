/*
 * The client's forward-confirmed name on its own: PTR names under in-addr.arpa and ip6.arpa,
 * confirmation by A or AAAA, what counts as no name, and the deadline. The lookups go to the
 * real test DNS server through Moat's resolver.
 */

import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';

import { useTestDns, type DnsServer } from '../../test/harness/dns';
import { lookupReverseName, MAX_NAMES, ptrName, type ReverseLookup } from './reverse-dns';

describe('reverse DNS (FCrDNS)', () => {
  const testDns = useTestDns();
  let dns: DnsServer;
  const lookup: ReverseLookup = testDns.lookup;
  beforeEach(() => {
    dns = testDns.dns;
  });

  it('builds the PTR owner names for IPv4 and IPv6', () => {
    assert.equal(ptrName('192.0.2.25'), '25.2.0.192.in-addr.arpa');
    assert.equal(ptrName('2001:db8::25'),
      '5.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa');
  });

  it('confirms a PTR name whose A record points back', async () => {
    dns.add('25.2.0.192.in-addr.arpa', 'PTR', 'MX1.Sender.example.')
      .add('mx1.sender.example', 'A', '192.0.2.25');
    const result = await lookupReverseName('192.0.2.25', lookup, 1000);
    assert.equal(result.outcome, 'confirmed');
    assert.equal(result.name, 'mx1.sender.example');
    assert.deepEqual(result.ptr, ['mx1.sender.example']);
  });

  it('does not confirm a PTR name whose A records point elsewhere, or nowhere', async () => {
    dns.add('26.2.0.192.in-addr.arpa', 'PTR', 'bank.example')
      .add('bank.example', 'A', '198.51.100.1')
      .add('27.2.0.192.in-addr.arpa', 'PTR', 'nothing-here.example');
    const elsewhere = await lookupReverseName('192.0.2.26', lookup, 1000);
    assert.equal(elsewhere.outcome, 'unconfirmed');
    assert.equal(elsewhere.name, null);
    assert.deepEqual(elsewhere.ptr, ['bank.example']);
    const nowhere = await lookupReverseName('192.0.2.27', lookup, 1000);
    assert.equal(nowhere.outcome, 'unconfirmed');
  });

  it('takes the first PTR name that confirms, and looks at no more than MAX_NAMES', async () => {
    const owner = '28.2.0.192.in-addr.arpa';
    for (let i = 1; i <= MAX_NAMES + 1; i++) dns.add(owner, 'PTR', `n${i}.example`);
    dns.add('n2.example', 'A', '192.0.2.28').add(`n${MAX_NAMES + 1}.example`, 'A', '192.0.2.28');
    const result = await lookupReverseName('192.0.2.28', lookup, 1000);
    assert.equal(result.outcome, 'confirmed');
    assert.equal(result.name, 'n2.example');
    assert.equal(result.ptr.length, MAX_NAMES);
    assert.equal(dns.queryCount(`n${MAX_NAMES + 1}.example`), 0);
  });

  it('confirms IPv6 by AAAA, whatever the address is written like', async () => {
    dns.add(ptrName('2001:db8::25'), 'PTR', 'v6.sender.example')
      .add('v6.sender.example', 'AAAA', '2001:0db8:0:0:0:0:0:25');
    const result = await lookupReverseName('2001:db8::25', lookup, 1000);
    assert.equal(result.outcome, 'confirmed');
    assert.equal(result.name, 'v6.sender.example');
    assert.equal(dns.queryCount('v6.sender.example', 'A'), 0);
  });

  it('says none for NXDOMAIN and for PTR answers that are not host names', async () => {
    assert.equal((await lookupReverseName('192.0.2.29', lookup, 1000)).outcome, 'none');
    dns.add('30.2.0.192.in-addr.arpa', 'PTR', 'evil name;with spaces');
    const junk = await lookupReverseName('192.0.2.30', lookup, 1000);
    assert.equal(junk.outcome, 'none');
    assert.deepEqual(junk.ptr, []);
  });

  it('gives up at the deadline, and reports a server error as an error', async () => {
    dns.add('31.2.0.192.in-addr.arpa', 'PTR', 'slow.example').blackhole('slow.example');
    // The confirmation never answers: only the deadline (not the resolver's 1 s) ends it.
    const slow = await lookupReverseName('192.0.2.31', lookup, 150);
    assert.equal(slow.outcome, 'timeout');
    assert.match(slow.detail ?? '', /within 150 ms/);

    dns.refuse('32.2.0.192.in-addr.arpa', 'SERVFAIL');
    const failed = await lookupReverseName('192.0.2.32', lookup, 1000);
    assert.equal(failed.outcome, 'error');
    assert.match(failed.detail ?? '', /ESERVFAIL/);
  });

  it('refuses to look up something that is not an address', async () => {
    const result = await lookupReverseName('mail.example', lookup, 1000);
    assert.equal(result.outcome, 'error');
    assert.equal(dns.queryCount(), 0);
  });
});
