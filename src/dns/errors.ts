/*
 * The errors Moat's resolver throws, shaped like Node's `dns.promises` errors so that code
 * written for Node's resolver (mailauth among it) reads them unchanged: a `.code` such as
 * ENOTFOUND, plus `hostname` and `syscall`.
 *
 * The codes and what a caller should make of them:
 * - ENOTFOUND  the name does not exist (NXDOMAIN): a definite "no record".
 * - ENODATA    the name exists but has no record of the asked type (NODATA): "no record".
 * - ETIMEOUT   no server answered in time: temporary.
 * - ESERVFAIL  the server failed to resolve: temporary.
 * - EREFUSED   the server refused the query (often: a public resolver barred by a list).
 * - ECONNREFUSED  nothing listens on the server address.
 * - EBADRESP   an answer that could not be decoded.
 * - ENOTIMP    a record type this resolver does not parse.
 * Only ENOTFOUND and ENODATA mean "no record"; every other code is a temporary error.
 */

export type DnsErrorCode =
  | 'ENOTFOUND' | 'ENODATA' | 'ETIMEOUT' | 'ESERVFAIL' | 'EREFUSED' | 'ECONNREFUSED'
  | 'EBADRESP' | 'ENOTIMP';

export const NO_RECORD_CODES: ReadonlySet<DnsErrorCode> = new Set(['ENOTFOUND', 'ENODATA']);

export class DnsError extends Error {
  readonly syscall: string;

  constructor(
    readonly code: DnsErrorCode,
    readonly hostname: string,
    readonly rrtype: string,
    options?: { cause?: unknown; server?: string },
  ) {
    const syscall = `query${rrtype.charAt(0)}${rrtype.slice(1).toLowerCase()}`;
    const where = options?.server ? ` (server ${options.server})` : '';
    // "No such record" is an answer, not a fault, and a cached one is thrown for nearly every
    // message (an unlisted client's DNSBL names, a sender without DMARC): no stack for it.
    const stackLimit = Error.stackTraceLimit;
    if (NO_RECORD_CODES.has(code)) Error.stackTraceLimit = 0;
    super(`${syscall} ${code} ${hostname}${where}`, { cause: options?.cause });
    Error.stackTraceLimit = stackLimit;
    this.name = 'DnsError';
    this.syscall = syscall;
  }
}

/** True for an error code (a DnsError's, or any lookup's `.code`) that means "no such record". */
export function isNoRecordCode(code: string): boolean {
  return (NO_RECORD_CODES as ReadonlySet<string>).has(code);
}

/** True for the errors that mean "there is no such record", as opposed to "could not tell". */
export function isNoRecord(error: unknown): boolean {
  return error instanceof DnsError && NO_RECORD_CODES.has(error.code);
}

/** One exchange with one server failed; the resolver decides whether to try another. */
export class DnsExchangeError extends Error {
  constructor(
    readonly code: 'ETIMEOUT' | 'ECONNREFUSED' | 'EBADRESP',
    readonly server: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${message} (server ${server})`, options);
    this.name = 'DnsExchangeError';
  }
}
