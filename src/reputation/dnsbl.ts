/*
 * DNS blocklists and allowlists: asks every configured zone about the client address at once
 * and sums the weights of the zones that list it.
 *
 * Decides nothing about SMTP itself: it returns a DnsListVerdict (score, threshold, whether
 * the client is refused, each zone's outcome with its evidence) and plugins/reputation.ts
 * turns it into a reply. Needs the shared resolver (any `(name, 'A') => string[]` function).
 *
 * Fail-open: a zone that times out (past the deadline) or errs (SERVFAIL, REFUSED, an answer
 * in the error codes such as 127.255.255.254, or an answer outside 127.0.0.0/8 from a resolver
 * that rewrites NXDOMAIN) is skipped; the caller logs it and counts it. Mail from a client a
 * dead list would have refused therefore flows: a list outage must not stop mail.
 *
 * Untrusted input: the client address only as the PROXY protocol or the socket presented it;
 * it is checked to be an IP before a query name is built from it.
 *
 * LIMITATION: only A answers are asked; the TXT reason a list publishes is not fetched, so the
 * refusal names the list but not its explanation. Zones are asked for IPv6 clients too; a zone
 * that lists only IPv4 simply answers NXDOMAIN.
 */

import { BlockList, isIP, isIPv4, isIPv6 } from 'node:net';

import type { DnsListSettings } from '../config/sections/reputation';
import { isNoRecordCode } from '../dns/errors';
import { inRanges, type ZoneKind } from './zones';

export type ZoneOutcomeWord = 'listed' | 'clean' | 'error' | 'timeout';

export interface ZoneOutcome {
  zone: string;
  kind: ZoneKind;
  outcome: ZoneOutcomeWord;
  /** The A answers received (all of them, counted or not). */
  answers: string[];
  /** The weight added to the score: the zone's weight when listed, else 0. */
  weight: number;
  /** Why an error is an error, or why answers did not count. */
  detail?: string;
}

export type SkipReason = 'internal-network' | 'local-allowlist' | 'not-an-ip';

export interface DnsListVerdict {
  clientIp: string;
  skipped: SkipReason | null;
  score: number;
  threshold: number;
  /** True when the score reached the threshold: the client is to be refused. */
  refused: boolean;
  /** The block zones that listed the client, for the reply and the log. */
  listedBy: string[];
  zones: ZoneOutcome[];
  durationMs: number;
}

export type AddressLookup = (name: string, rrtype: 'A') => Promise<string[]>;

const LOOPBACK_NET: ReadonlyArray<readonly [number, number]> = [[0x7f000000, 0x7fffffff]];

/** `::ffff:192.0.2.1` is the IPv4 client 192.0.2.1 seen through an IPv6 socket. */
export function plainClientIp(ip: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  return mapped?.[1] ?? ip;
}

/** The name to look up under a zone: 7.113.0.203 for IPv4, 32 reversed nibbles for IPv6. */
export function reversedAddress(ip: string): string {
  if (isIPv4(ip)) return ip.split('.').reverse().join('.');
  if (!isIPv6(ip)) throw new TypeError(`not an IP address: ${ip}`);

  // Expand "::" and embedded IPv4, then write every nibble, last first.
  let text = ip.toLowerCase();
  const v4Tail = /(\d+\.\d+\.\d+\.\d+)$/.exec(text)?.[1];
  if (v4Tail) {
    const [a = 0, b = 0, c = 0, d = 0] = v4Tail.split('.').map(Number);
    const high = (a * 256 + b).toString(16);
    const low = (c * 256 + d).toString(16);
    text = `${text.slice(0, -v4Tail.length)}${high}:${low}`;
  }
  const [head = '', tail] = text.split('::');
  const headGroups = head === '' ? [] : head.split(':');
  const tailGroups = tail === undefined || tail === '' ? [] : tail.split(':');
  const missing = tail === undefined ? 0 : 8 - headGroups.length - tailGroups.length;
  const groups = [...headGroups, ...Array<string>(missing).fill('0'), ...tailGroups];
  const nibbles = groups.map((group) => group.padStart(4, '0')).join('');
  return nibbles.split('').reverse().join('.');
}

function family(ip: string): 'ipv4' | 'ipv6' {
  return isIPv4(ip) ? 'ipv4' : 'ipv6';
}

/** Whether ip is in networks; false for something that is not an IP address. */
export function inNetworks(ip: string, networks: BlockList): boolean {
  return isIP(ip) !== 0 && networks.check(ip, family(ip));
}

/**
 * Checks clientIp against every zone in settings, all at once, within settings.deadlineMs.
 * Clients in internalNetworks or settings.allowList are skipped without a query.
 */
export async function checkDnsLists(
  rawClientIp: string,
  settings: DnsListSettings,
  internalNetworks: BlockList,
  lookup: AddressLookup,
): Promise<DnsListVerdict> {
  const startedAt = Date.now();
  const clientIp = plainClientIp(rawClientIp);
  const verdict = (skipped: SkipReason | null, zones: ZoneOutcome[]): DnsListVerdict => {
    const score = zones.reduce((sum, zone) => sum + zone.weight, 0);
    const refused = skipped === null && score >= settings.threshold;
    const listedBy = zones.filter((zone) => zone.kind === 'block' && zone.outcome === 'listed')
      .map((zone) => zone.zone);
    return { clientIp, skipped, score, threshold: settings.threshold, refused, listedBy, zones,
      durationMs: Date.now() - startedAt };
  };

  // Who is never asked about.
  if (!isIPv4(clientIp) && !isIPv6(clientIp)) return verdict('not-an-ip', []);
  if (internalNetworks.check(clientIp, family(clientIp))) return verdict('internal-network', []);
  if (settings.allowList.check(clientIp, family(clientIp))) return verdict('local-allowlist', []);

  // Every zone at once, each cut off at the shared deadline.
  const reversed = reversedAddress(clientIp);
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<'deadline'>((resolve) => {
    timer = setTimeout(() => resolve('deadline'), settings.deadlineMs);
  });
  try {
    const zones = await Promise.all(settings.zones.map(async (zone): Promise<ZoneOutcome> => {
      const base = { zone: zone.zone, kind: zone.kind, answers: [], weight: 0 };
      const answer = await Promise.race([
        lookup(`${reversed}.${zone.zone}`, 'A').then(
          (answers) => ({ answers }),
          (error: unknown) => ({ error: (error as { code?: string }).code ?? 'EUNKNOWN' }),
        ),
        deadline,
      ]);
      if (answer === 'deadline') {
        const detail = `no answer within ${settings.deadlineMs} ms`;
        return { ...base, outcome: 'timeout', detail };
      }
      if ('error' in answer) {
        if (isNoRecordCode(answer.error)) return { ...base, outcome: 'clean' };
        const outcome = answer.error === 'ETIMEOUT' ? 'timeout' : 'error';
        return { ...base, outcome, detail: `lookup failed: ${answer.error}` };
      }
      return judgeAnswers(zone, answer.answers, settings);
    }));
    return verdict(null, zones);
  } finally {
    clearTimeout(timer);
  }
}

function judgeAnswers(
  zone: DnsListSettings['zones'][number], answers: string[], settings: DnsListSettings,
): ZoneOutcome {
  const base = { zone: zone.zone, kind: zone.kind, answers };

  // Error answers first: they must never be read as a listing.
  const errorCode = answers.find((address) => inRanges(address, settings.errorCodes));
  if (errorCode) {
    const detail = `zone answered error code ${errorCode}`;
    return { ...base, outcome: 'error', weight: 0, detail };
  }
  const foreign = answers.find((address) => !inRanges(address, LOOPBACK_NET));
  if (foreign) {
    return { ...base, outcome: 'error', weight: 0,
      detail: `answer ${foreign} is outside 127.0.0.0/8 (NXDOMAIN rewritten?)` };
  }

  if (answers.some((address) => inRanges(address, zone.codes))) {
    return { ...base, outcome: 'listed', weight: zone.weight };
  }
  return { ...base, outcome: 'clean', weight: 0,
    detail: `answer not among the counted codes ${zone.codesText}` };
}
