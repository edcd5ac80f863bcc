/*
 * Moat's one DNS resolver, shared by every check in a process (blocklists, SPF, DKIM, DMARC,
 * ARC). It asks the configured servers (MOAT_DNS_SERVERS, else /etc/resolv.conf) directly over
 * UDP, falls back to TCP on truncation, retries across servers, and caches what it learns.
 *
 * resolve(name, rrtype) behaves like Node's `dns.promises.resolve`: the same result shapes
 * (records.ts) and errors with the same `.code` (errors.ts): ENOTFOUND for NXDOMAIN, ENODATA
 * for NODATA, and ETIMEOUT / ESERVFAIL / EREFUSED / ECONNREFUSED / EBADRESP when no server gave
 * an answer. `lookup` is the same function bound, for mailauth's `resolver` option.
 *
 * Cache: answers live for their smallest TTL, NXDOMAIN/NODATA for the SOA minimum (RFC 2308)
 * or `negativeTtlMs` when the server sent no SOA; both clamped to [minTtlMs, maxTtlMs]. At
 * most `cacheSize` entries, least recently used dropped first. Concurrent lookups of the same
 * name and type share one query.
 *
 * Deadline: one exchange waits `timeoutMs`; the servers are tried in order, `attempts` rounds,
 * so the worst case is timeoutMs x attempts x servers. Callers that need a tighter bound
 * (the blocklist check at connect) race the lookup against their own deadline.
 *
 * LIMITATION: failures (timeouts, SERVFAIL) are not cached, so while a server is down every
 * lookup of a name waits for its own timeout; in-flight coalescing only merges simultaneous
 * lookups. Names are sent as given (no search domains, no IDN conversion: callers pass
 * A-labels).
 */

import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';

import type { Packet } from 'dns-packet';

import type { MoatConfig } from '../config/types';
import {
  countDnsCache, countDnsLookup, observeDnsQuery, type DnsOutcome,
} from '../observability/metrics-dns';
import { TtlCache } from './cache';
import { DnsError, DnsExchangeError, type DnsErrorCode } from './errors';
import {
  answerTtl, isSupportedType, negativeTtl, shapeRecords, type RecordShapes, type SupportedType,
} from './records';
import { describeServer, exchange, type DnsServerAddress } from './transport';

export type { MxRecord, RecordShapes, SupportedType } from './records';
export { DnsError, isNoRecord } from './errors';

export interface ResolverOptions {
  servers: DnsServerAddress[];
  timeoutMs: number;
  /** Rounds through the server list before giving up. */
  attempts: number;
  cacheSize: number;
  minTtlMs: number;
  maxTtlMs: number;
  /** Negative-cache TTL when the server sent no SOA with NXDOMAIN/NODATA. */
  negativeTtlMs: number;
  /** Milliseconds clock for cache expiry; tests inject their own. */
  now?: () => number;
}

type Cached =
  | { kind: 'records'; records: unknown }
  | { kind: 'negative'; code: 'ENOTFOUND' | 'ENODATA' };

const MAX_NAME_LENGTH = 253;
const MAX_LABEL_LENGTH = 63;

const OUTCOME_OF: Record<DnsErrorCode, DnsOutcome> = {
  ENOTFOUND: 'nxdomain', ENODATA: 'nodata', ETIMEOUT: 'timeout', ESERVFAIL: 'servfail',
  EREFUSED: 'refused', ECONNREFUSED: 'connrefused', EBADRESP: 'badresp', ENOTIMP: 'notimp',
};

export class Resolver {
  readonly servers: readonly DnsServerAddress[];
  private readonly cache: TtlCache<Cached>;
  private readonly inFlight = new Map<string, Promise<Cached>>();
  private readonly now: () => number;

  constructor(private readonly options: ResolverOptions) {
    if (options.servers.length === 0) throw new RangeError('a resolver needs at least one server');
    this.servers = [...options.servers];
    this.now = options.now ?? Date.now;
    this.cache = new TtlCache(options.cacheSize, this.now);
  }

  /** `dns.promises.resolve` with the same shapes and error codes; see the file comment. */
  async resolve<T extends SupportedType>(name: string, rrtype: T): Promise<RecordShapes[T]>;
  async resolve(name: string, rrtype: string): Promise<unknown>;
  async resolve(name: string, rrtype: string): Promise<unknown> {
    const type = rrtype.toUpperCase();
    const owner = name.toLowerCase().replace(/\.$/, '');
    if (!isSupportedType(type)) return this.fail(new DnsError('ENOTIMP', owner, type));
    if (!isQueryableName(owner)) return this.fail(new DnsError('ENOTFOUND', owner, type));

    const key = `${type} ${owner}`;
    let cached = this.cache.get(key);
    if (cached) {
      countDnsCache('hit');
    } else {
      try {
        cached = await this.lookupShared(key, owner, type);
      } catch (error) {
        if (error instanceof DnsError) this.fail(error);
        throw error;
      }
    }

    if (cached.kind === 'negative') return this.fail(new DnsError(cached.code, owner, type));
    countDnsLookup(type, 'ok');
    return structuredClone(cached.records);
  }

  /** resolve() as a plain function, for mailauth's `resolver` option. */
  readonly lookup = (name: string, rrtype: string): Promise<unknown> => this.resolve(name, rrtype);

  /** Forgets every cached answer (tests, and operators via a restart). */
  clearCache(): void {
    this.cache.clear();
  }

  private fail(error: DnsError): never {
    countDnsLookup(error.rrtype, OUTCOME_OF[error.code]);
    throw error;
  }

  /** One network lookup per key at a time; later callers wait for the first one's answer. */
  private lookupShared(key: string, owner: string, type: SupportedType): Promise<Cached> {
    const pending = this.inFlight.get(key);
    if (pending) {
      countDnsCache('coalesced');
      return pending;
    }
    countDnsCache('miss');
    const started = process.hrtime.bigint();
    const query = this.query(owner, type).then(
      (cached) => {
        const outcome = cached.kind === 'records' ? 'ok' : OUTCOME_OF[cached.code];
        observeDnsQuery(type, outcome, Number(process.hrtime.bigint() - started) / 1e9);
        return cached;
      },
      (error: unknown) => {
        const outcome = error instanceof DnsError ? OUTCOME_OF[error.code] : 'badresp';
        observeDnsQuery(type, outcome, Number(process.hrtime.bigint() - started) / 1e9);
        throw error;
      },
    ).finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, query);
    return query;
  }

  /** Asks the servers in turn until one gives a usable answer; caches it. */
  private async query(owner: string, type: SupportedType): Promise<Cached> {
    let lastError: DnsError | undefined;

    for (let round = 0; round < this.options.attempts; round++) {
      for (const server of this.servers) {
        let packet: Packet;
        try {
          packet = await exchange(server, owner, type, this.options.timeoutMs);
        } catch (error) {
          if (!(error instanceof DnsExchangeError)) throw error;
          lastError = new DnsError(error.code, owner, type, { cause: error, server: error.server });
          continue;
        }

        const outcome = this.interpret(packet, owner, type, describeServer(server));
        if (outcome instanceof DnsError) {
          lastError = outcome;
          continue;
        }
        return outcome;
      }
    }
    throw lastError ?? new DnsError('ETIMEOUT', owner, type);
  }

  /** The cacheable meaning of a server's answer, or the error that sends us to the next one. */
  private interpret(
    packet: Packet, owner: string, type: SupportedType, server: string,
  ): Cached | DnsError {
    const key = `${type} ${owner}`;
    switch (packet.rcode) {
      case 'NOERROR': {
        const records = shapeRecords(type, packet.answers ?? []);
        if (records.length === 0) return this.storeNegative(key, 'ENODATA', packet);
        const ttlMs = this.clamp(answerTtl(type, packet.answers ?? []) * 1000);
        const cached: Cached = { kind: 'records', records };
        this.cache.set(key, cached, ttlMs);
        return cached;
      }
      case 'NXDOMAIN':
        return this.storeNegative(key, 'ENOTFOUND', packet);
      case 'SERVFAIL':
        return new DnsError('ESERVFAIL', owner, type, { server });
      case 'REFUSED':
        return new DnsError('EREFUSED', owner, type, { server });
      default:
        return new DnsError('EBADRESP', owner, type, { server });
    }
  }

  private storeNegative(key: string, code: 'ENOTFOUND' | 'ENODATA', packet: Packet): Cached {
    const fromSoa = negativeTtl(packet.authorities);
    const ttlMs = this.clamp(fromSoa === undefined ? this.options.negativeTtlMs : fromSoa * 1000);
    const cached: Cached = { kind: 'negative', code };
    this.cache.set(key, cached, ttlMs);
    return cached;
  }

  private clamp(ttlMs: number): number {
    return Math.min(this.options.maxTtlMs, Math.max(this.options.minTtlMs, ttlMs));
  }
}

/** A name that can exist in the DNS: the resolver answers ENOTFOUND for others unasked. */
function isQueryableName(name: string): boolean {
  if (name === '' || name.length > MAX_NAME_LENGTH) return false;
  return name.split('.').every((label) => label !== '' && label.length <= MAX_LABEL_LENGTH);
}

// The per-process resolver.

let shared: Resolver | null = null;

/** The process's resolver, built on first use from config (the [dns] section). */
export function getResolver(config: MoatConfig): Resolver {
  if (shared) return shared;
  const settings = config.reputation.resolver;
  const servers = config.dnsServers.length > 0 ? config.dnsServers : systemServers();
  shared = new Resolver({ servers, ...settings });
  return shared;
}

/** The process resolver as mailauth's `resolver` option wants it. */
export function mailauthResolver(
  config: MoatConfig,
): (name: string, rrtype: string) => Promise<unknown> {
  return getResolver(config).lookup;
}

/**
 * The nameservers listed in /etc/resolv.conf (port 53), or 127.0.0.1:53 when it lists none:
 * the usual place of a local caching resolver.
 */
export function systemServers(resolvConf = '/etc/resolv.conf'): DnsServerAddress[] {
  let text = '';
  try {
    text = readFileSync(resolvConf, 'utf8');
  } catch {
    // No resolv.conf: fall through to the loopback default.
  }
  const servers = text.split('\n')
    .map((line) => /^\s*nameserver\s+(\S+)/.exec(line)?.[1])
    .map((host) => host?.replace(/%.*$/, ''))
    .filter((host): host is string => host !== undefined && isIP(host) !== 0)
    .map((host) => ({ host, port: 53 }));
  return servers.length > 0 ? servers : [{ host: '127.0.0.1', port: 53 }];
}
