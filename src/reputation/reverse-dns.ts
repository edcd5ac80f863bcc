/*
 * The client's name, forward-confirmed (FCrDNS): the PTR names of the client address, and of
 * those the first whose own A (or AAAA) records contain the address again. Anyone can publish
 * any PTR name for an address they hold, so only a confirmed name is used: in the Received
 * header, the EHLO reply and every decision line. An unconfirmed or missing name is
 * `unknown`, as Postfix writes it.
 *
 * Decides nothing: it returns a ReverseDnsResult with the evidence, and
 * plugins/reputation.ts hands the name to Haraka. Asked through Moat's one resolver, under
 * reputation.reverse_dns_deadline for the PTR lookup and the confirmations together; Haraka's
 * own lookup (the system resolver, no deadline of ours) is never run.
 *
 * Fail-open: a timeout or a DNS error only makes the name `unknown`; the client is not refused
 * for it (a refusal by rDNS is the kind of rule a compliance officer can write, knowingly).
 *
 * Untrusted input: the PTR names come from whoever controls the reverse zone; they are checked
 * to be host names before they are used or logged.
 */

import { isIPv4, isIPv6 } from 'node:net';

import { isNoRecordCode } from '../dns/errors';
import { reversedAddress } from './dnsbl';

export type ReverseDnsOutcome =
  /** A PTR name resolves back to the address. */
  | 'confirmed'
  /** PTR names exist, none resolves back to the address. */
  | 'unconfirmed'
  /** No PTR record (NXDOMAIN or NODATA), or none that is a host name. */
  | 'none'
  | 'timeout'
  | 'error';

export interface ReverseDnsResult {
  outcome: ReverseDnsOutcome;
  /** The confirmed name, or null. */
  name: string | null;
  /** The PTR names seen (at most MAX_NAMES, host names only), for the evidence. */
  ptr: string[];
  durationMs: number;
  /** Why an error is an error. */
  detail?: string;
}

export type ReverseLookup = (name: string, rrtype: 'PTR' | 'A' | 'AAAA') => Promise<unknown>;

/** PTR names tried for confirmation; more is a zone misconfigured or playing games. */
export const MAX_NAMES = 3;

const LABEL = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
const HOST_NAME = new RegExp(`^(?=.{1,253}$)(?:${LABEL}\\.)*${LABEL}$`);

/** The name under in-addr.arpa or ip6.arpa that holds the PTR records of ip. */
export function ptrName(ip: string): string {
  return `${reversedAddress(ip)}.${isIPv4(ip) ? 'in-addr' : 'ip6'}.arpa`;
}

export async function lookupReverseName(
  ip: string, lookup: ReverseLookup, deadlineMs: number,
): Promise<ReverseDnsResult> {
  const started = performance.now();
  const elapsed = (): number => Math.round(performance.now() - started);
  if (!isIPv4(ip) && !isIPv6(ip)) {
    return { outcome: 'error', name: null, ptr: [], durationMs: 0, detail: 'not an IP address' };
  }

  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<'deadline'>((resolve) => {
    timer = setTimeout(() => resolve('deadline'), deadlineMs);
  });
  try {
    const answer = await Promise.race([resolveAndConfirm(ip, lookup), deadline]);
    if (answer === 'deadline') {
      return {
        outcome: 'timeout', name: null, ptr: [], durationMs: elapsed(),
        detail: `no answer within ${deadlineMs} ms`,
      };
    }
    return { ...answer, durationMs: elapsed() };
  } finally {
    clearTimeout(timer);
  }
}

async function resolveAndConfirm(
  ip: string, lookup: ReverseLookup,
): Promise<Omit<ReverseDnsResult, 'durationMs'>> {
  let ptr: string[];
  try {
    ptr = hostNames(await lookup(ptrName(ip), 'PTR'));
  } catch (error) {
    const code = errorCode(error);
    if (isNoRecordCode(code)) return { outcome: 'none', name: null, ptr: [] };
    return { outcome: code === 'ETIMEOUT' ? 'timeout' : 'error', name: null, ptr: [],
      detail: `PTR: ${code}` };
  }
  if (ptr.length === 0) return { outcome: 'none', name: null, ptr };

  // Every name at once; the first in PTR order that points back wins.
  const family = isIPv4(ip) ? 'A' : 'AAAA';
  const wanted = normaliseAddress(ip);
  const confirmations = await Promise.all(ptr.map(async (name) => {
    try {
      const addresses = await lookup(name, family);
      return Array.isArray(addresses)
        && addresses.some((address) => normaliseAddress(String(address)) === wanted);
    } catch {
      return false;
    }
  }));
  const index = confirmations.indexOf(true);
  return index === -1
    ? { outcome: 'unconfirmed', name: null, ptr }
    : { outcome: 'confirmed', name: ptr[index] as string, ptr };
}

/** The PTR answers that are host names, lower-cased, without the root dot, at most MAX_NAMES. */
function hostNames(answer: unknown): string[] {
  if (!Array.isArray(answer)) return [];
  const names = answer
    .map((entry) => String(entry).toLowerCase().replace(/\.$/, ''))
    .filter((name) => HOST_NAME.test(name));
  return [...new Set(names)].slice(0, MAX_NAMES);
}

/** IPv6 written one way (expanded nibbles), so `2001:db8::1` equals `2001:0db8:0:0::1`. */
function normaliseAddress(ip: string): string {
  return isIPv6(ip) ? reversedAddress(ip) : ip;
}

function errorCode(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : 'EBADRESP';
}
