/*
 * Metrics of Moat's DNS resolver (src/dns): lookups by record type and outcome, the time
 * spent asking servers, and cache hits. Labels come from the fixed sets below only; a query
 * name never becomes a label.
 */

import { Counter, Histogram } from 'prom-client';

import { registry } from './metrics';

export const DNS_TYPES = ['A', 'AAAA', 'TXT', 'MX', 'PTR', 'CNAME', 'NS'] as const;
export const DNS_OUTCOMES = [
  'ok', 'nxdomain', 'nodata', 'timeout', 'servfail', 'refused', 'connrefused', 'badresp',
  'notimp',
] as const;
export type DnsOutcome = (typeof DNS_OUTCOMES)[number];
export type DnsCacheResult = 'hit' | 'miss' | 'coalesced';

const lookupsTotal = new Counter({
  name: 'moat_dns_lookups_total',
  help: 'DNS lookups asked of the resolver (cached or not), by record type and outcome.',
  labelNames: ['type', 'outcome'] as const,
  registers: [registry],
});

const cacheTotal = new Counter({
  name: 'moat_dns_cache_total',
  help: 'DNS lookups answered from the cache (hit), joined to a query in flight (coalesced), '
    + 'or sent to a server (miss).',
  labelNames: ['result'] as const,
  registers: [registry],
});
for (const result of ['hit', 'miss', 'coalesced'] as const) cacheTotal.inc({ result }, 0);

const querySeconds = new Histogram({
  name: 'moat_dns_query_seconds',
  help: 'Time to get an answer from the DNS servers for one cache miss, retries included.',
  labelNames: ['type', 'outcome'] as const,
  buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10],
  registers: [registry],
});

function typeLabel(rrtype: string): string {
  return (DNS_TYPES as readonly string[]).includes(rrtype) ? rrtype : 'other';
}

export function countDnsLookup(rrtype: string, outcome: DnsOutcome): void {
  lookupsTotal.inc({ type: typeLabel(rrtype), outcome });
}

export function countDnsCache(result: DnsCacheResult): void {
  cacheTotal.inc({ result });
}

export function observeDnsQuery(rrtype: string, outcome: DnsOutcome, seconds: number): void {
  querySeconds.observe({ type: typeLabel(rrtype), outcome }, seconds);
}
