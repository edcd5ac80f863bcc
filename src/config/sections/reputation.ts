/*
 * Settings of the DNS resolver (`[dns]`, beside `dns.servers`, MOAT_DNS_SERVERS,
 * in the core table) and of the reputation checks, DNS blocklists and allowlists
 * (`[reputation]`). defaults.ts appends REPUTATION_SETTINGS to the table and load.ts calls
 * buildReputationConfig. The zone syntax is described in src/reputation/zones.ts.
 */

import { BlockList } from 'node:net';

import type { ResolverOptions } from '../../dns/resolver';
import type { DomainSettingSpec, SettingSpec } from '../defaults';
import {
  parseChoice, parseCidr, parseDuration, parseInteger, parseList, ValueProblem,
} from '../values';
import { parseCodes, parseZones, type CodeRanges, type ZoneSpec } from '../../reputation/zones';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

export const REPUTATION_SETTINGS: readonly SettingSpec[] = [
  // ---- DNS resolver (shared by every check) ----------------------------------------------
  { section: 'dns', key: 'timeout', default: '2s',
    why: 'wait per query and server; a local caching resolver answers in milliseconds',
    parse: (raw) => parseDuration(raw, 50, MINUTE) },
  { section: 'dns', key: 'attempts', default: '2',
    why: 'rounds through the server list before a lookup is a temperror',
    parse: (raw) => parseInteger(raw, 1, 5) },
  { section: 'dns', key: 'cache_size', default: '10000',
    why: 'answers kept per process (least recently used dropped first); 0 disables the cache',
    parse: (raw) => parseInteger(raw, 0, 10_000_000) },
  { section: 'dns', key: 'min_ttl', default: '5s',
    why: 'floor on cache lifetimes, so a TTL of 0 does not turn a burst into a query storm',
    parse: (raw) => parseDuration(raw, 0, HOUR) },
  { section: 'dns', key: 'max_ttl', default: '1h',
    why: 'ceiling on cache lifetimes, so a delisting or a new DKIM key is seen within an hour',
    parse: (raw) => parseDuration(raw, 1000, 7 * 24 * HOUR) },
  { section: 'dns', key: 'negative_ttl', default: '60s',
    why: 'how long NXDOMAIN/NODATA is kept when the server sent no SOA minimum',
    parse: (raw) => parseDuration(raw, 0, 24 * HOUR) },

  // ---- DNS blocklists and allowlists ------------------------------------------------------
  { section: 'reputation', key: 'zones', default: '',
    why: 'kind:zone:weight[:codes], comma-separated (see docs/operations.md); empty = no lists',
    parse: parseZones },
  { section: 'reputation', key: 'threshold', default: '1',
    why: 'a client whose summed weights reach this is refused (554 5.7.1 naming the lists)',
    parse: parseThreshold },
  { section: 'reputation', key: 'refuse_at', default: 'connect',
    why: 'connect refuses before any command; rcpt refuses each recipient and logs the envelope',
    parse: (raw) => parseChoice(raw, ['connect', 'rcpt'] as const) },
  { section: 'reputation', key: 'deadline', default: '1500ms',
    why: 'all zones are asked at once; a zone silent past this is skipped (fail-open, logged)',
    parse: (raw) => parseDuration(raw, 50, 30_000) },
  { section: 'reputation', key: 'error_codes', default: '127.255.255.0/24',
    why: 'answers meaning "query refused" or "error": counted as errors, never as listings',
    parse: parseCodes },
  // ---- The client's name ------------------------------------------------------------------
  { section: 'reputation', key: 'reverse_dns', default: 'confirm',
    why: 'confirm: PTR name checked forward, for Received and the log; off: always "unknown"',
    parse: (raw) => parseChoice(raw, ['confirm', 'off'] as const) },
  { section: 'reputation', key: 'reverse_dns_deadline', default: '1500ms',
    why: 'the PTR lookup and its confirmation together; past it the name is "unknown"',
    parse: (raw) => parseDuration(raw, 50, 30_000) },
  { section: 'reputation', key: 'allow_networks', default: '',
    why: 'clients in these networks skip the lists (partners, your own outbound relays)',
    parse: (raw) => parseList(raw).map(parseCidr) },
];

export const REPUTATION_DOMAIN_SETTINGS: readonly DomainSettingSpec[] = [];

/** The resolver's tunables; the servers come from dns.servers. */
export type ResolverSettings = Omit<ResolverOptions, 'servers' | 'now'>;

export interface DnsListSettings {
  zones: ZoneSpec[];
  threshold: number;
  refuseAt: 'connect' | 'rcpt';
  deadlineMs: number;
  errorCodes: CodeRanges;
  /** CIDR strings, as written, for the log. */
  allowNetworks: string[];
  /** allowNetworks, ready for matching. */
  allowList: BlockList;
}

export interface ReverseDnsSettings {
  enabled: boolean;
  deadlineMs: number;
}

export interface ReputationConfig {
  resolver: ResolverSettings;
  dnsbl: DnsListSettings;
  reverseDns: ReverseDnsSettings;
}

export function buildReputationConfig(get: <T>(name: string) => T): ReputationConfig {
  const allowNetworks = get<string[]>('reputation.allow_networks');
  return {
    resolver: {
      timeoutMs: get('dns.timeout'),
      attempts: get('dns.attempts'),
      cacheSize: get('dns.cache_size'),
      minTtlMs: get('dns.min_ttl'),
      maxTtlMs: get('dns.max_ttl'),
      negativeTtlMs: get('dns.negative_ttl'),
    },
    dnsbl: {
      zones: get('reputation.zones'),
      threshold: get('reputation.threshold'),
      refuseAt: get('reputation.refuse_at'),
      deadlineMs: get('reputation.deadline'),
      errorCodes: get('reputation.error_codes'),
      allowNetworks,
      allowList: networkList(allowNetworks),
    },
    reverseDns: {
      enabled: get('reputation.reverse_dns') === 'confirm',
      deadlineMs: get('reputation.reverse_dns_deadline'),
    },
  };
}

/** A BlockList holding the given CIDR strings (already validated by parseCidr). */
export function networkList(cidrs: readonly string[]): BlockList {
  const list = new BlockList();
  for (const cidr of cidrs) {
    const [address = '', bits] = cidr.split('/');
    const family = address.includes(':') ? 'ipv6' : 'ipv4';
    if (bits === undefined) list.addAddress(address, family);
    else list.addSubnet(address, Number(bits), family);
  }
  return list;
}

function parseThreshold(raw: string): number {
  const text = raw.trim();
  if (!/^\d+(\.\d+)?$/.test(text) || Number(text) <= 0) {
    throw new ValueProblem('a positive number such as 1 or 2.5');
  }
  return Number(text);
}
