/*
 * Turns the records of a DNS answer into the shapes `dns.promises.resolve` returns, so that
 * callers written for Node's resolver (mailauth) work unchanged:
 * A/AAAA: string[]; TXT: string[][] (one array of character-strings per record);
 * MX: { exchange, priority }[]; PTR, CNAME, NS: string[].
 */

import type { Answer } from 'dns-packet';

export const SUPPORTED_TYPES = ['A', 'AAAA', 'TXT', 'MX', 'PTR', 'CNAME', 'NS'] as const;
export type SupportedType = (typeof SUPPORTED_TYPES)[number];

export interface MxRecord {
  exchange: string;
  priority: number;
}

export interface RecordShapes {
  A: string[];
  AAAA: string[];
  TXT: string[][];
  MX: MxRecord[];
  PTR: string[];
  CNAME: string[];
  NS: string[];
}

export function isSupportedType(rrtype: string): rrtype is SupportedType {
  return (SUPPORTED_TYPES as readonly string[]).includes(rrtype);
}

/** The records of rrtype in answers (the CNAMEs leading to them are skipped), shaped. */
export function shapeRecords<T extends SupportedType>(
  rrtype: T, answers: readonly Answer[],
): RecordShapes[T] {
  const matching = answers.filter((answer) => answer.type === rrtype);
  switch (rrtype) {
    case 'TXT':
      return matching.map((answer) => txtStrings(answer.data)) as RecordShapes[T];
    case 'MX':
      return matching.map((answer) => {
        const data = answer.data as { exchange?: string; preference?: number } | undefined;
        return { exchange: withoutDot(data?.exchange ?? ''), priority: data?.preference ?? 0 };
      }) as RecordShapes[T];
    default:
      return matching.map((answer) => withoutDot(String(answer.data))) as RecordShapes[T];
  }
}

/** The smallest TTL among the records that make up the answer (chain included), in seconds. */
export function answerTtl(rrtype: string, answers: readonly Answer[]): number {
  const relevant = answers.filter((answer) => answer.type === rrtype || answer.type === 'CNAME');
  return relevant.reduce((lowest, answer) => Math.min(lowest, answer.ttl ?? 0), Infinity);
}

/**
 * The negative-caching TTL an authority section allows (RFC 2308 section 5: the smaller of
 * the SOA record's TTL and its MINIMUM field), or undefined when no SOA came with the answer.
 */
export function negativeTtl(authorities: readonly Answer[] | undefined): number | undefined {
  const soa = authorities?.find((record) => record.type === 'SOA');
  if (!soa) return undefined;
  const minimum = (soa.data as { minimum?: number } | undefined)?.minimum;
  return Math.min(soa.ttl ?? 0, minimum ?? soa.ttl ?? 0);
}

function txtStrings(data: unknown): string[] {
  const chunks = Array.isArray(data) ? data : [data];
  return chunks.map((chunk) => (Buffer.isBuffer(chunk) ? chunk.toString('utf8') : String(chunk)));
}

function withoutDot(name: string): string {
  return name.endsWith('.') ? name.slice(0, -1) : name;
}
