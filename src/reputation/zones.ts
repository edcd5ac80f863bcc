/*
 * DNS list zones as the operator writes them, and what their answers mean.
 *
 * Syntax of `reputation.zones`: entries separated by commas, each
 *   kind:zone:weight[:codes]
 * kind `block` (a listing adds weight, which must be positive) or `allow` (a listing adds
 * weight, which must be negative); codes are the A answers that count, as single addresses,
 * ranges (127.0.0.2-127.0.0.11) or networks (127.0.0.0/24) joined by `|`. Without codes, any
 * 127.0.0.2-127.255.255.255 answer counts. Example:
 *   zones = block:zen.example:1:127.0.0.2-127.0.0.11, allow:list.dnswl.example:-2
 *
 * An answer in `reputation.error_codes` (127.255.255.0/24 by default: "query refused",
 * "public resolver", "rate limited") or outside 127.0.0.0/8 (a hijacked NXDOMAIN) is an error,
 * never a listing. Codes outside the zone's counting codes leave the client unlisted.
 */

import { isIPv4 } from 'node:net';

import { ValueProblem } from '../config/values';

export type ZoneKind = 'block' | 'allow';

/** Inclusive IPv4 ranges as 32-bit numbers. */
export type CodeRanges = ReadonlyArray<readonly [number, number]>;

export interface ZoneSpec {
  kind: ZoneKind;
  /** Lower case, no trailing dot. */
  zone: string;
  weight: number;
  codes: CodeRanges;
  /** The codes as written, for the log and the reference. */
  codesText: string;
}

export const DEFAULT_COUNTED_CODES = '127.0.0.2-127.255.255.255';

const ZONE_LABEL = '[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?';
/** At least two labels; at most 180 characters, leaving room for a reversed IPv6 address. */
const ZONE_NAME = new RegExp(`^(?=.{1,180}$)${ZONE_LABEL}(?:\\.${ZONE_LABEL})+$`);
const ENTRY_EXPECTED = 'entries kind:zone:weight[:codes], e.g. '
  + 'block:zen.example:1:127.0.0.2-127.0.0.11, allow:list.dnswl.example:-2';

export function ipv4ToNumber(address: string): number {
  return address.split('.').reduce((value, octet) => value * 256 + Number(octet), 0);
}

/** `127.0.0.2`, `127.0.0.2-127.0.0.11`, `127.0.0.0/24`, joined by `|`. */
export function parseCodes(raw: string): CodeRanges {
  const expected = 'answer codes as addresses, ranges (127.0.0.2-127.0.0.11) or networks '
    + '(127.0.0.0/24) joined by |';
  const ranges: Array<[number, number]> = [];
  for (const part of raw.split('|').map((text) => text.trim())) {
    const [from, to] = part.split('-');
    const [network, bits] = part.split('/');
    if (to !== undefined && from !== undefined) {
      if (!isIPv4(from) || !isIPv4(to)) throw new ValueProblem(expected);
      const low = ipv4ToNumber(from);
      const high = ipv4ToNumber(to);
      if (low > high) throw new ValueProblem(`${expected} (range ${part} runs backwards)`);
      ranges.push([low, high]);
    } else if (bits !== undefined && network !== undefined) {
      if (!isIPv4(network) || !/^\d+$/.test(bits) || Number(bits) > 32) {
        throw new ValueProblem(expected);
      }
      const size = 2 ** (32 - Number(bits));
      const low = Math.floor(ipv4ToNumber(network) / size) * size;
      ranges.push([low, low + size - 1]);
    } else {
      if (!isIPv4(part)) throw new ValueProblem(expected);
      ranges.push([ipv4ToNumber(part), ipv4ToNumber(part)]);
    }
  }
  return ranges;
}

export function inRanges(address: string, ranges: CodeRanges): boolean {
  if (!isIPv4(address)) return false;
  const value = ipv4ToNumber(address);
  return ranges.some(([low, high]) => value >= low && value <= high);
}

/** The whole `zones` value; an empty value means no lists are consulted. */
export function parseZones(raw: string): ZoneSpec[] {
  const entries = raw.split(',').map((entry) => entry.trim()).filter((entry) => entry !== '');
  const zones = entries.map(parseZoneEntry);
  const seen = new Set<string>();
  for (const zone of zones) {
    if (seen.has(zone.zone)) throw new ValueProblem(`each zone once (${zone.zone} is repeated)`);
    seen.add(zone.zone);
  }
  return zones;
}

function parseZoneEntry(entry: string): ZoneSpec {
  const [kindText, zoneText, weightText, codesText, extra] = entry.split(':').map((f) => f.trim());
  if (extra !== undefined || weightText === undefined) {
    throw new ValueProblem(`${ENTRY_EXPECTED} (got "${entry}")`);
  }

  const kind = kindText?.toLowerCase();
  if (kind !== 'block' && kind !== 'allow') {
    throw new ValueProblem(`kind block or allow at the start of "${entry}"`);
  }
  const zone = (zoneText ?? '').toLowerCase().replace(/\.$/, '');
  if (!ZONE_NAME.test(zone)) {
    throw new ValueProblem(`a zone name such as zen.example in "${entry}"`);
  }
  if (!/^-?\d+(\.\d+)?$/.test(weightText)) {
    throw new ValueProblem(`a weight such as 1, 0.5 or -2 in "${entry}"`);
  }
  const weight = Number(weightText);
  if (kind === 'block' && weight <= 0) {
    throw new ValueProblem(
      `a positive weight for block zone ${zone} (allow zones lower the score)`);
  }
  if (kind === 'allow' && weight >= 0) {
    throw new ValueProblem(`a negative weight for allow zone ${zone}, e.g. -2`);
  }

  const codes = codesText === undefined || codesText === '' ? DEFAULT_COUNTED_CODES : codesText;
  let ranges: CodeRanges;
  try {
    ranges = parseCodes(codes);
  } catch (error) {
    if (!(error instanceof ValueProblem)) throw error;
    throw new ValueProblem(`${error.expected}, for zone ${zone}`);
  }
  return { kind, zone, weight, codes: ranges, codesText: codes };
}
