/*
 * `moat rules test` and `moat rules explain`: the rule author's tools.
 *
 *   moat rules test [--dir DIR]
 *       Loads the rule set (the same validation as start-up) and runs the cases in
 *       DIR/tests/*.yaml. Exit 0 when all pass, 1 when a case fails, 2 when the set or a test
 *       file is invalid.
 *   moat rules explain MESSAGE.eml --from ADDRESS --to ADDRESS [--to ...] [--client IP]
 *       [--direction inbound|outbound] [--check NAME=RESULT ...] [--dir DIR]
 *       Shows every rule, whether it matches and why (sensitive matches masked). Exit 0.
 *
 * DIR defaults to rules.dir of the configuration (MOAT_RULES_DIR). Accepted domains and
 * internal networks come from the configuration too; without a readable configuration, none.
 */

import { existsSync, readFileSync } from 'node:fs';
import { BlockList } from 'node:net';
import { resolve } from 'node:path';
import { loadConfig } from '../config/load';
import type { MoatConfig } from '../config/types';
import type { ResultWord } from '../verdict/verdict';
import { RulesError } from '../rules/errors';
import { explainMessage } from '../rules/explain';
import { loadRuleSet } from '../rules/loader';
import { fromRawMessage } from '../rules/message';
import { directionOf, internalNetworks } from '../rules/runtime';
import type { RuleSet } from '../rules/schema';
import { formatTestRun, runRuleTests } from '../rules/test-runner';

const USAGE = [
  'usage: moat rules test [--dir DIR]',
  '       moat rules explain MESSAGE.eml --from ADDRESS --to ADDRESS [--to ...] [--client IP]',
  '                          [--direction inbound|outbound] [--check NAME=RESULT] [--dir DIR]',
];

interface Output {
  out: (line: string) => void;
  err: (line: string) => void;
}

const STDIO: Output = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
};

export async function runRulesCommand(argv: string[], io: Output = STDIO): Promise<number> {
  const [command, ...rest] = argv;
  const options = parseOptions(rest);
  if (!options || (command !== 'test' && command !== 'explain')) {
    for (const line of USAGE) io.err(line);
    return 2;
  }

  // The configuration gives the folder, the accepted domains and the internal networks.
  const config = tryConfig();
  const dir = resolve(options.single.get('dir') ?? config?.rulesDir ?? 'rules');
  let set: RuleSet;
  try {
    set = loadRuleSet(dir);
  } catch (error) {
    if (!(error instanceof RulesError)) throw error;
    for (const line of error.lines()) io.err(`moat: rules error: ${line}`);
    return 2;
  }
  const acceptedDomains = new Set(config ? [...config.domains.keys()] : []);
  const networks = config ? internalNetworks(config) : new BlockList();
  const maxTextChars = config?.rules.maxTextChars ?? 2 * 1024 * 1024;

  if (command === 'test') {
    const run = runRuleTests(set, { acceptedDomains, internalNetworks: networks, maxTextChars });
    for (const line of formatTestRun(run, set)) io.out(line);
    if (run.problems.length > 0) return 2;
    return run.cases.every((result) => result.passed) ? 0 : 1;
  }

  // explain
  const file = options.positional[0];
  const sender = options.single.get('from');
  if (!file || sender === undefined || options.to.length === 0) {
    for (const line of USAGE) io.err(line);
    return 2;
  }
  if (!existsSync(file)) {
    io.err(`moat: no such message file: ${file}`);
    return 2;
  }
  const clientIp = options.single.get('client') ?? '203.0.113.7';
  const forced = options.single.get('direction');
  if (forced !== undefined && forced !== 'inbound' && forced !== 'outbound') {
    io.err('moat: --direction must be inbound or outbound');
    return 2;
  }
  const { lines } = explainMessage(set, {
    envelope: { sender, recipients: options.to, clientIp },
    message: fromRawMessage(readFileSync(file)),
    direction: forced ?? directionOf(sender, clientIp, acceptedDomains, networks),
    results: options.checks.map(([check, result]) => ({ check, result: result as ResultWord })),
    acceptedDomains, internalNetworks: networks, maxTextChars,
  });
  for (const line of lines) io.out(line);
  return 0;
}

interface Options {
  positional: string[];
  single: Map<string, string>;
  to: string[];
  checks: Array<[string, string]>;
}

function parseOptions(args: string[]): Options | null {
  const options: Options = { positional: [], single: new Map(), to: [], checks: [] };
  for (let index = 0; index < args.length; index++) {
    const arg = args[index] ?? '';
    if (!arg.startsWith('--')) {
      options.positional.push(arg);
      continue;
    }
    const [flag, inline] = arg.slice(2).split(/=(.*)/s, 2) as [string, string | undefined];
    const value = inline ?? args[++index];
    if (value === undefined) return null;
    if (flag === 'to') options.to.push(value);
    else if (flag === 'check') {
      const [name, result] = value.split('=');
      if (!name || !result) return null;
      options.checks.push([name, result]);
    } else if (['from', 'client', 'direction', 'dir'].includes(flag)) {
      options.single.set(flag, value);
    } else return null;
  }
  return options;
}

function tryConfig(): MoatConfig | null {
  try {
    return loadConfig({
      root: process.env['MOAT_ROOT'] ?? process.cwd(), configDir: process.env['MOAT_CONFIG_DIR'],
    });
  } catch {
    return null;
  }
}
