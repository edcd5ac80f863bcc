/*
 * Condition variants evaluated without an SMTP session: headers (equals, contains), sender and
 * recipient address forms, client networks, attachment names, sizes and counts, the other
 * checks' results in the shape those checks really record, and the masking of sensitive text
 * in whatever a condition matched (regex, keywords, header values), in evidence and explain.
 */

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { BlockList } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { CheckResult } from '../verdict/verdict';
import { runRules, type RulesOutcome } from './engine';
import { explainMessage } from './explain';
import type { EvaluationInput } from './facts';
import { loadRuleSet } from './loader';
import { fromRawMessage } from './message';
import type { RuleSet } from './schema';

/** A set of one marker rule per entry: id -> the YAML of its `when`. */
function ruleSet(whens: Record<string, string>, lists: Record<string, string> = {}): RuleSet {
  const dir = mkdtempSync(join(tmpdir(), 'moat-rules-cond-'));
  mkdirSync(join(dir, 'lists'));
  for (const [name, text] of Object.entries(lists)) {
    writeFileSync(join(dir, 'lists', `${name}.txt`), text);
  }
  const rules = Object.entries(whens).map(([id, when]) => `  - id: ${id}\n`
    + `    description: ${id}\n    owner: test@example.com\n    mode: enforce\n`
    + `    direction: any\n    when: ${when}\n`
    + `    actions: [ { add_header: { name: X-Hit, value: ${id} } } ]\n`);
  writeFileSync(join(dir, 'rules.yaml'), `rules:\n${rules.join('')}`);
  return loadRuleSet(dir);
}

const internal = new BlockList();
internal.addSubnet('10.0.0.0', 8, 'ipv4');

interface Scenario {
  raw?: string;
  sender?: string;
  recipients?: string[];
  clientIp?: string;
  results?: CheckResult[];
}

function inputOf(scenario: Scenario): EvaluationInput {
  return {
    envelope: {
      sender: scenario.sender ?? 'alice@sender.example',
      recipients: scenario.recipients ?? ['bob@example.com'],
      clientIp: scenario.clientIp ?? '203.0.113.7',
    },
    message: fromRawMessage(Buffer.from(scenario.raw
      ?? 'From: <alice@sender.example>\r\nSubject: hello\r\n\r\nbody\r\n')),
    direction: 'inbound', results: scenario.results ?? [],
    acceptedDomains: new Set(['example.com']), internalNetworks: internal,
    maxTextChars: 1_000_000,
  };
}

function run(set: RuleSet, scenario: Scenario): RulesOutcome {
  return runRules(set, inputOf(scenario));
}

function firedIds(set: RuleSet, scenario: Scenario): string[] {
  return run(set, scenario).fired.map((report) => report.rule.id).sort();
}

/** What the rule `id` matched, as its evidence shows it. */
function matchedText(outcome: RulesOutcome, id: string): string {
  const report = outcome.fired.find((entry) => entry.rule.id === id);
  assert.ok(report, `${id} did not fire`);
  return report.evidence.map((entry) => entry.matched).join(' | ');
}

function withAttachments(files: Array<{ name: string; bytes: number }>): string {
  const parts = files.map((file) => '--b1\r\n'
    + `Content-Type: application/octet-stream; name="${file.name}"\r\n`
    + 'Content-Transfer-Encoding: base64\r\n'
    + `Content-Disposition: attachment; filename="${file.name}"\r\n\r\n`
    + `${Buffer.alloc(file.bytes, 0x41).toString('base64')}\r\n`);
  return 'From: <a@sender.example>\r\nSubject: files\r\nMIME-Version: 1.0\r\n'
    + 'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
    + `--b1\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n${parts.join('')}--b1--\r\n`;
}

describe('headers', () => {
  const set = ruleSet({
    'h-equals': '{ header: { name: X-Class, equals: [Internal Only] } }',
    'h-contains': '{ header: { name: X-Mailer, contains: [bulkmail] } }',
  });

  test('equals holds for the whole value (case folded, trimmed), not for a part of it', () => {
    const head = (value: string): string =>
      `From: <a@sender.example>\r\nX-Class: ${value}\r\nSubject: s\r\n\r\nbody\r\n`;
    assert.deepEqual(firedIds(set, { raw: head('  internal only ') }), ['h-equals']);
    assert.deepEqual(firedIds(set, { raw: head('Internal Only, please') }), []);
  });

  test('contains holds for a part of any value of the header', () => {
    const raw = 'From: <a@sender.example>\r\nX-Mailer: plain 1.0\r\n'
      + 'X-Mailer: SuperBulkMail 9\r\nSubject: s\r\n\r\nbody\r\n';
    const outcome = run(set, { raw });
    assert.deepEqual(outcome.fired.map((report) => report.rule.id), ['h-contains']);
    assert.equal(matchedText(outcome, 'h-contains'), 'X-Mailer: BulkMail');
    assert.deepEqual(firedIds(set, {
      raw: 'From: <a@sender.example>\r\nX-Mailer: plain\r\nSubject: s\r\n\r\nbody\r\n',
    }), []);
  });
});

describe('envelope addresses', () => {
  const set = ruleSet({
    's-address': '{ sender: { address: [boss@partner.example] } }',
    's-glob': '{ sender: { glob: ["*@*.mailer.example"] } }',
    's-regex': '{ sender: { regex: "^invoice-\\\\d+@" } }',
    's-list': '{ sender: { list: senders } }',
    'r-every': '{ recipient: { domain: [example.com], every: true } }',
  }, { senders: '# forms a list may hold\nexact@list.example\n@whole.example\nbare.example\n'
    + 'news*@glob.example\n' });

  const cases: Array<[string, string, string[]]> = [
    ['an exact address (case folded)', 'Boss@Partner.Example', ['s-address']],
    ['a glob', 'x@eu.mailer.example', ['s-glob']],
    ['a regular expression', 'invoice-4711@billing.example', ['s-regex']],
    ['a list: an exact entry', 'exact@list.example', ['s-list']],
    ['a list: an @domain entry', 'anyone@whole.example', ['s-list']],
    ['a list: a bare domain entry (and its subdomains)', 'x@eu.bare.example', ['s-list']],
    ['a list: a glob entry', 'newsletter@glob.example', ['s-list']],
    ['nothing for an address none of them names', 'someone@other.example', []],
  ];
  for (const [name, sender, expected] of cases) {
    test(`sender: ${name}`, () => {
      const fired = firedIds(set, { sender, recipients: ['x@elsewhere.example'] });
      assert.deepEqual(fired, expected);
    });
  }

  test('recipient every: holds only when every recipient matches', () => {
    assert.deepEqual(firedIds(set, {
      sender: 'z@other.example', recipients: ['a@example.com', 'b@example.com'],
    }), ['r-every']);
    assert.deepEqual(firedIds(set, {
      sender: 'z@other.example', recipients: ['a@example.com', 'b@outside.example'],
    }), []);
  });
});

describe('client networks', () => {
  const set = ruleSet({
    'n-internal': '{ client: { internal: true } }',
    'n-external': '{ client: { internal: false } }',
    'n-partner': '{ client: { network: [198.51.100.0/24, "2001:db8:5::/48"] } }',
  });

  test('internal: true and false follow smtp.internal_networks', () => {
    assert.deepEqual(firedIds(set, { clientIp: '10.1.2.3' }), ['n-internal']);
    assert.deepEqual(firedIds(set, { clientIp: '::ffff:10.1.2.3' }), ['n-internal']);
    assert.deepEqual(firedIds(set, { clientIp: '203.0.113.9' }), ['n-external']);
  });

  test('a network holds for its addresses, IPv4 and IPv6, and not for others', () => {
    assert.deepEqual(firedIds(set, { clientIp: '198.51.100.77' }), ['n-external', 'n-partner']);
    assert.deepEqual(firedIds(set, { clientIp: '2001:db8:5::1' }), ['n-external', 'n-partner']);
    assert.deepEqual(firedIds(set, { clientIp: '198.51.101.77' }), ['n-external']);
  });
});

describe('attachments', () => {
  const set = ruleSet({
    'a-name-regex': '{ attachment: { name_regex: "^scan_\\\\d{4}\\\\.pdf$" } }',
    'a-big': '{ attachment: { size_over: 2k } }',
    'a-small': '{ attachment: { size_under: 100 } }',
    'a-two-or-more': '{ attachment_count: { min: 2 } }',
    'a-at-most-one': '{ attachment_count: { max: 1 } }',
  });

  test('name_regex, size_over and size_under judge each file on its own', () => {
    const outcome = run(set, { raw: withAttachments([{ name: 'scan_0042.pdf', bytes: 3000 }]) });
    assert.deepEqual(outcome.fired.map((report) => report.rule.id).sort(),
      ['a-at-most-one', 'a-big', 'a-name-regex']);
    assert.equal(matchedText(outcome, 'a-big'),
      'scan_0042.pdf (text declared application/octet-stream, 3000 bytes)');
    assert.deepEqual(firedIds(set, { raw: withAttachments([{ name: 'scan_42.pdf', bytes: 50 }]) }),
      ['a-at-most-one', 'a-small']);
  });

  test('attachment_count holds inside its range', () => {
    const two = withAttachments([{ name: 'a.txt', bytes: 500 }, { name: 'b.txt', bytes: 500 }]);
    const outcome = run(set, { raw: two });
    assert.deepEqual(outcome.fired.map((report) => report.rule.id), ['a-two-or-more']);
    assert.equal(matchedText(outcome, 'a-two-or-more'), '2 attachments');
  });
});

describe('the other checks, as they record their results', () => {
  const set = ruleSet({
    'k-virus': '{ virus: true }',
    'k-clean': '{ virus: false }',
    'k-spam': '{ spam_score: { at_least: 8 } }',
    'k-ham': '{ spam_score: { below: 8 } }',
    'k-listed': '{ check: { name: dnsbl, result: [neutral, fail] } }',
  });
  // The evidence shapes of src/scan/policy.ts and plugins/reputation.ts.
  const clamdFound: CheckResult = {
    check: 'clamd', result: 'fail', action: 'quarantine', reason: 'malware-quarantined',
    evidence: { scans: 2, signatures: ['Win.Test.EICAR_HDB-1', 'Doc.Macro.Bad-7'],
      found_in: ['message', '1.2 (a.doc)'] },
  };
  const spamd = (score: number): CheckResult => ({
    check: 'spamd', result: score >= 5 ? 'softfail' : 'pass', evidence: { score, rules: [] },
  });
  const dnsbl: CheckResult = {
    check: 'dnsbl', result: 'neutral',
    evidence: { score: 0.5, threshold: 1, refused: false, zones: [
      { zone: 'quiet.example', kind: 'block', outcome: 'clean', weight: 0.5 },
      { zone: 'half.example', kind: 'block', outcome: 'listed', weight: 0.5 },
    ] },
  };

  test('virus: the match names the signatures clamd reported', () => {
    const outcome = run(set, { results: [clamdFound, spamd(1)] });
    assert.equal(matchedText(outcome, 'k-virus'), 'clamd: Win.Test.EICAR_HDB-1, Doc.Macro.Bad-7');
    assert.ok(!outcome.fired.some((report) => report.rule.id === 'k-clean'));
  });

  test('virus: false says whether a scan ran', () => {
    let outcome = run(set, { results: [{ check: 'clamd', result: 'pass' }] });
    assert.equal(matchedText(outcome, 'k-clean'), 'no virus reported (clamd=pass)');
    outcome = run(set, { results: [] });
    assert.equal(matchedText(outcome, 'k-clean'), 'no virus reported (no virus check ran)');
  });

  test('spam_score reads spamd\'s score, at_least and below', () => {
    let outcome = run(set, { results: [spamd(1002.3)] });
    assert.equal(matchedText(outcome, 'k-spam'), 'spamd score 1002.3');
    assert.ok(!outcome.fired.some((report) => report.rule.id === 'k-ham'));
    outcome = run(set, { results: [spamd(-0.5)] });
    assert.equal(matchedText(outcome, 'k-ham'), 'spamd score -0.5');
    assert.ok(!outcome.fired.some((report) => report.rule.id === 'k-spam'));
  });

  test('a DNS list result names the lists that listed the client', () => {
    const outcome = run(set, { results: [dnsbl] });
    assert.equal(matchedText(outcome, 'k-listed'), 'dnsbl=neutral: listed by half.example');
    assert.deepEqual(firedIds(set, { results: [{ ...dnsbl, result: 'pass' }] }), ['k-clean']);
  });
});

describe('sensitive text in what a condition matched is masked', () => {
  const set = ruleSet({
    'm-regex': '{ body: { regex: "card\\\\s+[\\\\d ]+" } }',
    'm-partial': '{ body: { regex: "\\\\d{12}" } }',
    'm-keyword': '{ subject: { keywords: [DE89370400440532013000] } }',
    'm-header': '{ header: { name: X-Account, regex: "iban .*" } }',
    'm-ssn': '{ body: { regex: "ssn \\\\S+" } }',
  });
  const raw = 'From: <a@sender.example>\r\nSubject: pay DE89370400440532013000 now\r\n'
    + 'X-Account: iban GB82 WEST 1234 5698 7654 32\r\n\r\n'
    + 'my card 4111 1111 1111 1111 and 5555555555554444, ssn 123-45-6789 ok\r\n';

  test('regex, keyword and header matches show no number in clear', () => {
    const outcome = run(set, { raw });
    assert.deepEqual(outcome.fired.map((report) => report.rule.id).sort(),
      ['m-header', 'm-keyword', 'm-partial', 'm-regex', 'm-ssn']);
    assert.equal(matchedText(outcome, 'm-regex'), 'card **** **** **** 1111 ');
    // Only twelve of the sixteen digits matched: masked as part of the whole number.
    assert.equal(matchedText(outcome, 'm-partial'), '************');
    assert.equal(matchedText(outcome, 'm-keyword'), 'DE89**************3000');
    assert.equal(matchedText(outcome, 'm-header'), 'X-Account: iban GB82 **** **** **** **54 32');
    assert.equal(matchedText(outcome, 'm-ssn'), 'ssn ***-**-6789');
    const shown = JSON.stringify(outcome.fired.map((report) => report.evidence));
    for (const clear of ['4111 1111', '555555555555', '370400440532', 'WEST 1234', '123-45']) {
      assert.ok(!shown.includes(clear), `${clear} shown in clear: ${shown}`);
    }
  });

  test('explain shows the masked text', () => {
    const { lines } = explainMessage(set, inputOf({ raw }));
    const text = lines.join('\n');
    assert.match(text, /yes m-regex\.when\.body {2}matched: card \*{4} \*{4} \*{4} 1111/);
    assert.doesNotMatch(text, /4111 1111|5555555555|0440532013|123-45-/);
  });
});
