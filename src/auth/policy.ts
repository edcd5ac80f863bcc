/*
 * What the sender-authentication results mean for one message: the CheckResults recorded in
 * its verdict, and the text of the X-Moat-Auth tag.
 *
 * Decides, under the `enforce` policy: 550 5.7.1 for a From header that cannot be trusted to
 * name the author (RFC 7489 6.6.1), 550 5.7.1 naming the domain for a DMARC failure under
 * p=reject, the quarantine (or tag) action under p=quarantine, nothing under p=none. Under
 * `tag` each of those becomes the tag action; under `off` they are only recorded. A DMARC
 * failure is forgiven (and the record says why) for a configured exempt From domain or client
 * network, and for a valid ARC chain whose newest seal is by a trusted sealer. Temporary DNS
 * failures that leave DMARC undecided become 451 only when configured.
 *
 * Pure: no DNS, no clock. Inputs come from ./spf.ts, ./message-auth.ts and ./from-header.ts.
 */

import type { AuthPolicy, AuthTemperrorAction } from '../config/sections/auth';
import type { CheckResult, ResultWord } from '../verdict/verdict';
import type { ReasonCode } from '../verdict/reasons';
import type { AuthorResult, FromProblem } from './from-header';
import type { DkimWord, MessageAuth } from './message-auth';
import type { SpfOutcome } from './spf';

export interface AuthPolicyInput {
  policy: AuthPolicy;
  temperror: AuthTemperrorAction;
  quarantineAction: 'quarantine' | 'tag';
  /** auth.spf_fail_action = reject: an SPF fail refuses (or tags) the message too. */
  spfFailReject: boolean;
  /** From domains whose DMARC failures are only recorded. */
  exemptDomains: readonly string[];
  /** True when the client address is in dmarc_exempt_networks. */
  clientExempt: boolean;
  trustedSealers: readonly string[];
}

export interface AuthEvaluation {
  author: AuthorResult;
  spf: SpfOutcome | null;
  /** null when DKIM/ARC/DMARC could not run (deadline or error): every result is temperror. */
  message: MessageAuth | null;
  /** Why `message` is null. */
  messageError?: string;
}

export interface AuthJudgement {
  results: CheckResult[];
  /** Value for X-Moat-Auth when something was tagged, else null. */
  tag: string | null;
}

const FROM_REASONS: Record<FromProblem, ReasonCode> = {
  'missing': 'from-missing',
  'several-fields': 'from-several-fields',
  'several-mailboxes': 'from-several-mailboxes',
  'unparseable': 'from-unparseable',
};

/** Turns the results of one message into verdict records. */
export function judgeMessage(evaluation: AuthEvaluation, input: AuthPolicyInput): AuthJudgement {
  const results: CheckResult[] = [];
  const tags: string[] = [];

  // Record every result with its evidence first; actions are attached below.
  const spf = evaluation.spf;
  if (spf) {
    const record = spfRecord(spf);
    if (spf.result === 'fail' && input.spfFailReject) {
      applyAction(record, input.policy, 'reject', 'spf-fail', tags,
        `spf=fail smtp.${spf.identity}=${spf.domain}`);
    }
    results.push(record);
  }
  const message = evaluation.message;
  if (message) {
    if (message.dkim.length === 0) results.push({ check: 'dkim', result: 'none' });
    for (const signature of message.dkim) {
      results.push({
        check: 'dkim', result: dkimWord(signature.result),
        evidence: {
          domain: signature.domain, selector: signature.selector, algorithm: signature.algorithm,
          ...(signature.keyBits ? { key_bits: signature.keyBits } : {}),
          result: signature.result,
          ...(signature.comment ? { comment: signature.comment } : {}),
          ...(signature.unsignedBytes ? { unsigned_bytes: signature.unsignedBytes } : {}),
        },
      });
    }
    results.push({
      check: 'arc', result: message.arc.result,
      evidence: {
        instance: message.arc.instance,
        ...(message.arc.sealer ? { sealer: message.arc.sealer } : {}),
        ...(message.arc.comment ? { comment: message.arc.comment } : {}),
      },
    });
  } else {
    const error = evaluation.messageError ?? 'not evaluated';
    results.push({ check: 'dkim', result: 'temperror', evidence: { error } });
    results.push({ check: 'dmarc', result: 'temperror', evidence: { error } });
  }

  // The From header: one field, one mailbox, parseable, and read the same by mailauth.
  const fromRecord = fromCheck(evaluation);
  if (fromRecord.result === 'fail') {
    applyAction(fromRecord, input.policy, 'reject', fromRecord.reason ?? 'from-unparseable', tags,
      `from=${String(fromRecord.evidence?.['problem'])}`);
    results.push(fromRecord);
    return { results, tag: tags.length ? tags.join('; ') : null };
  }
  results.push(fromRecord);

  // DMARC, with its exceptions.
  const dmarc = message?.dmarc;
  if (message && dmarc) {
    const record: CheckResult = {
      check: 'dmarc', result: dmarc.result,
      evidence: {
        from_domain: dmarc.fromDomain,
        ...(dmarc.policy ? { policy: dmarc.policy } : {}),
        ...(dmarc.published ? { published: dmarc.published } : {}),
        ...(dmarc.policyDomain ? { policy_domain: dmarc.policyDomain } : {}),
        alignment: {
          spf: dmarc.spfAligned ?? 'none', dkim: dmarc.dkimAligned ?? 'none',
          mode: `aspf=${dmarc.strictSpf ? 's' : 'r'} adkim=${dmarc.strictDkim ? 's' : 'r'}`,
        },
        ...(dmarc.testMode ? { test_mode: true } : {}),
        ...(dmarc.comment ? { comment: dmarc.comment } : {}),
      },
    };
    if (dmarc.result === 'fail' && dmarc.policy && dmarc.policy !== 'none') {
      const forgiven = forgiveness(dmarc.fromDomain, message, input);
      if (forgiven) {
        record.reason = forgiven.reason;
        Object.assign(record.evidence ?? {}, forgiven.evidence);
      } else if (dmarc.policy === 'reject') {
        applyAction(record, input.policy, 'reject', 'dmarc-reject', tags,
          `dmarc=fail policy=reject header.from=${dmarc.fromDomain}`);
        if (record.action === 'reject') record.reply = dmarcRejectReply(dmarc.fromDomain);
      } else {
        applyAction(record, input.policy, input.quarantineAction, 'dmarc-quarantine', tags,
          `dmarc=fail policy=quarantine header.from=${dmarc.fromDomain}`);
      }
    }
    results.push(record);
  }

  // Temporary failures that leave DMARC undecided: 451 only where configured.
  const undecided = !message || dmarc?.result === 'temperror'
    || (dmarc?.result === 'fail' && hasTemperror(evaluation));
  if (undecided && input.temperror === 'tempfail' && input.policy === 'enforce') {
    results.push({
      check: 'auth-dns', result: 'temperror', action: 'tempfail', reason: 'auth-temperror',
      evidence: { dmarc: dmarc?.result ?? 'temperror', spf: evaluation.spf?.result ?? 'none' },
    });
  }

  return { results, tag: tags.length ? tags.join('; ') : null };
}

/** The CheckResult for SPF, as recorded at MAIL time and again in the message's verdict. */
export function spfRecord(spf: SpfOutcome): CheckResult {
  return {
    check: 'spf', result: spf.result,
    evidence: {
      identity: spf.identity, domain: spf.domain,
      ...(spf.comment ? { comment: spf.comment } : {}),
      ...(spf.record ? { record: spf.record } : {}),
      ms: spf.durationMs,
    },
  };
}

export function dmarcRejectReply(domain: string): { code: number; enhanced: string; text: string } {
  return {
    code: 550, enhanced: '5.7.1',
    text: `Message refused: DMARC policy of ${domain.replace(/[^A-Za-z0-9.-]/g, '?').slice(0, 253)
    } rejects mail that fails authentication`,
  };
}

function fromCheck(evaluation: AuthEvaluation): CheckResult {
  const author = evaluation.author;
  if (!author.ok) {
    return {
      check: 'from', result: 'fail', reason: FROM_REASONS[author.problem],
      evidence: { problem: author.problem, detail: author.detail, fields: author.fieldCount },
    };
  }

  // mailauth parses From itself for DMARC: if it read another domain, the checks judged
  // something other than what Moat would show as the author.
  const theirs = evaluation.message?.headerFrom ?? [];
  const theirDomains = new Set(theirs.map((address) =>
    (address.split('@').pop() ?? '').toLowerCase().replace(/\.$/, '')));
  if (evaluation.message && (theirDomains.size !== 1 || !theirDomains.has(author.author.domain))) {
    return {
      check: 'from', result: 'fail', reason: 'from-unparseable',
      evidence: { problem: 'unparseable', detail: 'parsers disagree on the author domain',
        domain: author.author.domain, fields: 1 },
    };
  }
  return { check: 'from', result: 'pass', evidence: { domain: author.author.domain } };
}

function forgiveness(
  fromDomain: string, message: MessageAuth, input: AuthPolicyInput,
): { reason: ReasonCode; evidence: Record<string, unknown> } | null {
  const exemptDomain = input.exemptDomains.find((domain) => withinDomain(fromDomain, domain));
  if (exemptDomain) {
    return { reason: 'dmarc-exempt', evidence: { exempt: 'domain', exempt_domain: exemptDomain } };
  }
  if (input.clientExempt) return { reason: 'dmarc-exempt', evidence: { exempt: 'network' } };

  const sealer = message.arc.sealer;
  if (message.arc.result === 'pass' && sealer
    && input.trustedSealers.some((trusted) => withinDomain(sealer, trusted))) {
    return {
      reason: 'dmarc-arc-override',
      evidence: { override: 'arc', sealer, arc_instance: message.arc.instance },
    };
  }
  return null;
}

/** Attaches the action the policy allows for a result that asks for `wanted`. */
function applyAction(
  record: CheckResult, policy: AuthPolicy, wanted: 'reject' | 'quarantine' | 'tag',
  reason: ReasonCode, tags: string[], tagText: string,
): void {
  record.reason = reason;
  if (policy === 'off') {
    record.evidence = { ...record.evidence, enforced: false, policy_mode: 'off' };
    delete record.reason;
    record.evidence['would'] = reason;
    return;
  }
  if (policy === 'tag' || wanted === 'tag') {
    record.action = 'tag';
    record.reason = 'auth-tagged';
    record.evidence = { ...record.evidence, would: reason };
    tags.push(tagText);
    return;
  }
  record.action = wanted;
}

function hasTemperror(evaluation: AuthEvaluation): boolean {
  if (evaluation.spf?.result === 'temperror') return true;
  return evaluation.message?.dkim.some((signature) => signature.result === 'temperror') ?? false;
}

function withinDomain(domain: string, parent: string): boolean {
  return domain === parent || domain.endsWith(`.${parent}`);
}

function dkimWord(word: DkimWord): ResultWord {
  // RFC 8601 `policy` (weak key, rsa-sha1, l= with unsigned content) is not a pass.
  return word === 'policy' ? 'fail' : word;
}
