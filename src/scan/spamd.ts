/*
 * Moat's own SPAMC/1.5 client for spamd (SpamAssassin), typed, with an absolute deadline and
 * failover across several spamd addresses.
 *
 * One request per message: `SYMBOLS SPAMC/1.5`, `Content-length`, an optional `User`, a blank
 * line, the message, then a half-close (spamd 4.0.1 waits for end of input when the message
 * does not end in a newline). The answer `SPAMD/1.1 0 EX_OK` carries `Spam: True ; 12.3 / 5.0`
 * (scores may be negative) and the names of the rules that hit. A non-zero EX_ code, a
 * connection that fails or breaks, or an answer that is not a verdict moves on to the next
 * address (the message is in memory, so it can be sent again); the deadline covers them all.
 *
 * The message given here is what the caller chose to send: the scheduler sends at most
 * spamd.max_size octets (a prefix of a larger message, cut at a line end).
 * Untrusted input: spamd's answer is parsed defensively and bounded to MAX_REPLY_BYTES.
 */

import { connect, type Socket } from 'node:net';
import { Deadline, ScannerError, socketTarget } from './errors';
import { Slots } from './slots';

const MAX_REPLY_BYTES = 64 * 1024;
const MAX_SYMBOLS = 200;

/** sysexits.h names spamd uses in its status line. */
const EX_CODES: Record<number, string> = {
  0: 'EX_OK', 64: 'EX_USAGE', 65: 'EX_DATAERR', 66: 'EX_NOINPUT', 67: 'EX_NOUSER',
  68: 'EX_NOHOST', 69: 'EX_UNAVAILABLE', 70: 'EX_SOFTWARE', 71: 'EX_OSERR', 72: 'EX_OSFILE',
  73: 'EX_CANTCREAT', 74: 'EX_IOERR', 75: 'EX_TEMPFAIL', 76: 'EX_PROTOCOL', 77: 'EX_NOPERM',
  78: 'EX_CONFIG',
};

export interface SpamdClientOptions {
  addresses: string[];
  connectTimeoutMs: number;
  /** Sent as `User:` so spamd can apply per-user settings; null sends none. */
  user: string | null;
  /** Requests in flight at once from this process (spamd.max_parallel); the scheduler waits
   * for a slot of `requests` before it sends. Unbounded when absent. */
  maxParallel?: number;
}

export interface SpamdVerdict {
  isSpam: boolean;
  score: number;
  /** spamd's own required score (Moat's thresholds are separate). */
  threshold: number;
  symbols: string[];
  address: string;
}

/** Thrown by parseSpamdReply; the kind says whether spamd failed or answered nonsense. */
export class SpamdReplyError extends Error {
  constructor(readonly kind: 'garbage' | 'unavailable', detail: string) {
    super(detail);
    this.name = 'SpamdReplyError';
  }
}

export class SpamdClient {
  private preferred = 0;
  /** The turns of the messages being scored (see SpamdClientOptions.maxParallel). */
  readonly requests: Slots;

  constructor(readonly options: SpamdClientOptions) {
    this.requests = new Slots(options.maxParallel ?? Number.POSITIVE_INFINITY);
    if (options.addresses.length === 0) {
      throw new ScannerError('spamd', 'unavailable', null, 'no spamd address configured');
    }
  }

  /** Scores `message`; throws ScannerError when no spamd gives a verdict before the deadline. */
  async check(message: Buffer, deadline: Deadline): Promise<SpamdVerdict> {
    const head = [
      'SYMBOLS SPAMC/1.5',
      `Content-length: ${message.length}`,
      ...(this.options.user ? [`User: ${this.options.user}`] : []),
      '', '',
    ].join('\r\n');
    const request = [Buffer.from(head, 'latin1'), message];
    const reply = await this.exchange(request, deadline);
    return { ...parseSpamdReply(reply.bytes), address: reply.address };
  }

  /** PING: true when some spamd answers PONG before the deadline. */
  async ping(deadline: Deadline): Promise<{ ok: boolean; detail: string }> {
    try {
      const reply = await this.exchange([Buffer.from('PING SPAMC/1.5\r\n\r\n')], deadline);
      const ok = /^SPAMD\/\d+\.\d+ 0 PONG/.test(reply.bytes.toString('latin1'));
      return { ok, detail: ok ? `${reply.address} answers PONG` : 'unexpected answer to PING' };
    } catch (error) {
      return { ok: false, detail: error instanceof Error ? error.message : String(error) };
    }
  }

  private async exchange(
    request: Buffer[], deadline: Deadline,
  ): Promise<{ bytes: Buffer; address: string }> {
    const addresses = this.options.addresses;
    const problems: string[] = [];
    let lastError: unknown = null;
    const first = this.preferred;
    for (let attempt = 0; attempt < addresses.length; attempt += 1) {
      const index = (first + attempt) % addresses.length;
      const address = addresses[index] as string;
      if (deadline.expired) break;
      try {
        const bytes = await talk(address, request, deadline, this.options.connectTimeoutMs);
        if (request.length > 1) parseSpamdReply(bytes);
        return { bytes, address };
      } catch (error) {
        if (error instanceof ScannerError && error.kind === 'timeout') throw error;
        lastError = error;
        problems.push(`${address}: ${error instanceof Error ? error.message : String(error)}`);
        if (index === this.preferred) this.preferred = (index + 1) % addresses.length;
      }
    }
    const kind = lastError instanceof SpamdReplyError && lastError.kind === 'garbage'
      ? 'garbage' : (deadline.expired ? 'timeout' : 'unavailable');
    throw new ScannerError('spamd', kind, null, problems.join('; ') || 'deadline passed',
      { cause: lastError });
  }
}

/** One connection: send, half-close, read to the end; bounded by connect timeout and deadline. */
function talk(
  address: string, request: Buffer[], deadline: Deadline, connectTimeoutMs: number,
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let received = 0;
    let connected = false;
    const socket: Socket = connect(socketTarget(address));
    const fail = (error: Error): void => {
      clearTimeout(connectTimer);
      clearTimeout(deadlineTimer);
      socket.destroy();
      reject(error);
    };
    const connectTimer = setTimeout(() => {
      if (!connected) fail(new Error(`no connection within ${connectTimeoutMs} ms`));
    }, Math.min(connectTimeoutMs, deadline.remaining()));
    const deadlineTimer = setTimeout(() => {
      fail(new ScannerError('spamd', 'timeout', address, `no verdict within ${deadline.ms} ms`));
    }, deadline.remaining());

    socket.on('connect', () => {
      connected = true;
      clearTimeout(connectTimer);
      // Head and body leave in one writev, not one write each.
      socket.cork();
      for (const part of request) socket.write(part);
      socket.end();
      socket.uncork();
    });
    socket.on('data', (chunk: Buffer) => {
      received += chunk.length;
      if (received > MAX_REPLY_BYTES) {
        fail(new SpamdReplyError('garbage', `answer longer than ${MAX_REPLY_BYTES} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    socket.on('error', (error) => fail(error));
    socket.on('end', () => {
      clearTimeout(deadlineTimer);
      clearTimeout(connectTimer);
      socket.destroy();
      if (received === 0) reject(new Error('connection closed without an answer'));
      else resolve(Buffer.concat(chunks));
    });
  });
}

/** Parses a SYMBOLS answer; throws SpamdReplyError for an EX_ error or an unreadable answer. */
export function parseSpamdReply(raw: Buffer): Omit<SpamdVerdict, 'address'> {
  const text = raw.toString('latin1');
  const headEnd = text.indexOf('\r\n\r\n');
  const head = headEnd === -1 ? text : text.slice(0, headEnd);
  const [statusLine = '', ...headerLines] = head.split('\r\n');

  // Status line: SPAMD/1.1 0 EX_OK.
  const status = /^SPAMD\/\d+\.\d+ +(\d+) +(\S+)/.exec(statusLine);
  if (!status) {
    throw new SpamdReplyError('garbage', `not a spamd answer: ${statusLine.slice(0, 60)}`);
  }
  const code = Number(status[1]);
  if (code !== 0) {
    const name = EX_CODES[code] ?? `EX_${code}`;
    throw new SpamdReplyError('unavailable', `spamd answered ${code} ${name}`);
  }

  // Spam: True ; 1002.3 / 5.0 (either number may be negative).
  const spamLine = headerLines.find((line) => /^spam\s*:/i.test(line)) ?? '';
  const verdict =
    /^spam\s*:\s*(true|false|yes|no)\s*;\s*(-?\d+(?:\.\d+)?)\s*\/\s*(-?\d+(?:\.\d+)?)\s*$/i
      .exec(spamLine);
  if (!verdict) {
    throw new SpamdReplyError('garbage', `no Spam: header in ${statusLine.slice(0, 60)}`);
  }

  // The body lists the rule names, comma separated.
  const body = headEnd === -1 ? '' : text.slice(headEnd + 4);
  const symbols = body.split(/[,\s]+/).filter((name) => /^[A-Za-z0-9_.:-]{1,64}$/.test(name))
    .slice(0, MAX_SYMBOLS);
  return {
    isSpam: /^(true|yes)$/i.test(verdict[1] ?? ''),
    score: Number(verdict[2]),
    threshold: Number(verdict[3]),
    symbols,
  };
}
