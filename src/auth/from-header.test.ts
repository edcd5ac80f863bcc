import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { findAuthor, headerBlock, parseMailboxList } from './from-header';

const block = (text: string): string => headerBlock(Buffer.from(`${text}\r\n\r\nbody\r\n`));

describe('findAuthor', () => {
  const ok: Array<[string, string]> = [
    ['From: alice@example.org', 'example.org'],
    ['From: Alice Example <alice@Example.ORG>', 'example.org'],
    ['From: "Example, Alice" <alice@example.org>', 'example.org'],
    ['From: "ceo@bank.example" <attacker@evil.example>', 'evil.example'],
    ['From: (comment) alice.b@sub.example.org (another)', 'sub.example.org'],
    ['From: =?utf-8?q?J=C3=BCrgen?= <j@example.org>', 'example.org'],
    ['From: "a\\"b"@example.org', 'example.org'],
    ['From: Alice\r\n <alice@example.org>', 'example.org'],
    ['FROM : alice@example.org', 'example.org'],
    ['From: team: alice@example.org;', 'example.org'],
    ['From: alice@example.org.', 'example.org'],
    ['From: Jürgen <jürgen@bücher.example>', 'bücher.example'],
  ];
  for (const [header, domain] of ok) {
    test(`one author: ${JSON.stringify(header)}`, () => {
      const result = findAuthor(block(`Subject: x\r\n${header}\r\nTo: bob@example.com`));
      assert.equal(result.ok, true, JSON.stringify(result));
      if (result.ok) assert.equal(result.author.domain, domain);
    });
  }

  const bad: Array<[string, string, string]> = [
    ['no From', 'Subject: x', 'missing'],
    ['From in the body only', 'Subject: x\r\n\r\nFrom: a@example.org', 'missing'],
    ['empty From', 'From: ', 'missing'],
    ['empty group', 'From: undisclosed-recipients:;', 'missing'],
    ['two From fields', 'From: a@example.org\r\nFrom: b@example.net', 'several-fields'],
    ['two From fields, odd spelling', 'From: a@example.org\r\nfrom :b@example.net',
      'several-fields'],
    ['two mailboxes', 'From: a@example.org, b@example.net', 'several-mailboxes'],
    ['two mailboxes, same domain', 'From: a@example.org, b@example.org', 'several-mailboxes'],
    ['a group of two', 'From: g: a@example.org, b@example.net;', 'several-mailboxes'],
    ['no domain', 'From: alice', 'unparseable'],
    ['unterminated angle', 'From: Alice <alice@example.org', 'unparseable'],
    ['two angles', 'From: <a@example.org> <b@example.net>', 'unparseable'],
    ['source route', 'From: <@relay.example:a@example.org>', 'unparseable'],
    ['domain literal', 'From: a@[192.0.2.1]', 'unparseable'],
    ['unterminated quote', 'From: "Alice <a@example.org>', 'unparseable'],
    ['empty list element', 'From: a@example.org,', 'unparseable'],
    ['bad domain label', 'From: a@-bad.example', 'unparseable'],
    ['double dot', 'From: a@example..org', 'unparseable'],
  ];
  for (const [name, headers, problem] of bad) {
    test(`refused: ${name}`, () => {
      const result = findAuthor(block(headers));
      assert.equal(result.ok, false);
      if (!result.ok) assert.equal(result.problem, problem, result.detail);
    });
  }
});

describe('parseMailboxList', () => {
  test('counts mailboxes of groups and plain addresses alike', () => {
    const parsed = parseMailboxList('a@x.example, g: b@y.example, "C" <c@z.example>;');
    assert.equal(parsed.ok, true);
    if (!parsed.ok) return;
    const domains = parsed.mailboxes.map((mailbox) => mailbox.domain);
    assert.deepEqual(domains, ['x.example', 'y.example', 'z.example']);
  });
});

describe('headerBlock', () => {
  test('stops at the first empty line; a message starting with one has no header', () => {
    assert.equal(headerBlock(Buffer.from('A: 1\r\nB: 2\r\n\r\nC: 3\r\n')), 'A: 1\r\nB: 2\r\n');
    assert.equal(headerBlock(Buffer.from('\r\nFrom: a@example.org\r\n')), '');
  });
});
