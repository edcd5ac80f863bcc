/*
 * Recipient validation at RCPT time, after relay.ts has found the domain accepted.
 *
 * The domain's recipientMode says how (src/config/types.ts):
 *   any          every local part is accepted (the internal server may still refuse later)
 *   list         the static list: a full lower-case address, or an `@domain` catch-all entry
 *   verify       the internal server is asked (an injected function does the SMTP dialogue)
 *   list+verify  both must pass: not listed is refused at once, listed is then verified
 *
 * Replies: unknown user 550 5.1.1. When the mode requires verification and the internal server
 * cannot give a firm answer (tempfail, error, timeout, no verifier configured), the answer is
 * 450 4.4.3: Moat fails closed and never accepts a recipient it could not verify.
 *
 * Needs: the verify function (talks to the internal server) and a clock. Answers are cached:
 * accepted addresses for positiveTtlMs, unknown ones for negativeTtlMs, temporary failures
 * never. Concurrent checks of one address share a single request to the internal server.
 *
 * Untrusted input: the recipient address (already parsed by address.ts) and the internal
 * server's reply text, which is kept as evidence but never shown to the client.
 *
 * LIMITATION: local parts are compared case-insensitively with the static list, and the
 * internal server is asked with the local part as the client wrote it; the cache is keyed by
 * that exact form, so `John@` and `john@` are two cache entries.
 */

import type { DomainPolicy } from '../config/types';
import type { ParsedAddress } from './address';
import type { EnvelopeDecision } from './decision';
import { VerifyCache } from './verify-cache';

export interface VerifyAnswer {
  result: 'accept' | 'reject' | 'tempfail';
  code: number;
  enhanced: string;
  text: string;
}

/** Asks the internal server whether it would accept RCPT TO for the address. */
export type VerifyRecipient = (address: string) => Promise<VerifyAnswer>;

export type RecipientSource = 'policy' | 'list' | 'verify' | 'cache';

export interface RecipientDecision extends EnvelopeDecision {
  evidence: EnvelopeDecision['evidence'] & { source: RecipientSource };
}

export interface RecipientCheckOptions {
  /** null when no domain uses verify; a domain that does then gets 450 4.4.3. */
  verify: VerifyRecipient | null;
  positiveTtlMs: number;
  negativeTtlMs: number;
  maxCacheEntries?: number;
  verifyTimeoutMs?: number;
  /** Milliseconds clock; Date.now unless a test injects one. */
  now?: () => number;
}

export const RECIPIENT_CHECK_DEFAULTS = {
  /** About 100 bytes an entry: a bounded few megabytes per worker. */
  maxCacheEntries: 10_000,
  /** Below Haraka's plugin timeout (30 s), so the client gets our 450, not Haraka's. */
  verifyTimeoutMs: 10_000,
} as const;

/** The verify function did not settle within verifyTimeoutMs. */
export class RecipientVerifyTimeout extends Error {
  constructor(readonly address: string, readonly timeoutMs: number) {
    super(`recipient check for ${address} got no answer within ${timeoutMs} ms`);
    this.name = 'RecipientVerifyTimeout';
  }
}

/** The verify function threw, rejected, or answered something that is not a VerifyAnswer. */
export class RecipientVerifyError extends Error {
  constructor(readonly address: string, message: string, options?: { cause?: unknown }) {
    super(`recipient check for ${address} failed: ${message}`, options);
    this.name = 'RecipientVerifyError';
  }
}

type VerifyOutcome =
  | { kind: 'answer'; answer: VerifyAnswer }
  | { kind: 'timeout' | 'error'; error: Error };

const UNKNOWN_USER = { code: 550, enhanced: '5.1.1', text: 'Recipient address rejected: '
  + 'user unknown' } as const;
const CANNOT_VERIFY = { code: 450, enhanced: '4.4.3', text: 'Recipient cannot be verified '
  + 'now, try again later' } as const;
const RECIPIENT_OK = { code: 250, enhanced: '2.1.5', text: 'Recipient ok' } as const;

export class RecipientChecker {
  private readonly cache: VerifyCache<VerifyAnswer>;
  private readonly inFlight = new Map<string, Promise<VerifyOutcome>>();
  private readonly now: () => number;
  private readonly verifyTimeoutMs: number;

  constructor(private readonly options: RecipientCheckOptions) {
    this.now = options.now ?? Date.now;
    this.verifyTimeoutMs = options.verifyTimeoutMs ?? RECIPIENT_CHECK_DEFAULTS.verifyTimeoutMs;
    this.cache = new VerifyCache(
      options.maxCacheEntries ?? RECIPIENT_CHECK_DEFAULTS.maxCacheEntries, this.now);
  }

  /** Entries in the answer cache (for metrics). */
  get cacheSize(): number {
    return this.cache.size;
  }

  /** Decide one recipient of an accepted domain. The promise never rejects. */
  async check(rcpt: ParsedAddress, policy: DomainPolicy): Promise<RecipientDecision> {
    const base = { address: rcpt.address, domain: rcpt.domain, mode: policy.recipientMode };
    if (rcpt.isNullPath || rcpt.domain !== policy.domain) {
      return {
        action: 'reject', code: 550, enhanced: '5.7.1', text: 'Relaying denied',
        reason: 'relay-denied', evidence: { ...base, source: 'policy' },
      };
    }
    if (policy.recipientMode === 'any') {
      return { action: 'accept', ...RECIPIENT_OK, reason: 'recipient-any',
        evidence: { ...base, source: 'policy' } };
    }

    // The static list, for list and list+verify.
    let listed: 'address' | 'catch-all' | null = null;
    if (policy.recipientMode === 'list' || policy.recipientMode === 'list+verify') {
      listed = findOnList(rcpt, policy.recipients);
      if (listed === null) {
        return { action: 'reject', ...UNKNOWN_USER, reason: 'recipient-not-listed',
          evidence: { ...base, source: 'list' } };
      }
      if (policy.recipientMode === 'list') {
        return { action: 'accept', ...RECIPIENT_OK,
          reason: listed === 'address' ? 'recipient-listed' : 'recipient-catch-all',
          evidence: { ...base, source: 'list' } };
      }
    }

    // The internal server, for verify and list+verify.
    const decision = await this.verifyRecipient(rcpt.address);
    if (listed !== null) decision.evidence.listed = listed;
    Object.assign(decision.evidence, base);
    return decision;
  }

  private async verifyRecipient(address: string): Promise<RecipientDecision> {
    const cached = this.cache.get(address);
    if (cached !== undefined) {
      return fromAnswer(cached.value, { source: 'cache', ageMs: this.now() - cached.storedAt });
    }
    const verify = this.options.verify;
    if (verify === null) {
      return { action: 'tempfail', ...CANNOT_VERIFY, reason: 'verify-unavailable',
        evidence: { source: 'verify' } };
    }

    // Join a request already on its way for the same address, or start one.
    let pending = this.inFlight.get(address);
    const coalesced = pending !== undefined;
    if (pending === undefined) {
      pending = this.askServer(verify, address);
      this.inFlight.set(address, pending);
      const forget = () => { this.inFlight.delete(address); };
      pending.then(forget, forget);
    }

    const outcome = await pending;
    if (outcome.kind === 'answer') {
      return fromAnswer(outcome.answer, { source: 'verify', coalesced });
    }
    return {
      action: 'tempfail', ...CANNOT_VERIFY,
      reason: outcome.kind === 'timeout' ? 'verify-timeout' : 'verify-error',
      evidence: { source: 'verify', coalesced, error: outcome.error.message },
    };
  }

  /** One request to the internal server; caches firm answers. Never rejects. */
  private async askServer(verify: VerifyRecipient, address: string): Promise<VerifyOutcome> {
    let answer: unknown;
    try {
      answer = await withDeadline(Promise.resolve().then(() => verify(address)),
        this.verifyTimeoutMs, address);
    } catch (error) {
      if (error instanceof RecipientVerifyTimeout) return { kind: 'timeout', error };
      const message = error instanceof Error ? error.message : String(error);
      return { kind: 'error', error: new RecipientVerifyError(address, message, { cause: error }) };
    }
    if (!isVerifyAnswer(answer)) {
      return { kind: 'error', error: new RecipientVerifyError(address, 'malformed answer') };
    }

    if (answer.result === 'accept') this.cache.set(address, answer, this.options.positiveTtlMs);
    if (answer.result === 'reject') this.cache.set(address, answer, this.options.negativeTtlMs);
    return { kind: 'answer', answer };
  }
}

function findOnList(rcpt: ParsedAddress, recipients: Set<string>): 'address' | 'catch-all' | null {
  if (recipients.has(rcpt.address.toLowerCase())) return 'address';
  if (recipients.has(`@${rcpt.domain}`)) return 'catch-all';
  return null;
}

function fromAnswer(
  answer: VerifyAnswer, evidence: { source: RecipientSource; [key: string]: string | number
    | boolean | null },
): RecipientDecision {
  const downstream = { downstreamCode: answer.code, downstreamEnhanced: answer.enhanced,
    downstreamText: answer.text };
  if (answer.result === 'accept') {
    return { action: 'accept', ...RECIPIENT_OK, reason: 'recipient-verified',
      evidence: { ...evidence, ...downstream } };
  }
  if (answer.result === 'reject') {
    return { action: 'reject', ...UNKNOWN_USER, reason: 'recipient-unknown',
      evidence: { ...evidence, ...downstream } };
  }
  return { action: 'tempfail', ...CANNOT_VERIFY, reason: 'verify-tempfail',
    evidence: { ...evidence, ...downstream } };
}

function isVerifyAnswer(value: unknown): value is VerifyAnswer {
  if (typeof value !== 'object' || value === null) return false;
  const answer = value as Partial<VerifyAnswer>;
  return (answer.result === 'accept' || answer.result === 'reject'
    || answer.result === 'tempfail')
    && typeof answer.code === 'number' && typeof answer.enhanced === 'string'
    && typeof answer.text === 'string';
}

function withDeadline<T>(work: Promise<T>, timeoutMs: number, address: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new RecipientVerifyTimeout(address, timeoutMs)),
      timeoutMs);
    work.then(
      (value) => { clearTimeout(timer); resolve(value); },
      (error: unknown) => { clearTimeout(timer); reject(error); },
    );
  });
}
