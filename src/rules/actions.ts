/*
 * What a rules outcome does to a message, as pure functions the Haraka plugin applies:
 * - the CheckResults recorded in the verdict (`rule:<id>`), which is where the rules meet the
 *   other checks' decisions;
 * - the changes to the delivered copy (subject tag, headers added and removed, recipients
 *   replaced by a redirect);
 * - the side effects (copies to a mailbox, notifications), and the text of a notification.
 *
 * When side effects happen (docs/rules.md, "When side effects happen"): copies and
 * notifications of a delivered message are sent after the internal server accepted it, of a
 * quarantined one after it was stored; the tag and headers change only a delivered copy (a
 * quarantine record lists them); a redirect replaces the recipients of either;
 * for a refused message (reject) only notifications are sent, before the client gets the
 * refusal; for a deferred message (tempfail) nothing is sent, since the client will retry.
 */

import type { Action, ReasonCode } from '../verdict/reasons';
import type { CheckResult } from '../verdict/verdict';
import { maskSensitive } from './detectors';
import type { RuleReport, RulesOutcome } from './engine';
import { describeActions } from './engine';
import type { Rule } from './schema';

export interface RuleEffects {
  /** Tags to put before the subject, in rule order. */
  subjectTags: string[];
  addHeaders: Array<[string, string]>;
  removeHeaders: string[];
  /** When set, the message goes to these recipients instead of the envelope's. */
  redirectTo: string[] | null;
  copies: Array<{ rule: Rule; addresses: string[] }>;
  notifications: Array<{ rule: Rule; addresses: string[]; subject: string }>;
}

const FINAL_TO_VERDICT: Record<string, { action: Action; reason: ReasonCode } | undefined> = {
  reject: { action: 'reject', reason: 'rule-reject' },
  tempfail: { action: 'tempfail', reason: 'rule-tempfail' },
  quarantine: { action: 'quarantine', reason: 'rule-quarantine' },
};

/** The label of a rule's action in metrics and logs: its final action, `tag`, or `other`. */
export function actionLabel(rule: Rule): string {
  if (rule.final) return rule.final;
  return rule.actions.some((action) => action.kind === 'tag_subject') ? 'tag' : 'other';
}

function evidenceOf(report: RuleReport, version: string): Record<string, unknown> {
  return {
    rule: report.rule.id,
    mode: report.rule.mode,
    version,
    where: report.rule.where,
    matched: report.evidence.map(
      (entry) => (entry.matched ? `${entry.condition}: ${entry.matched}` : entry.condition)),
    actions: describeActions(report.rule),
  };
}

/** The CheckResults to record: one per matched rule, enforce or monitor. */
export function checkResults(outcome: RulesOutcome): CheckResult[] {
  const results: CheckResult[] = [];
  for (const report of outcome.fired) {
    const rule = report.rule;
    const final = rule.final ? FINAL_TO_VERDICT[rule.final] : undefined;
    const finalAction = outcome.final?.rule === rule ? outcome.final.action : null;
    const tags = !final && rule.actions.some((action) => action.kind === 'tag_subject');
    results.push({
      check: `rule:${rule.id}`,
      result: final ? 'fail' : 'neutral',
      ...(final ? { action: final.action, reason: final.reason } : {}),
      ...(tags ? { action: 'tag' as const, reason: 'rule-tag' as const } : {}),
      ...(finalAction && (finalAction.kind === 'reject' || finalAction.kind === 'tempfail')
        ? { reply: { ...finalAction.reply } } : {}),
      evidence: evidenceOf(report, outcome.version),
    });
  }
  for (const report of outcome.monitored) {
    results.push({
      check: `rule:${report.rule.id}`, result: 'neutral',
      evidence: evidenceOf(report, outcome.version),
    });
  }
  return results;
}

/** What goes on the decision line: the set version and each matched rule with its mode. */
export function logSummary(outcome: RulesOutcome): Record<string, unknown> {
  return {
    version: outcome.version,
    direction: outcome.direction,
    fired: outcome.fired.map((report) => `${report.rule.id}(enforce:${actionLabel(report.rule)})`),
    monitored: outcome.monitored
      .map((report) => `${report.rule.id}(monitor:${actionLabel(report.rule)})`),
    ms: Math.round(outcome.elapsedMs * 100) / 100,
  };
}

export function plannedEffects(outcome: RulesOutcome): RuleEffects {
  const effects: RuleEffects = {
    subjectTags: [], addHeaders: [], removeHeaders: [], redirectTo: null, copies: [],
    notifications: [],
  };
  for (const { rule, action } of outcome.actions) {
    switch (action.kind) {
      case 'tag_subject':
        if (!effects.subjectTags.includes(action.tag)) effects.subjectTags.push(action.tag);
        break;
      case 'add_header':
        effects.addHeaders.push([action.name, action.value]);
        break;
      case 'remove_header':
        effects.removeHeaders.push(action.name);
        break;
      case 'redirect':
        effects.redirectTo = [...new Set([...(effects.redirectTo ?? []), ...action.addresses])];
        break;
      case 'copy_to':
        effects.copies.push({ rule, addresses: action.addresses });
        break;
      case 'notify':
        effects.notifications.push({ rule, addresses: action.addresses, subject: action.subject });
        break;
      default:
        break;
    }
  }
  return effects;
}

/** The subject with the tags in front, each only once. */
export function taggedSubject(subject: string, tags: string[]): string {
  let result = subject;
  for (const tag of [...tags].reverse()) {
    if (!result.startsWith(tag)) result = `${tag} ${result}`.trimEnd();
  }
  return result;
}

export interface NotificationFacts {
  from: string;
  to: string[];
  rule: Rule;
  subject: string;
  outcome: string;
  envelope: { sender: string; recipients: string[] };
  messageSubject: string;
  messageId: string;
  evidence: string[];
  hostname: string;
  now: Date;
}

/**
 * A short plain-text message telling a compliance contact that a rule matched. The message's
 * subject is masked like the evidence (which conditions.ts masked already).
 */
export function notificationMessage(facts: NotificationFacts): Buffer {
  const clean = (text: string): string => text.replace(/[^\x20-\x7e]/g, '?').slice(0, 200);
  const subject = facts.subject || `[Moat] rule ${facts.rule.id} matched: ${facts.outcome}`;
  const lines = [
    `From: Moat mail gateway <${facts.from}>`,
    `To: ${facts.to.map((address) => `<${address}>`).join(', ')}`,
    `Subject: ${clean(subject)}`,
    `Date: ${facts.now.toUTCString().replace('GMT', '+0000')}`,
    `Message-ID: <moat-notify-${facts.now.getTime().toString(36)}-`
      + `${Math.random().toString(36).slice(2, 10)}@${facts.hostname}>`,
    'Auto-Submitted: auto-generated',
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=us-ascii',
    'Content-Transfer-Encoding: 7bit',
    '',
    `Rule ${facts.rule.id} (${facts.rule.description}) matched a message.`,
    `Owner: ${facts.rule.owner}`,
    `What happened: ${facts.outcome}`,
    '',
    `Envelope sender: <${clean(facts.envelope.sender)}>`,
    `Recipients: ${facts.envelope.recipients.map(clean).join(', ')}`,
    `Subject: ${clean(maskSensitive(facts.messageSubject))}`,
    `Message-ID: ${clean(facts.messageId)}`,
    '',
    'Why (sensitive values are masked):',
    ...facts.evidence.map((line) => `  - ${clean(line)}`),
    '',
  ];
  return Buffer.from(lines.map((line) => line.slice(0, 990)).join('\r\n'), 'latin1');
}
