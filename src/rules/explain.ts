/*
 * `moat rules explain`: which rules match a message and why, as text for a person.
 *
 * Every rule is listed with what happened to it (matched, not matched, disabled, expired,
 * other direction, not reached after a final rule) and, for those evaluated, every condition
 * with whether it held and the text it matched. Card numbers, IBANs, SSNs and access key ids
 * are masked wherever they appear, in the subject as in what a condition matched (card
 * numbers show their last four digits, IBANs their country, check digits and last four).
 */

import { maskSensitive } from './detectors';
import { describeActions, runRules, type RulesOutcome } from './engine';
import type { EvaluationInput } from './facts';
import type { RuleSet } from './schema';

const STATUS_WORDS: Record<string, string> = {
  'matched': 'MATCH', 'not-matched': 'no', 'disabled': 'off', 'expired': 'expired',
  'other-direction': 'skip', 'after-final': 'after',
};

export function explainMessage(
  set: RuleSet, input: EvaluationInput, now = Date.now(),
): { lines: string[]; outcome: RulesOutcome } {
  const outcome = runRules(set, input, { explain: true, now });
  const lines = [
    `rule set ${set.version}: ${set.rules.length} rules in ${set.dir}`,
    `message: ${input.message.size} bytes, `
      + `subject ${JSON.stringify(maskSensitive(input.message.subject).slice(0, 80))}, `
      + `${input.message.attachments.length} attachment(s)`,
    `envelope: from <${input.envelope.sender}> `
      + `to ${input.envelope.recipients.map((r) => `<${r}>`).join(' ')}, `
      + `client ${input.envelope.clientIp}, direction ${input.direction}`,
    '',
  ];
  for (const report of outcome.reports) {
    const rule = report.rule;
    const word = (STATUS_WORDS[report.status] ?? report.status).padEnd(7);
    lines.push(`${word} ${rule.id} (${rule.mode}, ${rule.direction}, order ${rule.order}) `
      + `-> ${describeActions(rule).join(', ')}`);
    lines.push(`        ${rule.where}: ${rule.description}`);
    if (report.status === 'expired') lines.push(`        expired after ${rule.expires}`);
    if (report.status === 'other-direction') lines.push(`        only for ${rule.direction} mail`);
    if (report.status === 'after-final') {
      lines.push(`        not applied: ${outcome.final?.rule.id} decided first `
        + `(final ${outcome.final?.action.kind})`);
    }
    for (const entry of report.trace ?? []) {
      const matched = entry.holds && entry.matched ? `  matched: ${entry.matched}` : '';
      lines.push(`        ${entry.holds ? 'yes' : 'no '} `
        + `${'  '.repeat(entry.depth)}${entry.condition}${matched}`);
    }
  }
  lines.push('');
  lines.push(outcome.final
    ? `final: ${outcome.final.action.kind} by ${outcome.final.rule.id}`
    : 'final: none (the rules leave the decision to the other checks)');
  if (outcome.actions.length) {
    lines.push(`also: ${outcome.actions
      .map((entry) => `${entry.action.kind} (${entry.rule.id})`).join(', ')}`);
  }
  if (outcome.monitored.length) {
    lines.push(`monitor only: ${outcome.monitored.map((report) => report.rule.id).join(', ')}`);
  }
  return { lines, outcome };
}
