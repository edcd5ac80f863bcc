/*
 * `moat rules test`: runs the test cases kept beside the rules, in <rules>/tests/*.yaml.
 *
 * A case names a sample message (.eml, relative to the test file), its envelope, optionally
 * the results of the other checks and the direction, and what must happen: rules that must
 * fire, rules that must not, the final action, and non-final actions. Cases are validated
 * like rule files (file:line:column for every mistake). A case fails with a sentence saying
 * what was expected and what happened; the run fails if any case fails.
 */

import { BlockList, isIP } from 'node:net';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Node } from 'yaml';
import type { CheckResult, ResultWord } from '../verdict/verdict';
import { runRules, type RulesOutcome } from './engine';
import { formatProblem, type RuleProblem } from './errors';
import { fromRawMessage } from './message';
import { directionOf } from './runtime';
import type { RuleSet } from './schema';
import { YamlFile } from './yaml-node';

const CASE_KEYS = ['name', 'message', 'envelope', 'direction', 'checks', 'now', 'expect'] as const;
const EXPECT_KEYS = ['fire', 'not_fire', 'final', 'actions'] as const;
const FINALS = ['reject', 'tempfail', 'quarantine', 'deliver', 'none'] as const;
/** The client of a case that names none: a documentation address, so not internal. */
export const DEFAULT_CLIENT_IP = '203.0.113.7';

export interface TestContext {
  acceptedDomains: Set<string>;
  internalNetworks: BlockList;
  maxTextChars: number;
}

export interface CaseResult {
  file: string;
  name: string;
  passed: boolean;
  failures: string[];
  outcome: RulesOutcome | null;
}

export interface TestRun {
  cases: CaseResult[];
  problems: RuleProblem[];
}

export function runRuleTests(set: RuleSet, context: TestContext): TestRun {
  const testDir = join(set.dir, 'tests');
  const run: TestRun = { cases: [], problems: [] };
  if (!existsSync(testDir)) return run;
  for (const name of readdirSync(testDir).filter((file) => /\.ya?ml$/.test(file)).sort()) {
    const yaml = new YamlFile(`tests/${name}`, readFileSync(join(testDir, name), 'utf8'));
    runFile(yaml, join(testDir, name), set, context, run);
    run.problems.push(...yaml.problems);
  }
  return run;
}

function runFile(
  yaml: YamlFile, path: string, set: RuleSet, context: TestContext, run: TestRun,
): void {
  if (!yaml.root) return;
  const top = yaml.map(yaml.root, ['cases', 'accepted_domains', 'internal_networks'],
    'a test file');
  const cases = top?.get('cases') ? yaml.sequence(top.get('cases')?.value, 'cases') : null;
  if (!top || !cases) {
    if (top && !top.get('cases')) {
      yaml.problem(yaml.root, 'no "cases:" key', 'cases: followed by a list of test cases');
    }
    return;
  }
  const accepted = top.get('accepted_domains')
    ? new Set((yaml.strings(top.get('accepted_domains')?.value, 'accepted_domains') ?? [])
      .map((entry) => entry.text.toLowerCase()))
    : context.acceptedDomains;
  let networks = context.internalNetworks;
  if (top.get('internal_networks')) {
    networks = new BlockList();
    for (const entry of
      yaml.strings(top.get('internal_networks')?.value, 'internal_networks') ?? []) {
      const [address = '', bits] = entry.text.split('/');
      const family = isIP(address) === 6 ? 'ipv6' : 'ipv4';
      if (!isIP(address)) {
        yaml.problem(entry.node, `"${entry.text}" is not a network`, 'a CIDR network');
      } else if (bits === undefined) networks.addAddress(address, family);
      else networks.addSubnet(address, Number(bits), family);
    }
  }
  for (const node of cases) {
    const before = yaml.problems.length;
    const result = runCase(yaml, node, dirname(path), set, {
      ...context, acceptedDomains: accepted, internalNetworks: networks,
    });
    if (result && yaml.problems.length === before) run.cases.push(result);
  }
}

function runCase(
  yaml: YamlFile, node: Node, baseDir: string, set: RuleSet, context: TestContext,
): CaseResult | null {
  const fields = yaml.map(node, CASE_KEYS, 'a test case');
  if (!fields) return null;
  const name = yaml.string(fields.get('name')?.value, 'name') ?? yaml.where(node);
  const messagePath = yaml.string(fields.get('message')?.value, 'message');
  const envelopeFields = yaml.map(fields.get('envelope')?.value, ['from', 'to', 'client'],
    'envelope');
  const expectFields = yaml.map(fields.get('expect')?.value, EXPECT_KEYS, 'expect');
  if (messagePath === null || !envelopeFields || !expectFields) return null;

  const file = resolve(baseDir, messagePath);
  if (!existsSync(file)) {
    yaml.problem(fields.get('message')?.value, `sample ${messagePath} does not exist`,
      'a path relative to the test file');
    return null;
  }
  const sender = envelopeFields.get('from')
    ? yaml.string(envelopeFields.get('from')?.value, 'from', { allowEmpty: true }) ?? ''
    : '';
  const recipients = (yaml.strings(envelopeFields.get('to')?.value, 'to') ?? [])
    .map((entry) => entry.text);
  const clientIp = envelopeFields.get('client')
    ? yaml.string(envelopeFields.get('client')?.value, 'client') ?? ''
    : DEFAULT_CLIENT_IP;
  const directionNode = fields.get('direction')?.value;
  const direction = directionNode ? yaml.string(directionNode, 'direction') : null;
  if (direction !== null && direction !== 'inbound' && direction !== 'outbound') {
    yaml.problem(directionNode, `direction "${direction}" is not known`, 'inbound or outbound');
  }
  const results: CheckResult[] = [];
  for (const item of fields.get('checks')
    ? yaml.sequence(fields.get('checks')?.value, 'checks') ?? [] : []) {
    const check = yaml.map(item, ['check', 'result', 'action', 'score', 'signature'],
      'a check result');
    if (!check) continue;
    const score = check.get('score') ? yaml.number(check.get('score')?.value, 'score') : null;
    const signature = check.get('signature')
      ? yaml.string(check.get('signature')?.value, 'signature') : null;
    results.push({
      check: yaml.string(check.get('check')?.value, 'check') ?? '',
      result: (yaml.string(check.get('result')?.value, 'result') ?? 'none') as ResultWord,
      ...(check.get('action')
        ? { action: yaml.string(check.get('action')?.value, 'action') as CheckResult['action'] }
        : {}),
      // Shaped as the real checks record them: spamd's `score`, clamd's `signatures` list.
      evidence: {
        ...(score !== null ? { score } : {}),
        ...(signature !== null ? { signatures: [signature] } : {}),
      },
    });
  }
  const nowNode = fields.get('now')?.value;
  const nowText = nowNode ? yaml.string(nowNode, 'now') : null;
  const now = nowText ? Date.parse(nowText) : Date.now();
  if (nowText && Number.isNaN(now)) {
    yaml.problem(nowNode, `now "${nowText}" is not a date`, 'YYYY-MM-DD');
  }

  const ids = (key: string): string[] => (expectFields.get(key)
    ? (yaml.strings(expectFields.get(key)?.value, key) ?? []).map((entry) => entry.text) : []);
  const fire = ids('fire');
  const notFire = ids('not_fire');
  const actions = ids('actions');
  for (const id of [...fire, ...notFire]) {
    if (!set.rules.some((rule) => rule.id === id)) {
      yaml.problem(expectFields.get(fire.includes(id) ? 'fire' : 'not_fire')?.value,
        `no rule "${id}" in the set`, 'the id of a rule');
    }
  }
  const finalNode = expectFields.get('final')?.value;
  const final = finalNode ? yaml.string(finalNode, 'final') : null;
  if (final !== null && !(FINALS as readonly string[]).includes(final)) {
    yaml.problem(finalNode, `final "${final}" is not known`, FINALS.join(', '));
  }

  const message = fromRawMessage(readFileSync(file));
  const outcome = runRules(set, {
    envelope: { sender, recipients, clientIp }, message, results,
    acceptedDomains: context.acceptedDomains, internalNetworks: context.internalNetworks,
    direction: (direction as 'inbound' | 'outbound' | null)
      ?? directionOf(sender, clientIp, context.acceptedDomains, context.internalNetworks),
    maxTextChars: context.maxTextChars,
  }, { now });

  const fired = new Set([...outcome.fired, ...outcome.monitored].map((report) => report.rule.id));
  const failures: string[] = [];
  for (const id of fire) {
    if (!fired.has(id)) failures.push(`expected rule ${id} to fire; it did not`);
  }
  for (const id of notFire) {
    if (fired.has(id)) failures.push(`expected rule ${id} not to fire; it did`);
  }
  const gotFinal = outcome.final?.action.kind ?? 'none';
  if (final !== null && final !== gotFinal) {
    failures.push(`expected final action ${final}; got ${gotFinal}`
      + `${outcome.final ? ` (rule ${outcome.final.rule.id})` : ''}`);
  }
  const planned = new Set(outcome.actions.map((entry) => entry.action.kind as string));
  for (const kind of actions) {
    if (!planned.has(kind)) {
      failures.push(`expected action ${kind}; planned: ${[...planned].join(', ') || 'none'}`);
    }
  }
  return { file: yaml.file, name, passed: failures.length === 0, failures, outcome };
}

/** The report `moat rules test` prints. */
export function formatTestRun(run: TestRun, set: RuleSet): string[] {
  const lines = [`rule set ${set.version}: ${set.rules.length} rules in ${set.dir}`];
  for (const problem of run.problems) lines.push(`ERROR ${formatProblem(problem)}`);
  for (const result of run.cases) {
    lines.push(`${result.passed ? 'ok  ' : 'FAIL'} ${result.file}: ${result.name}`);
    for (const failure of result.failures) lines.push(`     ${failure}`);
  }
  const failed = run.cases.filter((result) => !result.passed).length;
  lines.push(`${run.cases.length} cases, ${run.cases.length - failed} passed, ${failed} failed`
    + `${run.problems.length ? `, ${run.problems.length} problems in test files` : ''}`);
  return lines;
}
