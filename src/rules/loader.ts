/*
 * Loads the rule set from the rules folder (MOAT_RULES_DIR, default rules/):
 * - every `*.yaml` / `*.yml` file directly in the folder holds rules;
 * - `lists/<name>.txt` holds one entry per line (domains, addresses, keywords), `#` comments;
 * - `tests/` holds the rule test cases (read by `moat rules test`, not here).
 *
 * The set is all or nothing: any problem in any file refuses the whole set with a RulesError
 * listing every problem with file:line:column. The version is a short SHA-256 over the names
 * and bytes of every rule and list file, so a log line names exactly which files decided.
 */

import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { compileRuleFile } from './compile';
import { RulesError, type RuleProblem } from './errors';
import type { Rule, RuleSet } from './schema';
import { YamlFile } from './yaml-node';

const LIST_NAME = /^[a-z0-9][a-z0-9_-]{0,63}$/;
const MAX_LIST_ENTRIES = 100_000;

export function loadRuleSet(dir: string, now = Date.now()): RuleSet {
  const problems: RuleProblem[] = [];
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new RulesError(dir, [{ file: dir, line: 0, column: 0,
      message: 'the rules folder does not exist',
      expected: 'a folder of *.yaml rule files (MOAT_RULES_DIR)' }]);
  }
  const hash = createHash('sha256');

  // Lists first: rules refer to them by name.
  const lists = new Map<string, string[]>();
  const listDir = join(dir, 'lists');
  for (const name of existsSync(listDir) ? readdirSync(listDir).sort() : []) {
    if (!name.endsWith('.txt')) continue;
    const listName = name.slice(0, -4);
    const file = `lists/${name}`;
    if (!LIST_NAME.test(listName)) {
      problems.push({ file, line: 0, column: 0, message: `list name "${listName}" is not allowed`,
        expected: 'lower-case letters, digits, dashes and underscores' });
      continue;
    }
    const text = readFileSync(join(listDir, name), 'utf8');
    hash.update(`\0${file}\0${text}`);
    const entries = text.split(/\r?\n/).map((line) => line.replace(/#.*$/, '').trim())
      .filter(Boolean);
    if (entries.length > MAX_LIST_ENTRIES) {
      problems.push({ file, line: MAX_LIST_ENTRIES + 1, column: 1,
        message: `list has ${entries.length} entries`, expected: `at most ${MAX_LIST_ENTRIES}` });
    }
    lists.set(listName, entries);
  }

  // Then every rule file, all problems collected.
  const files = readdirSync(dir).filter((name) => /\.ya?ml$/.test(name)).sort();
  const rules: Rule[] = [];
  const seen = new Map<string, string>();
  for (const file of files) {
    const text = readFileSync(join(dir, file), 'utf8');
    hash.update(`\0${file}\0${text}`);
    const yaml = new YamlFile(file, text);
    const compiled = compileRuleFile(yaml, { lists });
    problems.push(...yaml.problems);
    for (const rule of compiled) {
      const earlier = seen.get(rule.id);
      if (earlier) {
        const [line, column] = rule.where.split(':').slice(-2).map(Number);
        problems.push({ file, line: line ?? 0, column: column ?? 0,
          message: `rule id "${rule.id}" is already used at ${earlier}`,
          expected: 'a unique id per rule' });
        continue;
      }
      seen.set(rule.id, rule.where);
      rules.push(rule);
    }
  }
  if (problems.length > 0) throw new RulesError(dir, problems);

  rules.sort((a, b) => a.order - b.order || a.id.localeCompare(b.id));
  return {
    rules, version: hash.digest('hex').slice(0, 12), dir, files, loadedAt: now,
  };
}

/** Rules that are expired at `now`: start-up and reload log them once. */
export function expiredRules(set: RuleSet, now = Date.now()): Rule[] {
  return set.rules.filter((rule) => rule.expiresAt !== null && rule.expiresAt < now);
}
