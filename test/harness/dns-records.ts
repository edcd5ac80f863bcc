/*
 * Records of the test DNS server (dns.ts) and their conversion to dns-packet answers.
 *
 * TXT data given as one string is split into strings of at most 255 bytes, as publishers of
 * long DKIM keys do; given as a list, the strings are sent exactly as listed (each must fit in
 * 255 bytes), so tests can build odd splits on purpose.
 */

import { isIPv4, isIPv6 } from 'node:net';

import type { Answer } from 'dns-packet';

export type DnsRecordType = 'A' | 'AAAA' | 'TXT' | 'MX' | 'PTR' | 'CNAME' | 'NS';

/** MX data; every other type takes a string (TXT: a string or its exact list of strings). */
export interface MxData {
  preference: number;
  exchange: string;
}

export type DnsRecordData = string | string[] | MxData;

export interface DnsRecord {
  /** Lower case, no trailing dot. */
  name: string;
  type: DnsRecordType;
  data: DnsRecordData;
  ttl: number;
}

/** A TXT record's character-strings, long text split at 255 bytes. */
export function txtStrings(data: string | string[]): Buffer[] {
  if (Array.isArray(data)) {
    return data.map((text) => {
      const bytes = Buffer.from(text, 'utf8');
      if (bytes.length > 255) throw new RangeError(`TXT string over 255 bytes: ${text}`);
      return bytes;
    });
  }
  const bytes = Buffer.from(data, 'utf8');
  const strings: Buffer[] = [];
  for (let start = 0; start < bytes.length; start += 255) {
    strings.push(bytes.subarray(start, start + 255));
  }
  return strings.length > 0 ? strings : [Buffer.alloc(0)];
}

/** The dns-packet answer for record. */
export function dnsAnswer(record: DnsRecord): Answer {
  const base = { name: record.name, type: record.type, class: 'IN', ttl: record.ttl };
  switch (record.type) {
    case 'TXT':
      return { ...base, data: txtStrings(record.data as string | string[]) };
    case 'MX':
      return { ...base, data: { ...(record.data as MxData) } };
    default:
      return { ...base, data: String(record.data) };
  }
}

/**
 * The reverse-lookup name of an IP: 1.2.0.192.in-addr.arpa or nibbles under ip6.arpa.
 * LIMITATION: IPv6 written with an embedded IPv4 tail (::ffff:192.0.2.1) is not accepted.
 */
export function ptrName(ip: string): string {
  if (isIPv4(ip)) return `${ip.split('.').reverse().join('.')}.in-addr.arpa`;
  if (!isIPv6(ip) || ip.includes('.')) throw new TypeError(`not an IP address we expand: ${ip}`);

  // Expand "::" and each group to four hex digits, then reverse the 32 nibbles.
  const [head = '', tail = ''] = ip.split('::');
  const headGroups = head ? head.split(':') : [];
  const tailGroups = ip.includes('::') && tail ? tail.split(':') : [];
  const zeroCount = ip.includes('::') ? 8 - headGroups.length - tailGroups.length : 0;
  const groups = [...headGroups, ...Array<string>(zeroCount).fill('0'), ...tailGroups];
  const nibbles = groups.map((group) => group.padStart(4, '0')).join('').toLowerCase();
  return `${nibbles.split('').reverse().join('.')}.ip6.arpa`;
}
