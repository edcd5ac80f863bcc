/*
 * Errors of the scanner clients, carrying which scanner, which address and what went wrong.
 *
 * `kind` is a bounded code used in logs and metrics:
 * - unavailable: could not connect, or the connection broke (clamd/spamd down or restarting);
 * - timeout: the absolute deadline passed (scanner hanging or too slow);
 * - garbage: the scanner answered something that is not a verdict;
 * - too-large: the scanner refused the size (clamd StreamMaxLength).
 */

export type ScannerName = 'clamd' | 'spamd';
export type ScannerFailure = 'unavailable' | 'timeout' | 'garbage' | 'too-large';

export class ScannerError extends Error {
  constructor(
    readonly scanner: ScannerName,
    readonly kind: ScannerFailure,
    /** The address last tried, or null when none was. */
    readonly address: string | null,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(`${scanner}${address ? ` ${address}` : ''}: ${kind}: ${detail}`, options);
    this.name = 'ScannerError';
  }
}

/** An absolute point in time by which a scan must be over. */
export class Deadline {
  readonly at: number;

  constructor(readonly ms: number, now = Date.now()) {
    this.at = now + ms;
  }

  remaining(): number {
    return Math.max(0, this.at - Date.now());
  }

  get expired(): boolean {
    return this.remaining() === 0;
  }
}

/** Splits `host:port`, `[v6]:port` or a unix socket path into net.connect options. */
export function socketTarget(address: string): { path: string } | { host: string; port: number } {
  if (address.startsWith('/')) return { path: address };
  const colon = address.lastIndexOf(':');
  const host = address.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
  return { host, port: Number(address.slice(colon + 1)) };
}
