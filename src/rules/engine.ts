/*
 * Runs a rule set over one message and says what the rules decided.
 *
 * Order and precedence (docs/rules.md, "How rules combine"):
 * - Rules run in `order`, then by id. Disabled rules, expired rules, and rules for the other
 *   direction are skipped.
 * - An enforce rule that matches contributes all its actions. If it has a final action
 *   (reject, tempfail, quarantine, deliver), evaluation of enforce rules stops there: later
 *   enforce rules are not evaluated, so the first final rule in order wins.
 * - Non-final actions (tag_subject, add_header, remove_header, copy_to, redirect, notify) of
 *   every enforce rule matched up to and including the final one are kept.
 * - Monitor rules are always evaluated (even after a final rule) and only recorded.
 *
 * The rules' outcome then meets the other checks in the one verdict (src/verdict): a rule's
 * reject is as strong as any reject; a rule's `deliver` only stops the rules and never
 * overrides another check (a virus found is still refused).
 */

import type { Evidence, TraceEntry } from './conditions';
import { evaluate } from './conditions';
import { MessageFacts, type EvaluationInput } from './facts';
import type { Rule, RuleAction, RuleSet } from './schema';

export type RuleStatus =
  | 'matched' | 'not-matched' | 'disabled' | 'expired' | 'other-direction' | 'after-final';

export interface RuleReport {
  rule: Rule;
  status: RuleStatus;
  /** For matched rules: the conditions that held and the text they matched. */
  evidence: Evidence[];
  /** With explain: every condition evaluated. */
  trace?: TraceEntry[];
}

export interface RulesOutcome {
  version: string;
  direction: 'inbound' | 'outbound';
  /** Enforce rules that matched, in order; their actions apply. */
  fired: RuleReport[];
  /** Monitor rules that matched: recorded only. */
  monitored: RuleReport[];
  /** The final action that stopped the rules, and its rule. */
  final: { rule: Rule; action: RuleAction } | null;
  /** Non-final actions to carry out, in rule order. */
  actions: Array<{ rule: Rule; action: RuleAction }>;
  /** Every rule with what happened to it (only filled with `explain`). */
  reports: RuleReport[];
  elapsedMs: number;
}

export interface EngineOptions {
  now?: number;
  /** Evaluate every rule fully and keep a trace of every condition. */
  explain?: boolean;
}

export function runRules(
  set: RuleSet, input: EvaluationInput, options: EngineOptions = {},
): RulesOutcome {
  const started = performance.now();
  const now = options.now ?? Date.now();
  const facts = new MessageFacts(input);
  const outcome: RulesOutcome = {
    version: set.version, direction: input.direction, fired: [], monitored: [], final: null,
    actions: [], reports: [], elapsedMs: 0,
  };

  for (const rule of set.rules) {
    const skipped = skipReason(rule, input.direction, now);
    const afterFinal = outcome.final !== null && rule.mode === 'enforce';
    if (skipped || (afterFinal && !options.explain)) {
      if (options.explain) {
        outcome.reports.push({ rule, status: skipped ?? 'after-final', evidence: [] });
      }
      continue;
    }

    const trace: TraceEntry[] | undefined = options.explain ? [] : undefined;
    const evidence = evaluate(rule.when, facts, trace ? { trace } : {});
    const status: RuleStatus = afterFinal ? 'after-final' : evidence ? 'matched' : 'not-matched';
    const report: RuleReport = {
      rule, status, evidence: evidence ?? [], ...(trace ? { trace } : {}),
    };
    if (options.explain) outcome.reports.push(report);
    if (!evidence || afterFinal) continue;

    if (rule.mode === 'monitor') {
      outcome.monitored.push(report);
      continue;
    }
    outcome.fired.push(report);
    for (const action of rule.actions) {
      if (action.kind === rule.final) outcome.final = { rule, action };
      else outcome.actions.push({ rule, action });
    }
  }
  outcome.elapsedMs = performance.now() - started;
  return outcome;
}

function skipReason(rule: Rule, direction: 'inbound' | 'outbound', now: number): RuleStatus | null {
  if (!rule.enabled) return 'disabled';
  if (rule.expiresAt !== null && rule.expiresAt < now) return 'expired';
  if (rule.direction !== 'any' && rule.direction !== direction) return 'other-direction';
  return null;
}

/** What a rule would do, in words, for logs and explain output. */
export function describeActions(rule: Rule): string[] {
  return rule.actions.map((action) => {
    switch (action.kind) {
      case 'reject':
      case 'tempfail':
        return `${action.kind} ${action.reply.code} ${action.reply.enhanced}`;
      case 'quarantine': return 'quarantine';
      case 'deliver': return 'deliver';
      case 'tag_subject': return `tag_subject ${action.tag}`;
      case 'add_header': return `add_header ${action.name}`;
      case 'remove_header': return `remove_header ${action.name}`;
      case 'copy_to': return `copy_to ${action.addresses.join(',')}`;
      case 'redirect': return `redirect ${action.addresses.join(',')}`;
      case 'notify': return `notify ${action.addresses.join(',')}`;
    }
  });
}
