/*
 * The resolver against the real test DNS server on loopback: result shapes as Node's
 * dns.promises gives them, NXDOMAIN/NODATA/timeout/SERVFAIL/REFUSED codes, failover to a
 * second server, TCP after truncation, and the cache (TTLs, negative entries, clamps, size,
 * coalescing) driven by an injected clock.
 */

import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';

import { freePort } from '../../test/harness/ports';
import { ptrName, startDns, type DnsServer } from '../../test/harness/dns';
import { Resolver, systemServers, type ResolverOptions } from './resolver';
import { DnsError, isNoRecord } from './errors';
import { negativeTtl } from './records';

describe('resolver', () => {
  let dns: DnsServer;
  let clock: number;

  const make = (overrides: Partial<ResolverOptions> = {}): Resolver => new Resolver({
    servers: [{ host: dns.host, port: dns.port }],
    timeoutMs: 300, attempts: 1, cacheSize: 100,
    minTtlMs: 0, maxTtlMs: 3_600_000, negativeTtlMs: 60_000,
    now: () => clock,
    ...overrides,
  });

  before(async () => {
    dns = await startDns();
  });
  after(async () => {
    await dns?.stop();
  });
  beforeEach(() => {
    dns.clearRecords().heal().resetQueryLog();
    clock = 1_000_000;
  });

  it('gives the shapes of dns.promises.resolve for every supported type', async () => {
    const key = `v=DKIM1; k=rsa; p=${'A'.repeat(300)}`;
    dns.add('mail.example.org', 'A', '192.0.2.10')
      .add('mail.example.org', 'AAAA', '2001:db8::10')
      .add('sel._domainkey.example.org', 'TXT', key)
      .add('example.org', 'MX', { preference: 10, exchange: 'mx.example.org' })
      .add(ptrName('192.0.2.10'), 'PTR', 'mail.example.org')
      .add('www.example.org', 'CNAME', 'mail.example.org')
      .add('example.org', 'NS', 'ns1.example.org');
    const resolver = make();

    assert.deepEqual(await resolver.resolve('MAIL.example.org.', 'A'), ['192.0.2.10']);
    assert.deepEqual(await resolver.resolve('mail.example.org', 'AAAA'), ['2001:db8::10']);
    const txt = await resolver.resolve('sel._domainkey.example.org', 'TXT');
    assert.deepEqual(txt.map((record) => record.map((part) => part.length)), [[255, 63]]);
    assert.equal(txt[0]?.join(''), key);
    assert.deepEqual(await resolver.resolve('example.org', 'MX'),
      [{ exchange: 'mx.example.org', priority: 10 }]);
    assert.deepEqual(await resolver.resolve(ptrName('192.0.2.10'), 'PTR'), ['mail.example.org']);
    assert.deepEqual(await resolver.resolve('www.example.org', 'CNAME'), ['mail.example.org']);
    assert.deepEqual(await resolver.resolve('www.example.org', 'A'), ['192.0.2.10']);
    assert.deepEqual(await resolver.resolve('example.org', 'NS'), ['ns1.example.org']);
  });

  it('answers NXDOMAIN with ENOTFOUND and NODATA with ENODATA, as mailauth expects', async () => {
    dns.add('example.org', 'A', '192.0.2.1');
    const resolver = make();
    await assert.rejects(resolver.lookup('nothing.example.org', 'TXT'),
      { code: 'ENOTFOUND', hostname: 'nothing.example.org', syscall: 'queryTxt' });
    await assert.rejects(resolver.lookup('example.org', 'TXT'), { code: 'ENODATA' });
    await assert.rejects(resolver.lookup('example.org', 'SRV'), { code: 'ENOTIMP' });
    await assert.rejects(resolver.lookup(`${'a'.repeat(64)}.example.org`, 'A'),
      { code: 'ENOTFOUND' });
  });

  it('gives ETIMEOUT after trying every server each round, ESERVFAIL and EREFUSED', async () => {
    dns.blackhole('dead.example').refuse('refusing.example').refuse('failing.example', 'SERVFAIL');
    const resolver = make({ timeoutMs: 100, attempts: 2 });
    await assert.rejects(resolver.resolve('a.dead.example', 'A'), { code: 'ETIMEOUT' });
    assert.equal(dns.queryCount('a.dead.example'), 2);
    await assert.rejects(resolver.resolve('refusing.example', 'A'), { code: 'EREFUSED' });
    await assert.rejects(resolver.resolve('failing.example', 'A'), { code: 'ESERVFAIL' });

    // Failures are not cached: the next lookup asks again.
    await assert.rejects(resolver.resolve('failing.example', 'A'), { code: 'ESERVFAIL' });
    assert.equal(dns.queryCount('failing.example'), 4);
  });

  it('fails over from a server that refuses connections to the next one', async () => {
    dns.add('example.org', 'A', '192.0.2.1');
    const deadPort = await freePort();
    const resolver = make({
      servers: [{ host: '127.0.0.1', port: deadPort }, { host: dns.host, port: dns.port }],
    });
    assert.deepEqual(await resolver.resolve('example.org', 'A'), ['192.0.2.1']);

    const alone = make({ servers: [{ host: '127.0.0.1', port: deadPort }] });
    await assert.rejects(alone.resolve('example.org', 'A'), { code: 'ECONNREFUSED' });
  });

  it('retries over TCP when the UDP answer is truncated', async () => {
    for (let i = 0; i < 8; i++) dns.add('big.example.org', 'TXT', `${i}${'x'.repeat(250)}`);
    const records = await make().resolve('big.example.org', 'TXT');
    assert.equal(records.length, 8);
    assert.deepEqual(dns.queries.map((query) => query.transport), ['udp', 'tcp']);
  });

  it('serves answers from the cache until their TTL runs out', async () => {
    dns.add('example.org', 'A', '192.0.2.1', 30);
    const resolver = make();
    await resolver.resolve('example.org', 'A');
    clock += 29_000;
    assert.deepEqual(await resolver.resolve('example.org', 'A'), ['192.0.2.1']);
    assert.equal(dns.queryCount('example.org'), 1);

    clock += 1_000;
    await resolver.resolve('example.org', 'A');
    assert.equal(dns.queryCount('example.org'), 2);
  });

  it('caches NXDOMAIN and NODATA for the negative TTL', async () => {
    dns.add('example.org', 'A', '192.0.2.1');
    const resolver = make({ negativeTtlMs: 10_000 });
    await assert.rejects(resolver.resolve('gone.example.org', 'A'), { code: 'ENOTFOUND' });
    await assert.rejects(resolver.resolve('example.org', 'MX'), { code: 'ENODATA' });
    dns.add('gone.example.org', 'A', '192.0.2.2').add('example.org', 'MX',
      { preference: 5, exchange: 'mx.example.org' });

    clock += 9_999;
    await assert.rejects(resolver.resolve('gone.example.org', 'A'), { code: 'ENOTFOUND' });
    await assert.rejects(resolver.resolve('example.org', 'MX'), { code: 'ENODATA' });
    assert.equal(dns.queries.length, 2);

    clock += 1;
    assert.deepEqual(await resolver.resolve('gone.example.org', 'A'), ['192.0.2.2']);
  });

  it('clamps TTLs to the configured floor and ceiling', async () => {
    dns.add('zero.example.org', 'A', '192.0.2.1', 0).add('long.example.org', 'A', '192.0.2.2',
      86_400);
    const resolver = make({ minTtlMs: 5_000, maxTtlMs: 60_000 });
    await resolver.resolve('zero.example.org', 'A');
    await resolver.resolve('long.example.org', 'A');
    clock += 4_000;
    await resolver.resolve('zero.example.org', 'A');
    assert.equal(dns.queryCount('zero.example.org'), 1);
    clock += 56_000;
    await resolver.resolve('long.example.org', 'A');
    assert.equal(dns.queryCount('long.example.org'), 2);
  });

  it('keeps at most cacheSize entries, dropping the least recently used', async () => {
    for (const name of ['a', 'b', 'c']) dns.add(`${name}.example.org`, 'A', '192.0.2.1');
    const resolver = make({ cacheSize: 2 });
    await resolver.resolve('a.example.org', 'A');
    await resolver.resolve('b.example.org', 'A');
    await resolver.resolve('a.example.org', 'A');
    await resolver.resolve('c.example.org', 'A');
    await resolver.resolve('a.example.org', 'A');
    assert.equal(dns.queryCount('a.example.org'), 1);
    await resolver.resolve('b.example.org', 'A');
    assert.equal(dns.queryCount('b.example.org'), 2);
  });

  it('sends one query for simultaneous lookups of the same name', async () => {
    dns.add('example.org', 'TXT', 'v=spf1 -all').delay('example.org', 50);
    const resolver = make();
    const answers = await Promise.all([1, 2, 3].map(() => resolver.resolve('example.org', 'TXT')));
    assert.deepEqual(answers, [[['v=spf1 -all']], [['v=spf1 -all']], [['v=spf1 -all']]]);
    assert.equal(dns.queryCount('example.org'), 1);
  });

  it('hands out copies, so a caller cannot change the cached answer', async () => {
    dns.add('example.org', 'A', '192.0.2.1');
    const resolver = make();
    const first = await resolver.resolve('example.org', 'A');
    first.push('198.51.100.1');
    assert.deepEqual(await resolver.resolve('example.org', 'A'), ['192.0.2.1']);
  });

  it('takes the negative TTL from an SOA: the smaller of its TTL and MINIMUM', () => {
    assert.equal(negativeTtl([{ name: 'example.org', type: 'SOA', ttl: 900,
      data: { minimum: 300 } }]), 300);
    assert.equal(negativeTtl([{ name: 'example.org', type: 'SOA', ttl: 60,
      data: { minimum: 300 } }]), 60);
    assert.equal(negativeTtl([]), undefined);
  });

  it('reads nameservers from resolv.conf, defaulting to loopback', () => {
    assert.deepEqual(systemServers('/nonexistent/resolv.conf'), [{ host: '127.0.0.1', port: 53 }]);
  });
});

describe('DnsError', () => {
  it('carries no stack for a "no such record" answer, and a stack for a failure', () => {
    const limit = Error.stackTraceLimit;
    const missing = new DnsError('ENOTFOUND', 'nowhere.example', 'A');
    const empty = new DnsError('ENODATA', 'example.com', 'TXT');
    const failed = new DnsError('ETIMEOUT', 'slow.example', 'A');
    assert.equal(missing.stack, 'DnsError: queryA ENOTFOUND nowhere.example');
    assert.doesNotMatch(empty.stack ?? '', /\n\s+at /);
    assert.match(failed.stack ?? '', /\n\s+at /);
    assert.equal(Error.stackTraceLimit, limit, 'the limit is put back');
    assert.equal(missing.code, 'ENOTFOUND');
    assert.ok(isNoRecord(missing) && isNoRecord(empty) && !isNoRecord(failed));
  });
});
