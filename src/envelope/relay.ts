/*
 * Relay control: is this recipient for a domain we accept mail for?
 *
 * A recipient passes only when its domain is exactly one of the accepted domains. There are no
 * implicit subdomains: `sales.example.com` must be listed itself to be accepted when
 * `example.com` is. Everything else is refused with 550 5.7.1, and a refused path (address.ts)
 * is answered here too: relay tricks with 550 5.7.1, other syntax errors with 501 5.1.3.
 * Passing this step is not acceptance of the recipient: recipients.ts checks the mailbox next.
 *
 * Also answers MAIL FROM syntax (decideSender), so both envelope commands reply the same way.
 *
 * Untrusted input: the parsed path. Needs: the accepted domains from the configuration,
 * keyed by lower-case domain without a trailing dot (as src/config/load.ts builds them).
 */

import type { DomainPolicy } from '../config/types';
import { RELAY_TRICK_REASONS, type AddressRefusal, type AddressResult } from './address';
import type { EnvelopeDecision } from './decision';

export interface RelayDecision extends EnvelopeDecision {
  /** The accepted domain's policy when the action is accept, for the recipient check. */
  policy: DomainPolicy | null;
}

/** Decide RCPT TO at the relay level. Never accepts a domain that is not listed exactly. */
export function decideRecipient(
  rcpt: AddressResult, domains: Map<string, DomainPolicy>,
): RelayDecision {
  if (!rcpt.ok) return { ...refusePath(rcpt, 'recipient'), policy: null };

  const policy = domains.get(rcpt.domain);
  if (policy === undefined || policy.domain !== rcpt.domain) {
    return {
      action: 'reject', code: 550, enhanced: '5.7.1', text: 'Relaying denied',
      reason: 'relay-denied', evidence: { domain: rcpt.domain }, policy: null,
    };
  }

  return {
    action: 'accept', code: 250, enhanced: '2.1.5', text: 'Recipient domain accepted',
    reason: 'accepted-domain',
    evidence: { domain: rcpt.domain, recipientMode: policy.recipientMode },
    policy,
  };
}

/** Decide MAIL FROM syntax. The null sender `<>` is accepted (bounces must get through). */
export function decideSender(sender: AddressResult): EnvelopeDecision {
  if (!sender.ok) return refusePath(sender, 'sender');

  return {
    action: 'accept', code: 250, enhanced: '2.1.0', text: 'Sender ok', reason: 'sender-ok',
    evidence: { nullSender: sender.isNullPath, domain: sender.domain },
  };
}

function refusePath(refusal: AddressRefusal, role: 'sender' | 'recipient'): EnvelopeDecision {
  const evidence = { role, detail: refusal.reason };

  // A relay attempt in a recipient is refused as relaying, whatever else is wrong with it.
  if (role === 'recipient' && RELAY_TRICK_REASONS.has(refusal.code)) {
    return {
      action: 'reject', code: 550, enhanced: '5.7.1', text: 'Relaying denied',
      reason: refusal.code, evidence,
    };
  }

  if (role === 'recipient') {
    return {
      action: 'reject', code: 501, enhanced: '5.1.3', text: 'Bad recipient address syntax',
      reason: refusal.code, evidence,
    };
  }
  return {
    action: 'reject', code: 501, enhanced: '5.1.7', text: 'Bad sender address syntax',
    reason: refusal.code, evidence,
  };
}
