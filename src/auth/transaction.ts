/*
 * What moat-auth keeps per transaction, and which policy applies to it.
 *
 * Policy is per accepted domain (`auth_policy`, `auth_temperror` in `[domain ...]`), but a
 * message has one verdict: when its recipients' domains disagree, the strictest policy wins
 * (enforce over tag over off, tempfail over record).
 * LIMITATION: a recipient whose domain says `off` loses a message that an `enforce` recipient
 * of the same transaction refuses; the sender's bounce covers both.
 */

import type {
  AuthConfig, AuthPolicy, AuthTemperrorAction,
} from '../config/sections/auth';
import type { DomainPolicy } from '../config/types';
import type { SpfOutcome } from './spf';

export interface TransactionAuth {
  /** The SPF result of MAIL FROM; null when not evaluated. */
  spf: SpfOutcome | null;
  /** Why the checks were skipped for this transaction (e.g. `internal-network`), or null. */
  skipped: string | null;
}

const POLICY_STRENGTH: Record<AuthPolicy, number> = { off: 0, tag: 1, enforce: 2 };

export function recipientDomain(address: string): string {
  return (address.split('@').pop() ?? '').toLowerCase();
}

/** The policy for mail to one domain. */
export function domainAuthPolicy(
  domains: ReadonlyMap<string, DomainPolicy>, auth: AuthConfig, domain: string,
): { policy: AuthPolicy; temperror: AuthTemperrorAction } {
  const overrides = domains.get(domain)?.overrides;
  return {
    policy: (overrides?.get('auth_policy') as AuthPolicy | undefined) ?? auth.policy,
    temperror: (overrides?.get('auth_temperror') as AuthTemperrorAction | undefined)
      ?? auth.temperrorAction,
  };
}

/** The strictest policy among the recipients' domains (the global one when there are none). */
export function messageAuthPolicy(
  domains: ReadonlyMap<string, DomainPolicy>, auth: AuthConfig, recipients: readonly string[],
): { policy: AuthPolicy; temperror: AuthTemperrorAction } {
  if (recipients.length === 0) return { policy: auth.policy, temperror: auth.temperrorAction };
  let policy: AuthPolicy = 'off';
  let temperror: AuthTemperrorAction = 'record';
  for (const recipient of recipients) {
    const forDomain = domainAuthPolicy(domains, auth, recipientDomain(recipient));
    if (POLICY_STRENGTH[forDomain.policy] > POLICY_STRENGTH[policy]) policy = forDomain.policy;
    if (forDomain.temperror === 'tempfail') temperror = 'tempfail';
  }
  return { policy, temperror };
}
