/*
 * Rule files: every mistake an author can make is reported with file:line:column, what is
 * wrong and what was expected, and the whole set is refused.
 */

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { RulesError } from './errors';
import { loadRuleSet } from './loader';

function problemsOf(files: Record<string, string>): string[] {
  const dir = mkdtempSync(join(tmpdir(), 'moat-rules-unit-'));
  mkdirSync(join(dir, 'lists'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  try {
    loadRuleSet(dir);
  } catch (error) {
    assert.ok(error instanceof RulesError);
    return error.lines();
  }
  return [];
}

const HEAD = 'rules:\n  - id: r1\n    description: d\n    owner: o\n'
  + '    mode: enforce\n    direction: any\n';

test('a good rule loads, sorted by order, with a stable version hash', () => {
  const text = `${HEAD}    when: { subject: { contains: x } }\n    actions: [ { reject: no } ]\n`;
  assert.deepEqual(problemsOf({ 'a.yaml': text }), []);
  const dir = mkdtempSync(join(tmpdir(), 'moat-rules-unit-'));
  writeFileSync(join(dir, 'a.yaml'), text);
  const first = loadRuleSet(dir);
  assert.equal(first.rules[0]?.id, 'r1');
  assert.equal(first.rules[0]?.final, 'reject');
  assert.equal(loadRuleSet(dir).version, first.version);
  writeFileSync(join(dir, 'a.yaml'), text.replace('contains: x', 'contains: y'));
  assert.notEqual(loadRuleSet(dir).version, first.version);
});

test('unknown keys are errors with their position and the keys allowed', () => {
  const lines = problemsOf({
    'a.yaml': `${HEAD}    when: { subject: { contains: x } }\n    actoins: []\n`,
  });
  assert.ok(
    lines.some(
      (line) => /^a\.yaml:8:5: unknown key "actoins" in rule 1; expected one of id, /.test(line)),
    lines.join('\n'));
  assert.ok(lines.some((line) => /^a\.yaml:2:5: rule 1 has no "actions"/.test(line)),
    lines.join('\n'));
});

test('bad regular expressions are errors at the pattern', () => {
  const lines = problemsOf({
    'a.yaml': `${HEAD}    when: { body: { regex: "(unclosed" } }\n`
      + '    actions: [ { reject: no } ]\n',
  });
  assert.match(lines[0] ?? '', new RegExp('^a\\.yaml:7:28: bad regular expression: .*; '
    + 'expected a JavaScript regular expression$'));
});

test('each kind of mistake is named', () => {
  const cases: Array<[string, RegExp]> = [
    ['    when: { colour: red }\n    actions: [ { reject: no } ]\n',
      /unknown condition "colour"; expected one of all, any, not/],
    ['    when: { detector: { name: passport } }\n    actions: [ { reject: no } ]\n',
      /unknown detector "passport"/],
    ['    when: { attachment: { true_type: [exe, mp3] } }\n    actions: [ { reject: no } ]\n',
      /unknown file type "mp3"/],
    ['    when: { body: { list: missing } }\n    actions: [ { reject: no } ]\n',
      /unknown list "missing"/],
    ['    when: { size: { over: lots } }\n    actions: [ { reject: no } ]\n',
      /size over "lots" is not a size|over "lots" is not a size/],
    ['    when: { subject: { contains: x } }\n'
      + '    actions: [ { reject: no }, { quarantine: true } ]\n',
      /2 final actions/],
    ['    when: { subject: { contains: x } }\n    actions: [ { remove_header: Content-Type } ]\n',
      /would corrupt the message/],
    ['    when: { subject: { contains: x } }\n    actions: [ { copy_to: not-an-address } ]\n',
      /is not an email address/],
    ['    when: { subject: { contains: x } }\n'
      + '    actions: [ { reject: { text: no, code: 450 } } ]\n',
      /code is number 450; expected a whole number from 550 to 554/],
    ['    expires: 2027-02-30\n    when: { subject: { contains: x } }\n'
      + '    actions: [ { reject: no } ]\n',
      /expires "2027-02-30" is not a date/],
    ['    when: { subject: { contains: x }, body: { contains: y } }\n'
      + '    actions: [ { reject: no } ]\n',
      /condition has 2 keys; expected exactly one of/],
  ];
  for (const [tail, expected] of cases) {
    const lines = problemsOf({ 'a.yaml': `${HEAD}${tail}` });
    assert.ok(lines.some((line) => /^a\.yaml:\d+:\d+: /.test(line) && expected.test(line)),
      `${expected}: ${lines.join('\n')}`);
  }
});

test('YAML syntax errors and duplicate ids across files are reported', () => {
  assert.match(problemsOf({ 'a.yaml': 'rules:\n  - id: [unclosed\n' })[0] ?? '',
    /^a\.yaml:\d+:\d+: YAML syntax: /);
  const rule = `${HEAD}    when: { subject: { contains: x } }\n    actions: [ { reject: no } ]\n`;
  const lines = problemsOf({ 'a.yaml': rule, 'b.yaml': rule });
  assert.match(lines[0] ?? '', /^b\.yaml:2:5: rule id "r1" is already used at a\.yaml:2:5/);
});
