/*
 * The shape of an envelope decision, and the reason codes relay.ts and recipients.ts use.
 *
 * A decision is what the plugin answers to one MAIL FROM or RCPT TO: an action, the SMTP reply
 * (code, enhanced status code, text) and a stable reason code with its evidence, ready for one
 * decision log line. Address syntax refusals reuse the codes of ADDRESS_REASONS (address.ts);
 * the codes below are the other ones. Codes are stable; never reuse one for something else.
 */

import type { AddressReason } from './address';

export const ENVELOPE_REASONS = {
  'sender-ok': 'the sender path is syntactically valid (or the null sender)',
  'accepted-domain': 'the recipient domain is exactly one of the accepted domains',
  'relay-denied': 'the recipient domain is not an accepted domain (subdomains must be listed)',
  'recipient-any': 'the domain accepts any local part (recipient mode any)',
  'recipient-listed': 'the address is on the static recipient list',
  'recipient-catch-all': 'the static list has an @domain entry for the recipient domain',
  'recipient-not-listed': 'the address is not on the static recipient list',
  'recipient-verified': 'the internal server accepted the recipient (perhaps from the cache)',
  'recipient-unknown': 'the internal server refused the recipient (perhaps from the cache)',
  'verify-tempfail': 'the internal server answered the check with a temporary failure',
  'verify-error': 'the check with the internal server failed (connection, protocol, bad answer)',
  'verify-timeout': 'the internal server did not answer the check in time',
  'verify-unavailable': 'the mode requires asking the internal server but no check is set up',
} as const;

export type EnvelopeReason = keyof typeof ENVELOPE_REASONS;

export type EnvelopeAction = 'accept' | 'reject' | 'tempfail';

export interface EnvelopeDecision {
  action: EnvelopeAction;
  /** SMTP reply code: 250, 450, 501, 550, ... */
  code: number;
  /** RFC 3463 enhanced status code, such as `5.7.1`. */
  enhanced: string;
  /** Reply text for the client; fixed per reason, never the client's own input. */
  text: string;
  reason: EnvelopeReason | AddressReason;
  /** What the decision was based on, for the log line (the logger sanitises strings). */
  evidence: Record<string, string | number | boolean | null>;
}
