/*
 * The one verdict per message.
 *
 * Every check records a CheckResult in one vocabulary (the RFC 8601 words pass, fail,
 * softfail, neutral, none, temperror, permerror, plus skip and error) with its evidence, and
 * may ask for an action. decide() turns all of them into exactly one action, one reason code
 * and one SMTP reply. Checks never answer the client themselves.
 *
 * Precedence, strongest first: reject, tempfail, quarantine, tag, deliver. A certain refusal
 * beats a temporary one (retrying cannot change a virus); a temporary failure beats quarantine
 * because an unscanned message must not be stored as if it had been judged. Among equal
 * actions the first recorded wins, so the pipeline order (connection, envelope, content) is
 * the tie-break and the log names the earliest cause.
 */

import { REASONS, type Action, type ReasonCode, type SmtpReply } from './reasons';

export type ResultWord =
  | 'pass' | 'fail' | 'softfail' | 'neutral' | 'none' | 'temperror' | 'permerror'
  | 'skip' | 'error';

export interface CheckResult {
  /** Short stable name of the check: `relay`, `dirty-data`, `spf`, `clamd`, `rule:<id>`... */
  check: string;
  result: ResultWord;
  /** What the check asks for; absent means it only records. */
  action?: Action;
  reason?: ReasonCode;
  /** Overrides the reason's default reply (e.g. a refusal naming a signature). */
  reply?: SmtpReply;
  evidence?: Record<string, unknown>;
}

export interface Decision {
  action: Action;
  reason: ReasonCode;
  reply: SmtpReply;
  /** The result that decided; absent when nothing objected. */
  decidedBy?: CheckResult;
  results: CheckResult[];
  /** Headers the checks want added to the delivered copy, in order. */
  headers: Array<[string, string]>;
}

const STRENGTH: Record<Action, number> = {
  deliver: 0, tag: 1, quarantine: 2, tempfail: 3, reject: 4,
};

export class Verdict {
  private readonly recorded: CheckResult[] = [];
  private readonly addedHeaders: Array<[string, string]> = [];

  record(result: CheckResult): void {
    this.recorded.push(result);
  }

  addHeader(name: string, value: string): void {
    this.addedHeaders.push([name, value]);
  }

  get results(): readonly CheckResult[] {
    return this.recorded;
  }

  /** True once some check has asked for reject or tempfail: later checks may skip work. */
  get refused(): boolean {
    return this.recorded.some(
      (result) => result.action === 'reject' || result.action === 'tempfail');
  }

  decide(): Decision {
    let strongest: CheckResult | undefined;
    for (const result of this.recorded) {
      if (!result.action || result.action === 'deliver') continue;
      if (!strongest || STRENGTH[result.action] > STRENGTH[strongest.action ?? 'deliver']) {
        strongest = result;
      }
    }

    if (!strongest) {
      return {
        action: 'deliver', reason: 'clean', reply: { ...REASONS.clean.reply },
        results: [...this.recorded], headers: [...this.addedHeaders],
      };
    }

    const action = strongest.action ?? 'deliver';
    const reason = strongest.reason ?? 'internal-error';
    const reply = strongest.reply ?? { ...REASONS[reason].reply };
    return {
      action, reason, reply, decidedBy: strongest,
      results: [...this.recorded], headers: [...this.addedHeaders],
    };
  }
}

/** What a decision line says of how the decision was made: the deciding check and every result. */
export function decisionEvidence(decision: Decision): Record<string, unknown> {
  return {
    decided_by: decision.decidedBy?.check,
    detail: decision.decidedBy?.evidence,
    ...resultsEvidence(decision.results),
  };
}

/**
 * Every result in one word each (`spf=pass`, `clamd=fail(virus)`), and every result's own
 * evidence (SPF, each DKIM signature, DMARC, ARC, each DNS list...), so one line explains the
 * message without the connection's or the scanner's lines.
 */
export function resultsEvidence(results: readonly CheckResult[]): Record<string, unknown> {
  return {
    results: results.map((result) => (result.reason
      ? `${result.check}=${result.result}(${result.reason})`
      : `${result.check}=${result.result}`)),
    checks: results.filter((result) => result.evidence !== undefined)
      .map((result) => ({ check: result.check, result: result.result, evidence: result.evidence })),
  };
}
