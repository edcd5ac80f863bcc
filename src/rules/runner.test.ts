/*
 * The shipped rule set and its test cases (what CI runs), that every shipped rule has a case
 * expecting it to fire, a case that must fail, explain output with masked matches, and the
 * evaluation time of a few hundred rules on a 100 KB message (printed, not asserted: the
 * machine is shared).
 */

import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { BlockList } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { runRulesCommand } from '../cli/rules';
import { runRules } from './engine';
import { explainMessage } from './explain';
import { loadRuleSet } from './loader';
import { fromRawMessage } from './message';
import { runRuleTests } from './test-runner';

const SHIPPED = resolve(__dirname, '..', '..', '..', 'rules');
const context = {
  acceptedDomains: new Set(['example.com']), internalNetworks: new BlockList(),
  maxTextChars: 2_000_000,
};

function capture(): {
  io: { out: (line: string) => void; err: (line: string) => void }; out: string[]; err: string[];
} {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (line) => out.push(line), err: (line) => err.push(line) }, out, err };
}

test('the shipped rules load and every shipped test case passes', async () => {
  const set = loadRuleSet(SHIPPED);
  const run = runRuleTests(set, context);
  assert.deepEqual(run.problems, []);
  assert.ok(run.cases.length >= 17);
  for (const result of run.cases) {
    assert.ok(result.passed, `${result.name}: ${result.failures.join('; ')}`);
  }
  const cli = capture();
  assert.equal(await runRulesCommand(['test', '--dir', SHIPPED], cli.io), 0);
  assert.match(cli.out.at(-1) ?? '', /cases, \d+ passed, 0 failed/);
});

test('every shipped rule has a case that expects it to fire', () => {
  const set = loadRuleSet(SHIPPED);
  const expected = new Set<string>();
  const testDir = join(SHIPPED, 'tests');
  for (const name of readdirSync(testDir).filter((file) => /\.ya?ml$/.test(file))) {
    const cases = (parse(readFileSync(join(testDir, name), 'utf8')) as {
      cases: Array<{ expect: { fire?: string[] } }>;
    }).cases;
    for (const entry of cases) for (const id of entry.expect.fire ?? []) expected.add(id);
  }
  const untested = set.rules.map((rule) => rule.id).filter((id) => !expected.has(id));
  assert.deepEqual(untested, [], 'shipped rules no case expects to fire');
});

test('a case whose expectation is wrong fails the run with a sentence', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'moat-rules-cases-'));
  cpSync(SHIPPED, dir, { recursive: true });
  writeFileSync(join(dir, 'tests', 'wrong.yaml'), 'accepted_domains: [example.com]\ncases:\n'
    + '  - name: wrong on purpose\n    message: samples/plain-pdf.eml\n'
    + '    envelope: { from: a@supplier.example, to: [bob@example.com] }\n'
    + '    expect: { fire: [block-executables], final: reject }\n');
  const cli = capture();
  assert.equal(await runRulesCommand(['test', '--dir', dir], cli.io), 1);
  assert.ok(cli.out.includes('FAIL tests/wrong.yaml: wrong on purpose'), cli.out.join('\n'));
  assert.ok(cli.out.includes('     expected rule block-executables to fire; it did not'));
  assert.ok(cli.out.includes('     expected final action reject; got none'));
});

test('explain names the rule, the condition and the matched text, masked', () => {
  const set = loadRuleSet(SHIPPED);
  const internal = new BlockList();
  internal.addSubnet('10.0.0.0', 8, 'ipv4');
  const message = fromRawMessage(Buffer.from('From: <alice@example.com>\r\nSubject: pay\r\n\r\n'
    + 'card 5555 5555 5555 4444 please\r\n'));
  const { lines } = explainMessage(set, {
    envelope: { sender: 'alice@example.com', recipients: ['x@shop.example'], clientIp: '10.0.0.1' },
    message, direction: 'outbound', results: [], acceptedDomains: context.acceptedDomains,
    internalNetworks: internal, maxTextChars: 1_000_000,
  });
  const text = lines.join('\n');
  assert.match(text,
    /^MATCH {3}quarantine-outbound-card-numbers \(enforce, outbound, order 100\) -> quarantine$/m);
  assert.match(text, new RegExp('yes quarantine-outbound-card-numbers\\.when\\.detector {2}'
    + 'matched: 1 hit: payment_card \\*{12}4444'));
  assert.doesNotMatch(text, /5555 5555/);
  assert.match(text, /^final: quarantine by quarantine-outbound-card-numbers$/m);
});

test('evaluation time: 300 rules on a 100 KB message (measured, printed)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'moat-rules-bench-'));
  const rules: string[] = ['rules:'];
  for (let index = 0; index < 300; index++) {
    const kind = index % 5;
    const when = kind === 0 ? `body: { regex: "wire\\\\s+transfer\\\\s+${index}" }`
      : kind === 1 ? `body: { keywords: [alpha${index}, beta${index}, gamma${index}] }`
        : kind === 2 ? `subject: { contains: "topic-${index}" }`
          : kind === 3 ? `attachment: { name: "*.x${index}" }`
            : `sender: { domain: d${index}.example }`;
    rules.push(`  - id: bench-${index}\n    description: bench\n    owner: o\n`
      + `    mode: ${index % 7 ? 'enforce' : 'monitor'}\n`
      + `    direction: any\n    order: ${index}\n    when: { ${when} }\n`
      + `    actions: [ { add_header: { name: X-B, value: "${index}" } } ]`);
  }
  rules.push('  - id: bench-detectors\n    description: d\n    owner: o\n    mode: enforce\n'
    + '    direction: any\n'
    + '    when: { detector: { name: [payment_card, iban, us_ssn] } }\n'
    + '    actions: [ { tag_subject: "[D]" } ]');
  writeFileSync(join(dir, 'bench.yaml'), `${rules.join('\n')}\n`);
  const set = loadRuleSet(dir);
  const line = 'Lorem ipsum dolor sit amet, consectetur adipiscing elit, 12345 67890 '
    + 'sed do eiusmod.\r\n';
  const body = line.repeat(Math.ceil(100_000 / line.length));
  const message = fromRawMessage(
    Buffer.from(`From: <a@b.example>\r\nSubject: hello\r\n\r\n${body}`));
  const input = {
    envelope: { sender: 'a@b.example', recipients: ['bob@example.com'], clientIp: '198.51.100.1' },
    message, direction: 'inbound' as const, results: [], acceptedDomains: context.acceptedDomains,
    internalNetworks: context.internalNetworks, maxTextChars: 2_000_000,
  };
  runRules(set, input);
  const times: number[] = [];
  for (let round = 0; round < 10; round++) times.push(runRules(set, input).elapsedMs);
  times.sort((a, b) => a - b);
  const parseStart = performance.now();
  fromRawMessage(Buffer.from(`Subject: x\r\n\r\n${body}`));
  const parseMs = performance.now() - parseStart;
  process.stdout.write(`# rules bench: ${set.rules.length} rules, ${message.size} byte message: `
    + `median ${times[5]?.toFixed(2)} ms, max ${times[9]?.toFixed(2)} ms; `
    + `parse ${parseMs.toFixed(2)} ms\n`);
  assert.equal(runRules(set, input).fired.length, 0);
});
