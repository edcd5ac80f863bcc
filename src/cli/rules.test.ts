/*
 * `moat rules test` and `moat rules explain` as a compliance officer sees them: the lines they
 * print and their exit codes, over the shipped rule set and over small sets written here.
 */

import { strict as assert } from 'node:assert';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { runRulesCommand } from './rules';

const RULES = resolve(__dirname, '..', '..', '..', 'rules');

async function run(argv: string[]): Promise<{ code: number; out: string[]; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runRulesCommand(argv, {
    out: (line) => out.push(line), err: (line) => err.push(line),
  });
  return { code, out, err };
}

/** A rules folder with one rule file and one test file. */
function ruleDir(rules: string, tests: string, samples: Record<string, string> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'moat-rules-cli-'));
  writeFileSync(join(dir, 'policy.yaml'), rules);
  mkdirSync(join(dir, 'tests', 'samples'), { recursive: true });
  writeFileSync(join(dir, 'tests', 'cases.yaml'), tests);
  for (const [name, text] of Object.entries(samples)) {
    writeFileSync(join(dir, 'tests', 'samples', name), text);
  }
  return dir;
}

const SUBJECT_RULE = [
  'rules:',
  '  - id: refuse-secret-subject',
  '    description: Refuse mail whose subject says secret',
  '    owner: compliance@example.com',
  '    mode: enforce',
  '    direction: any',
  '    when:',
  '      subject: { contains: secret }',
  '    actions:',
  '      - reject: "no secrets by mail"',
  '',
].join('\n');

const SAMPLE = 'From: a@example.org\r\nTo: b@example.com\r\n'
  + 'Subject: our secret plan\r\n\r\nbody\r\n';

test('rules test over the shipped set: one ok line per case and a summary, exit 0', async () => {
  const { code, out, err } = await run(['test', '--dir', RULES]);
  assert.deepEqual(err, []);
  assert.equal(code, 0, out.join('\n'));
  const summary = /^(\d+) cases, (\d+) passed, 0 failed/.exec(out.at(-1) ?? '');
  assert.ok(summary, out.at(-1));
  assert.equal(summary[1], summary[2]);
  assert.equal(out.filter((line) => line.startsWith('ok   ')).length, Number(summary[1]));
});

test('rules test: a case whose expectation is wrong fails with the reason, exit 1', async () => {
  const dir = ruleDir(SUBJECT_RULE, [
    'cases:',
    '  - name: the secret subject is refused',
    '    message: samples/secret.eml',
    '    envelope: { from: a@example.org, to: [b@example.com] }',
    '    expect: { fire: [refuse-secret-subject], final: reject }',
    '  - name: wrongly expects the message to pass',
    '    message: samples/secret.eml',
    '    envelope: { from: a@example.org, to: [b@example.com] }',
    '    expect: { not_fire: [refuse-secret-subject] }',
    '',
  ].join('\n'), { 'secret.eml': SAMPLE });
  const { code, out } = await run(['test', '--dir', dir]);
  assert.equal(code, 1, out.join('\n'));
  assert.ok(out.includes('ok   tests/cases.yaml: the secret subject is refused'), out.join('\n'));
  const failed = out.findIndex(
    (line) => line === 'FAIL tests/cases.yaml: wrongly expects the message to pass');
  assert.ok(failed >= 0, out.join('\n'));
  assert.match(out[failed + 1] ?? '', /refuse-secret-subject/);
  assert.match(out.at(-1) ?? '', /^2 cases, 1 passed, 1 failed/);
});

test('rules test: an invalid rule file is refused with file:line:column, exit 2', async () => {
  const broken = SUBJECT_RULE.replace('{ contains: secret }', '{ regex: "secret(" }');
  const dir = ruleDir(broken, 'cases: []\n');
  const { code, out, err } = await run(['test', '--dir', dir]);
  assert.equal(code, 2);
  assert.deepEqual(out, []);
  assert.equal(err.length, 1, err.join('\n'));
  assert.match(err[0] ?? '', /^moat: rules error: .*policy\.yaml:8:\d+: bad regular expression/);
});

test('rules explain: the matching rule, its condition and the card number masked', async () => {
  const { code, out } = await run(['explain', join(RULES, 'tests', 'samples', 'card-number.eml'),
    '--dir', RULES, '--from', 'alice@example.com', '--to', 'shop@merchant.example',
    '--direction', 'outbound']);
  assert.equal(code, 0);
  const text = out.join('\n');
  assert.match(text,
    /^MATCH +quarantine-outbound-card-numbers \(enforce, outbound, order 100\) -> quarantine$/m);
  assert.match(text, /payment_card \*+1111/);
  assert.doesNotMatch(text, /4111[ -]?1111[ -]?1111/, 'the card number is shown unmasked');
  assert.match(out.at(-1) ?? '', /^final: quarantine by quarantine-outbound-card-numbers/);
});

test('rules explain: a missing message file or missing --from is a usage error, '
  + 'exit 2', async () => {
  const missing = await run(['explain', '/nonexistent/message.eml', '--dir', RULES,
    '--from', 'a@example.org', '--to', 'b@example.com']);
  assert.equal(missing.code, 2);
  assert.match(missing.err.join('\n'), /no such message file: \/nonexistent\/message\.eml/);
  const sample = join(RULES, 'tests', 'samples', 'plain-pdf.eml');
  const noSender = await run(['explain', sample, '--dir', RULES, '--to', 'b@example.com']);
  assert.equal(noSender.code, 2);
  assert.match(noSender.err[0] ?? '', /^usage: moat rules test/);
});
