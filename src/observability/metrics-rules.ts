/*
 * Metrics of the content-control rules (src/rules): hits per rule, mode and action, rule set
 * loads and refused reloads, the set in use, evaluation time, and the side effects (copies,
 * notifications) carried out or failed. Rule ids are bounded by the rule set and pass through
 * boundedLabel; actions and outcomes come from fixed sets. Evaluation time is
 * moat_check_duration_seconds{check="rules"} (./metrics-checks.ts).
 */

import { Counter, Gauge } from 'prom-client';

import { boundedLabel, registry } from './metrics';
import { observeCheck } from './metrics-checks';

const hitsTotal = new Counter({
  name: 'moat_rule_hits_total',
  help: 'Messages a rule matched, by rule id, mode (enforce, monitor) and action '
    + '(its final action, or tag/other for rules without one).',
  labelNames: ['rule', 'mode', 'action'] as const,
  registers: [registry],
});

const reloadsTotal = new Counter({
  name: 'moat_rules_reloads_total',
  help: 'Rule set loads after a file change: loaded, or refused (the previous set kept running).',
  labelNames: ['outcome'] as const,
  registers: [registry],
});
for (const outcome of ['loaded', 'refused'] as const) reloadsTotal.inc({ outcome }, 0);

const setInfo = new Gauge({
  name: 'moat_rules_set_info',
  help: 'The rule set in use: 1 for its version (a hash of the rule and list files).',
  labelNames: ['version'] as const,
  // Every cluster worker loads the same files: one answer per node, not the sum.
  aggregator: 'max',
  registers: [registry],
});

const rulesLoaded = new Gauge({
  name: 'moat_rules_loaded',
  help: 'Rules in the set in use, by state (active, disabled, expired).',
  labelNames: ['state'] as const,
  aggregator: 'max',
  registers: [registry],
});

const sideEffectsTotal = new Counter({
  name: 'moat_rule_side_effects_total',
  help: 'Copies and notifications sent by rules, by kind (copy, notify) '
    + 'and outcome (sent, failed).',
  labelNames: ['kind', 'outcome'] as const,
  registers: [registry],
});

for (const kind of ['copy', 'notify'] as const) {
  for (const outcome of ['sent', 'failed'] as const) sideEffectsTotal.inc({ kind, outcome }, 0);
}

export function countRuleHit(rule: string, mode: 'enforce' | 'monitor', action: string): void {
  hitsTotal.inc({
    rule: boundedLabel('rule', rule), mode, action: boundedLabel('rule_action', action),
  });
}

export function countRulesReload(outcome: 'loaded' | 'refused'): void {
  reloadsTotal.inc({ outcome });
}

export function setRuleSetInUse(
  version: string, counts: { active: number; disabled: number; expired: number },
): void {
  setInfo.reset();
  setInfo.set({ version: boundedLabel('rules_version', version) }, 1);
  for (const [state, count] of Object.entries(counts)) rulesLoaded.set({ state }, count);
}

export function observeRulesEvaluation(seconds: number): void {
  observeCheck('rules', seconds);
}

export function countRuleSideEffect(kind: 'copy' | 'notify', outcome: 'sent' | 'failed'): void {
  sideEffectsTotal.inc({ kind, outcome });
}
