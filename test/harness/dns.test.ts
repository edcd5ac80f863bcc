/*
 * Proves the DNS harness through node's own c-ares resolver pointed at it: A, AAAA, long TXT,
 * MX, PTR, CNAME, NXDOMAIN, NODATA, a blackholed name timing out, REFUSED and SERVFAIL, TCP
 * fallback for an answer too large for UDP, and the query log.
 */

import assert from 'node:assert/strict';
import { Resolver } from 'node:dns/promises';
import { after, before, beforeEach, describe, it } from 'node:test';

import { ptrName, startDns, type DnsServer } from './dns';

describe('dns harness', () => {
  let dns: DnsServer;
  let resolver: Resolver;

  before(async () => {
    dns = await startDns();
    resolver = new Resolver({ timeout: 300, tries: 1 });
    resolver.setServers([dns.address]);
  });
  after(async () => {
    await dns?.stop();
  });
  beforeEach(() => {
    dns.clearRecords().heal().resetQueryLog();
  });

  it('answers A and AAAA with their TTL', async () => {
    dns.add('mail.example.org', 'A', '192.0.2.10', 120);
    dns.add('mail.example.org', 'AAAA', '2001:db8::10');
    assert.deepEqual(await resolver.resolve4('MAIL.example.org', { ttl: true }), [
      { address: '192.0.2.10', ttl: 120 },
    ]);
    assert.deepEqual(await resolver.resolve6('mail.example.org'), ['2001:db8::10']);
  });

  it('splits a long TXT into 255-byte strings that join back to the original', async () => {
    const key = `v=DKIM1; k=rsa; p=${'A'.repeat(600)}`;
    dns.add('sel._domainkey.example.org', 'TXT', key);
    const [record] = await resolver.resolveTxt('sel._domainkey.example.org');
    assert.deepEqual(record?.map((part) => part.length), [255, 255, 108]);
    assert.equal(record?.join(''), key);
  });

  it('answers MX, PTR and follows a CNAME', async () => {
    dns.add('example.org', 'MX', { preference: 10, exchange: 'mx.example.org' });
    dns.add(ptrName('192.0.2.10'), 'PTR', 'mail.example.org');
    dns.add(ptrName('2001:db8::1'), 'PTR', 'v6.example.org');
    dns.add('www.example.org', 'CNAME', 'host.example.org');
    dns.add('host.example.org', 'A', '192.0.2.20');
    const mx = await resolver.resolveMx('example.org');
    assert.deepEqual(mx.map(({ priority, exchange }) => ({ priority, exchange })), [
      { priority: 10, exchange: 'mx.example.org' },
    ]);
    assert.deepEqual(await resolver.reverse('192.0.2.10'), ['mail.example.org']);
    assert.deepEqual(await resolver.reverse('2001:db8::1'), ['v6.example.org']);
    assert.deepEqual(await resolver.resolve4('www.example.org'), ['192.0.2.20']);
  });

  it('answers NXDOMAIN for unknown names, NODATA for known names without the type', async () => {
    dns.add('a.example.org', 'A', '192.0.2.1');
    await assert.rejects(resolver.resolve4('nothing.example.org'), { code: 'ENOTFOUND' });
    await assert.rejects(resolver.resolveTxt('a.example.org'), { code: 'ENODATA' });
    // The parent of a record exists too (an empty non-terminal), so it is NODATA as well.
    await assert.rejects(resolver.resolve4('example.org'), { code: 'ENODATA' });
    dns.remove('a.example.org', 'A');
    await assert.rejects(resolver.resolve4('a.example.org'), { code: 'ENOTFOUND' });
  });

  it('never answers a blackholed suffix, so the client times out', async () => {
    dns.add('2.0.0.127.bl.example.net', 'A', '127.0.0.2').blackhole('bl.example.net');
    await assert.rejects(resolver.resolve4('2.0.0.127.bl.example.net'), { code: 'ETIMEOUT' });
    assert.equal(dns.queryCount('2.0.0.127.bl.example.net', 'A'), 1);
    dns.heal('bl.example.net');
    assert.deepEqual(await resolver.resolve4('2.0.0.127.bl.example.net'), ['127.0.0.2']);
  });

  it('answers REFUSED or SERVFAIL for a refused suffix', async () => {
    dns.add('x.refused.example', 'A', '192.0.2.1').refuse('refused.example');
    await assert.rejects(resolver.resolve4('x.refused.example'), { code: 'EREFUSED' });
    dns.refuse('refused.example', 'SERVFAIL');
    await assert.rejects(resolver.resolve4('x.refused.example'), { code: 'ESERVFAIL' });
  });

  it('truncates an answer too large for UDP and serves it over TCP', async () => {
    for (let i = 0; i < 12; i++) dns.add('big.example.org', 'TXT', `${i}:${'x'.repeat(200)}`);
    const records = await resolver.resolveTxt('big.example.org');
    assert.equal(records.length, 12);
    assert.equal(dns.queryCount('big.example.org', 'TXT'), 2);
    assert.deepEqual(dns.queries.map((query) => query.transport), ['udp', 'tcp']);
  });

  it('counts every query it receives', async () => {
    dns.add('counted.example.org', 'A', '192.0.2.5');
    await resolver.resolve4('counted.example.org');
    await resolver.resolve4('counted.example.org');
    await resolver.resolveTxt('counted.example.org').catch(() => []);
    assert.equal(dns.queryCount('counted.example.org', 'A'), 2);
    assert.equal(dns.queryCount('counted.example.org'), 3);
  });
});
