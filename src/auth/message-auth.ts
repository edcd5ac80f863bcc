/*
 * DKIM, ARC and DMARC for one message, after DATA.
 *
 * Every DKIM signature is verified (RSA and Ed25519); keys under the configured size and
 * rsa-sha1 give `policy`, never `pass` (RFC 8301). A signature whose l= tag leaves part of the
 * body unsigned is reported as `policy` and does not count for DMARC unless the operator says
 * otherwise: unsigned content appended to a signed message must not ride on its pass. ARC is
 * validated (every seal), and DMARC aligns the SPF result from MAIL time and the counting
 * DKIM signatures with the From domain, relaxed or strict as the record says.
 *
 * Needs: DNS, through the resolver passed in. DNS failures are temperror results, not
 * exceptions; the whole evaluation has a deadline (AuthDeadlineError). Decides nothing: the
 * policy step (./policy.ts) turns these results into actions.
 * Untrusted input: the whole message, and every DNS answer.
 */

import {
  mailauth, mailauthDmarc, type DnsResolve, type MailauthDkimSignature, type MailauthDmarcResult,
} from './mailauth';
import { oneLine, type SpfOutcome } from './spf';
import type { Readable } from 'node:stream';

export type DkimWord = 'pass' | 'fail' | 'neutral' | 'policy' | 'temperror' | 'permerror' | 'none';

export interface DkimSignatureOutcome {
  result: DkimWord;
  domain: string;
  selector: string;
  algorithm: string;
  /** RSA modulus length; absent for Ed25519 or when no key was found. */
  keyBits?: number;
  comment: string;
  /** Set when l= left body bytes unsigned. */
  unsignedBytes?: number;
  /** Counted as an authenticated identifier for DMARC. */
  countsForDmarc: boolean;
  info: string;
}

export interface ArcOutcome {
  result: 'pass' | 'fail' | 'none';
  /** Instance of the newest ARC set, 0 when there is none. */
  instance: number;
  /** d= of the newest ARC-Seal: who vouches for the chain. */
  sealer?: string;
  comment: string;
  info?: string;
}

export interface DmarcOutcome {
  result: 'pass' | 'fail' | 'none' | 'temperror';
  fromDomain: string;
  /** The policy to apply after sp=, np= and t=y (reject, quarantine, none). */
  policy?: 'reject' | 'quarantine' | 'none';
  published?: string;
  policyDomain?: string;
  /** True when the record came from a parent domain (sp= applies). */
  inherited: boolean;
  spfAligned?: string;
  dkimAligned?: string;
  strictSpf: boolean;
  strictDkim: boolean;
  testMode: boolean;
  comment: string;
  info: string;
}

export interface MessageAuth {
  dkim: DkimSignatureOutcome[];
  arc: ArcOutcome;
  /** null when DMARC could not be evaluated (no single author domain). */
  dmarc: DmarcOutcome | null;
  /** mailauth's view of the From addresses, to cross-check Moat's own parse. */
  headerFrom: string[];
  /** Why mailauth did not evaluate DMARC, if it did not. */
  dmarcSkipReason?: string;
}

export interface MessageAuthOptions {
  spf: SpfOutcome | null;
  sender: string;
  resolve: DnsResolve;
  minRsaBits: number;
  rejectRsaSha1: boolean;
  /** 'policy': a signature with unsigned appended content is not a pass. */
  partialBody: 'policy' | 'pass';
  timeoutMs: number;
  /**
   * Called as each step finishes, with its duration (for moat_check_duration_seconds). A step
   * still running at the deadline reports when it does finish, if ever.
   */
  onStep?: (step: 'dkim' | 'arc' | 'dmarc', seconds: number) => void;
}

export class AuthDeadlineError extends Error {
  constructor(readonly timeoutMs: number) {
    super(`DKIM/ARC/DMARC evaluation took longer than ${timeoutMs} ms`);
    this.name = 'AuthDeadlineError';
  }
}

const DKIM_WORDS: readonly DkimWord[] = [
  'pass', 'fail', 'neutral', 'policy', 'temperror', 'permerror', 'none',
];

/** Runs DKIM, ARC and DMARC on a whole message, within options.timeoutMs. */
export async function authenticateMessage(
  message: Buffer | Readable, options: MessageAuthOptions,
): Promise<MessageAuth> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new AuthDeadlineError(options.timeoutMs)), options.timeoutMs);
  });
  const work = evaluate(message, options);
  work.catch(() => undefined); // the race below settles it; never an unhandled rejection
  try {
    return await Promise.race([work, deadline]);
  } finally {
    if (timer) clearTimeout(timer);
  }
}

async function evaluate(
  message: Buffer | Readable, options: MessageAuthOptions,
): Promise<MessageAuth> {
  let stepStarted = process.hrtime.bigint();
  const stepDone = (step: 'dkim' | 'arc' | 'dmarc'): void => {
    const now = process.hrtime.bigint();
    options.onStep?.(step, Number(now - stepStarted) / 1e9);
    stepStarted = now;
  };

  // DKIM: every signature.
  const verified = await mailauth.dkimVerify(message, {
    resolver: options.resolve, sender: options.sender, minBitLength: options.minRsaBits,
    rejectRsaSha1: options.rejectRsaSha1,
  });
  stepDone('dkim');
  const signatures = verified.results.map((row) => ({
    row, outcome: describeSignature(row, options.partialBody),
  }));
  // mailauth reports an unsigned message as one row without a domain; that is not a signature.
  const dkim = signatures
    .filter(({ row }) => row.signingDomain || row.status.result !== 'none')
    .map(({ outcome }) => outcome);

  // ARC: the chain and who sealed it last.
  const arcResult = await mailauth.arc(verified.arc, {
    resolver: options.resolve, minBitLength: options.minRsaBits,
  });
  stepDone('arc');
  const lastEntry = verified.arc.lastEntry || undefined;
  const sealer = lastEntry?.['arc-seal']?.parsed?.d?.value;
  const arcWord = arcResult.status.result === 'pass' || arcResult.status.result === 'fail'
    ? arcResult.status.result : 'none';
  const arc: ArcOutcome = {
    result: arcWord,
    instance: typeof arcResult.i === 'number' ? arcResult.i : 0,
    ...(sealer ? { sealer: String(sealer).toLowerCase().replace(/\.$/, '') } : {}),
    comment: arcResult.status.comment ?? '',
    ...(arcResult.info ? { info: oneLine(arcResult.info) } : {}),
  };

  // DMARC: SPF from MAIL time, and only the DKIM signatures that count.
  // For the null sender SPF checked HELO, the identity RFC 7489 section 4.1 then aligns.
  const spfDomains = options.spf?.result === 'pass' ? [options.spf.domain] : [];
  const dkimDomains = signatures
    .filter(({ row, outcome }) => outcome.countsForDmarc && row.signingDomain)
    .map(({ row }) => ({
      id: row.id, domain: row.signingDomain, underSized: row.status.underSized,
    }));
  const evaluated = await mailauthDmarc.evaluateDmarc({
    headerFrom: verified.headerFrom, fromFields: verified.fromFields, spfDomains, dkimDomains,
    arcResult, resolver: options.resolve,
  });
  stepDone('dmarc');
  const dmarc = evaluated.response ? describeDmarc(evaluated.response) : null;

  return {
    dkim, arc, dmarc, headerFrom: verified.headerFrom ?? [],
    ...(evaluated.reason ? { dmarcSkipReason: evaluated.reason } : {}),
  };
}

function describeSignature(
  row: MailauthDkimSignature, partialBody: 'policy' | 'pass',
): DkimSignatureOutcome {
  let result = DKIM_WORDS.find((word) => word === row.status.result) ?? 'permerror';
  let info = oneLine(row.info);
  let comment = row.status.comment ?? '';
  const unsignedBytes = row.status.underSized;

  // l= with content after the signed part: not a pass, unless the operator trusts it.
  let countsForDmarc = result === 'pass';
  if (result === 'pass' && unsignedBytes && partialBody === 'policy') {
    result = 'policy';
    countsForDmarc = false;
    comment = `l= leaves ${unsignedBytes} body bytes unsigned`;
    info = info.replace(/^dkim=pass\b/, 'dkim=policy policy.dkim-rules=body-length');
  }

  return {
    result, domain: row.signingDomain ?? '', selector: row.selector ?? '',
    algorithm: row.algo ?? '',
    ...(row.modulusLength ? { keyBits: row.modulusLength } : {}),
    comment,
    ...(unsignedBytes ? { unsignedBytes } : {}),
    countsForDmarc, info,
  };
}

function describeDmarc(response: MailauthDmarcResult): DmarcOutcome {
  const word = response.status.result;
  const result = word === 'pass' || word === 'fail' || word === 'temperror' ? word : 'none';
  const policy = response.policy === 'reject' || response.policy === 'quarantine'
    || response.policy === 'none' ? response.policy : undefined;
  const fromDomain = response.status.header?.from ?? response.domain ?? '';
  return {
    result, fromDomain,
    ...(policy ? { policy } : {}),
    ...(response.p
      ? { published: `p=${response.p}${response.sp ? ` sp=${response.sp}` : ''}` } : {}),
    ...(response.policyDomain ? { policyDomain: response.policyDomain } : {}),
    inherited: Boolean(response.policyDomain && response.policyDomain !== fromDomain),
    ...(response.alignment?.spf.result ? { spfAligned: response.alignment.spf.result } : {}),
    ...(response.alignment?.dkim.result ? { dkimAligned: response.alignment.dkim.result } : {}),
    strictSpf: response.alignment?.spf.strict ?? false,
    strictDkim: response.alignment?.dkim.strict ?? false,
    testMode: response.testMode ?? false,
    comment: response.error ?? response.status.comment ?? '',
    info: oneLine(response.info),
  };
}
