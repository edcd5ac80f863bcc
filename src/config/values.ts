/*
 * Parsers for the kinds of value Moat's settings take.
 *
 * Each parser returns the value or throws a ValueProblem whose text completes the sentence
 * "expected ...". load.ts turns that into a ConfigError naming the source and key.
 */

import { isIP } from 'node:net';
import type { HostPort } from './types';

export class ValueProblem extends Error {
  constructor(readonly expected: string) {
    super(expected);
    this.name = 'ValueProblem';
  }
}

const HOSTNAME = new RegExp('^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?'
  + '(?:\\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\\.?$');

export function parseHostPort(raw: string, defaultPort?: number): HostPort {
  const expected = 'host:port, e.g. 127.0.0.1:25 or [::1]:25';
  const text = raw.trim();
  let host: string;
  let portText: string | undefined;

  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (bracketed) {
    host = bracketed[1] ?? '';
    portText = bracketed[2];
    if (isIP(host) !== 6) throw new ValueProblem(expected);
  } else {
    const colon = text.lastIndexOf(':');
    if (colon === -1) {
      host = text;
    } else {
      host = text.slice(0, colon);
      portText = text.slice(colon + 1);
    }
    if (host.includes(':')) throw new ValueProblem(`${expected} (IPv6 addresses in brackets)`);
    if (!isIP(host) && !HOSTNAME.test(host)) throw new ValueProblem(expected);
  }

  if (portText === undefined) {
    if (defaultPort === undefined) throw new ValueProblem(expected);
    return { host, port: defaultPort };
  }
  return { host, port: parsePort(portText, expected) };
}

function parsePort(text: string, expected: string): number {
  if (!/^\d{1,5}$/.test(text)) throw new ValueProblem(expected);
  const port = Number(text);
  if (port < 1 || port > 65535) throw new ValueProblem(`${expected} (port 1-65535)`);
  return port;
}

export function parseList(raw: string): string[] {
  return raw.split(/[\s,]+/).map((item) => item.trim()).filter((item) => item !== '');
}

export function parseHostPortList(raw: string, defaultPort?: number): HostPort[] {
  return parseList(raw).map((item) => parseHostPort(item, defaultPort));
}

export function parseInteger(raw: string, min: number, max: number): number {
  const expected = `a whole number from ${min} to ${max}`;
  if (!/^-?\d+$/.test(raw.trim())) throw new ValueProblem(expected);
  const value = Number(raw.trim());
  if (value < min || value > max) throw new ValueProblem(expected);
  return value;
}

const SIZE_UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

/** `25M`, `512k`, `1048576`: bytes. */
export function parseSize(raw: string, min: number, max: number): number {
  const expected = `a size such as 512k, 25M or 1048576 (bytes), from ${min} to ${max} bytes`;
  const match = /^(\d+)\s*([kKmMgG]?)[bB]?$/.exec(raw.trim());
  if (!match) throw new ValueProblem(expected);
  const bytes = Number(match[1]) * (SIZE_UNITS[(match[2] ?? '').toLowerCase()] ?? 1);
  if (bytes < min || bytes > max) throw new ValueProblem(expected);
  return bytes;
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** `250ms`, `30s`, `5m`, `2h`: milliseconds. A bare number is seconds, as in Haraka. */
export function parseDuration(raw: string, minMs: number, maxMs: number): number {
  const expected = `a duration such as 250ms, 30s, 5m or 2h, from ${minMs} ms to ${maxMs} ms`;
  const match = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$/.exec(raw.trim());
  if (!match) throw new ValueProblem(expected);
  const ms = Math.round(Number(match[1]) * (DURATION_UNITS[match[2] ?? 's'] ?? 1000));
  if (ms < minMs || ms > maxMs) throw new ValueProblem(expected);
  return ms;
}

export function parseChoice<T extends string>(raw: string, choices: readonly T[]): T {
  const value = raw.trim().toLowerCase();
  const found = choices.find((choice) => choice === value);
  if (!found) throw new ValueProblem(`one of: ${choices.join(', ')}`);
  return found;
}

export function parseBoolean(raw: string): boolean {
  const value = raw.trim().toLowerCase();
  if (['true', 'yes', 'on', '1'].includes(value)) return true;
  if (['false', 'no', 'off', '0'].includes(value)) return false;
  throw new ValueProblem('true or false');
}

export function parseDomain(raw: string): string {
  const domain = raw.trim().toLowerCase().replace(/\.$/, '');
  if (!HOSTNAME.test(domain) || !domain.includes('.') && domain !== 'localhost') {
    throw new ValueProblem('a domain name such as example.com');
  }
  return domain;
}

/** `192.0.2.0/24`, `2001:db8::/32`, or a single address. */
export function parseCidr(raw: string): string {
  const text = raw.trim();
  const [address, bits, extra] = text.split('/');
  const family = isIP(address ?? '');
  const expected = 'an address or network such as 192.0.2.0/24 or 2001:db8::/32';
  if (!family || extra !== undefined) throw new ValueProblem(expected);
  if (bits === undefined) return text;
  const max = family === 4 ? 32 : 128;
  if (!/^\d+$/.test(bits) || Number(bits) > max) throw new ValueProblem(expected);
  return text;
}

export function parseHostname(raw: string): string {
  const text = raw.trim();
  if (!HOSTNAME.test(text)) throw new ValueProblem('a host name such as mx.example.com');
  return text.replace(/\.$/, '');
}

export function parseRedisUrl(raw: string): string {
  const text = raw.trim();
  if (!/^rediss?:\/\/[^\s]+$/.test(text)) {
    throw new ValueProblem('a redis:// or rediss:// URL, e.g. redis://127.0.0.1:6379');
  }
  return text;
}

/** A scanner address: host:port or an absolute unix socket path. */
export function parseScannerAddress(raw: string): string {
  const text = raw.trim();
  if (text.startsWith('/')) return text;
  const { host, port } = parseHostPort(text);
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
