/*
 * SPF (RFC 7208) for the envelope, evaluated at MAIL FROM.
 *
 * Checks the MAIL FROM domain against the client address; for the null sender (bounces) the
 * HELO name is checked instead, as RFC 7208 section 2.4 says. The result is kept for DMARC and
 * the Authentication-Results header, and the caller may refuse a `fail` before DATA.
 *
 * Needs: DNS (through the resolver passed in). A lookup that fails or a whole evaluation past
 * the deadline is `temperror`, never an exception: the caller decides what temperror does.
 * Untrusted input: the sender address and HELO name (the client chose both).
 */

import { isIP } from 'node:net';

import { mailauth, type DnsResolve } from './mailauth';

export type SpfWord =
  'pass' | 'fail' | 'softfail' | 'neutral' | 'none' | 'temperror' | 'permerror';

const SPF_WORDS: readonly SpfWord[] = [
  'pass', 'fail', 'softfail', 'neutral', 'none', 'temperror', 'permerror',
];

export interface SpfOutcome {
  result: SpfWord;
  /** Which identity was checked: the MAIL FROM domain, or HELO for the null sender. */
  identity: 'mailfrom' | 'helo';
  /** The domain whose record was evaluated. */
  domain: string;
  comment: string;
  /** The SPF record, when one was found. */
  record?: string;
  /** The RFC 8601 resinfo, e.g. `spf=pass (...) smtp.mailfrom=a@b`. */
  info: string;
  durationMs: number;
}

export interface SpfInput {
  clientIp: string;
  /** Envelope sender, '' for the null sender. */
  sender: string;
  helo: string;
  /** Our host name, used in the comment of the result. */
  mta: string;
  resolve: DnsResolve;
  timeoutMs: number;
}

export class SpfDeadlineError extends Error {
  constructor(readonly timeoutMs: number, readonly domain: string) {
    super(`SPF evaluation for ${domain} took longer than ${timeoutMs} ms`);
    this.name = 'SpfDeadlineError';
  }
}

export async function checkSpf(input: SpfInput): Promise<SpfOutcome> {
  const started = Date.now();
  const identity = input.sender === '' ? 'helo' : 'mailfrom';
  const checkedDomain = identity === 'helo'
    ? input.helo.toLowerCase()
    : (input.sender.split('@').pop() ?? '').toLowerCase();
  // A HELO that is a bare address is written as an address literal, as mailauth does.
  const helo = isIP(input.helo) ? `[${input.helo}]` : input.helo;

  let timer: NodeJS.Timeout | undefined;
  try {
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new SpfDeadlineError(input.timeoutMs, checkedDomain)),
        input.timeoutMs);
    });
    const evaluation = mailauth.spf({
      sender: input.sender, ip: input.clientIp, helo, mta: input.mta,
      resolver: input.resolve, maxElapsedTime: input.timeoutMs,
    });
    evaluation.catch(() => undefined); // settled by the deadline race; never unhandled
    const result = await Promise.race([evaluation, deadline]);
    const word = SPF_WORDS.find((candidate) => candidate === result.status.result) ?? 'permerror';
    return {
      result: word, identity, domain: result.domain ?? checkedDomain,
      comment: result.status.comment ?? '',
      ...(result.rr ? { record: result.rr } : {}),
      info: oneLine(result.info), durationMs: Date.now() - started,
    };
  } catch (error) {
    // A DNS library failure or the deadline: temperror, which the caller's policy handles.
    const comment = error instanceof Error ? error.message : String(error);
    const property = identity === 'helo' ? `smtp.helo=${checkedDomain}`
      : `smtp.mailfrom=${checkedDomain}`;
    return {
      result: 'temperror', identity, domain: checkedDomain, comment,
      info: `spf=temperror ${property}`, durationMs: Date.now() - started,
    };
  } finally {
    if (timer) clearTimeout(timer);
  }
}

/** Folded header text as one line, control characters removed. */
export function oneLine(text: string): string {
  return text.replace(/\r?\n[ \t]*/g, ' ').replace(/[\x00-\x1f\x7f]/g, '').trim();
}
