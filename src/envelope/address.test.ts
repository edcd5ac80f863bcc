/*
 * Tests for address.ts: every reason code, the relay tricks, and the length boundaries.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  ADDRESS_REASONS, MAX_ADDRESS_OCTETS, MAX_LOCAL_PART_OCTETS, parseEnvelopePath,
  type AddressReason, type ParsePathOptions,
} from './address';

const RCPT: ParsePathOptions = { role: 'recipient' };
const MAIL: ParsePathOptions = { role: 'sender' };
const UTF8_RCPT: ParsePathOptions = { role: 'recipient', smtputf8: true };

/** Every path any test below parses, so the last test can check all codes are reachable. */
const ALL_TEST_PATHS: string[] = [];

function refusalCode(path: string, options: ParsePathOptions = RCPT): AddressReason | 'ok' {
  ALL_TEST_PATHS.push(path);
  const result = parseEnvelopePath(path, options);
  return result.ok ? 'ok' : result.code;
}

/** A valid domain of exactly `octets` octets, in labels of at most 51 letters. */
function domainOf(octets: number): string {
  const tail = '.example';
  const labels: string[] = [];
  let left = octets - tail.length;
  while (left > 51) {
    labels.push('d'.repeat(50));
    left -= 51;
  }
  labels.push('d'.repeat(left));
  return `${labels.join('.')}${tail}`;
}

describe('parseEnvelopePath: accepted paths', () => {
  it('returns local part as given and the domain in lower case', () => {
    const result = parseEnvelopePath('<John.Doe+tag@Mail.Example.COM>', RCPT);
    assert.deepEqual(result, {
      ok: true, localPart: 'John.Doe+tag', domain: 'mail.example.com',
      address: 'John.Doe+tag@mail.example.com', isNullPath: false, utf8: false,
    });
  });

  it('accepts a path without brackets and spaces around the brackets', () => {
    assert.equal(refusalCode('user@example.com'), 'ok');
    assert.equal(refusalCode(' <user@example.com> '), 'ok');
  });

  it('accepts the null path for a sender only', () => {
    const result = parseEnvelopePath('<>', MAIL);
    assert.ok(result.ok);
    assert.equal(result.isNullPath, true);
    assert.equal(result.address, '');
    assert.equal(refusalCode('<>', RCPT), 'null-recipient');
  });

  it('removes needless quotes and keeps needed ones', () => {
    const plain = parseEnvelopePath('<"john.doe"@example.com>', RCPT);
    assert.ok(plain.ok);
    assert.equal(plain.address, 'john.doe@example.com');
    const spaced = parseEnvelopePath('<"john doe"@example.com>', RCPT);
    assert.ok(spaced.ok);
    assert.equal(spaced.localPart, '"john doe"');
  });

  it('accepts all atext symbols that are not relay tricks', () => {
    assert.equal(refusalCode("<a#b$c&d'e*f+g-h/i=j?k^l_m`n{o|p}q~r@example.com>"), 'ok');
  });

  it('accepts UTF-8 only with SMTPUTF8', () => {
    assert.equal(refusalCode('<jörg@bücher.example>'), 'non-ascii');
    const result = parseEnvelopePath('<jörg@Bücher.example>', UTF8_RCPT);
    assert.ok(result.ok);
    assert.equal(result.domain, 'bücher.example');
    assert.equal(result.utf8, true);
  });
});

describe('parseEnvelopePath: relay tricks', () => {
  const cases: Array<[string, AddressReason]> = [
    ['<user%other.example@ourdomain.example>', 'percent-hack'],
    ['<"user@evil.example"@ourdomain.example>', 'quoted-relay-chars'],
    ['<"user%evil.example"@ourdomain.example>', 'quoted-relay-chars'],
    ['<"evil!user"@ourdomain.example>', 'quoted-relay-chars'],
    ['<@a.example,@b.example:user@ourdomain.example>', 'source-route'],
    ['<@a.example:user@ourdomain.example>', 'source-route'],
    ['<host.example!user@ourdomain.example>', 'bang-path'],
    ['<user!host>', 'bang-path'],
    ['<user@[192.0.2.1]>', 'address-literal'],
    ['<user@[IPv6:2001:db8::1]>', 'address-literal'],
    ['<user@ourdomain.example@evil.example>', 'multiple-at'],
    ['<"user"@ourdomain.example@evil.example>', 'multiple-at'],
  ];
  for (const [path, code] of cases) {
    it(`${path} -> ${code}`, () => assert.equal(refusalCode(path), code));
  }
});

describe('parseEnvelopePath: syntax refusals', () => {
  const cases: Array<[string, AddressReason]> = [
    ['<user\r@example.com>', 'control-char'],
    ['<user\u0000@example.com>', 'control-char'],
    ['<us\ter@example.com>', 'control-char'],
    ['<user@example.com\u007f>', 'control-char'],
    ['<user@example.com', 'bad-brackets'],
    ['user@example.com>', 'bad-brackets'],
    ['<<user@example.com>>', 'bad-brackets'],
    ['<user\\@evil.example@example.com>', 'backslash-escape'],
    ['<"us\\"er"@example.com>', 'backslash-escape'],
    ['<user>', 'missing-domain'],
    ['<user@>', 'missing-domain'],
    ['<"user">', 'missing-domain'],
    ['<@example.com>', 'missing-local-part'],
    ['<""@example.com>', 'missing-local-part'],
    ['<user@example.com.>', 'trailing-dot-domain'],
    ['<user@.example.com>', 'bad-domain'],
    ['<user@example..com>', 'bad-domain'],
    ['<user@-example.com>', 'bad-domain'],
    ['<user@example-.com>', 'bad-domain'],
    ['<user@exa_mple.com>', 'bad-domain'],
    ['<user@192.0.2.1>', 'bad-domain'],
    ['<user@exam%ple.com>', 'bad-domain'],
    ['<user name@example.com>', 'whitespace'],
    ['<user@exam ple.com>', 'whitespace'],
    ['< user@example.com>', 'whitespace'],
    ['<.user@example.com>', 'bad-local-part'],
    ['<user.@example.com>', 'bad-local-part'],
    ['<us..er@example.com>', 'bad-local-part'],
    ['<us(er)@example.com>', 'bad-local-part'],
    ['<us"er@example.com>', 'bad-local-part'],
    ['<"user@example.com>', 'bad-local-part'],
    ['<"user"x@example.com>', 'bad-local-part'],
    ['<usér@example.com>', 'non-ascii'],
  ];
  for (const [path, code] of cases) {
    it(`${JSON.stringify(path)} -> ${code}`, () => assert.equal(refusalCode(path), code));
  }

  it('names the control character without echoing the path', () => {
    const result = parseEnvelopePath('<secret\u0001@example.com>', RCPT);
    assert.ok(!result.ok);
    assert.match(result.reason, /0x01 at position 7/);
    assert.doesNotMatch(result.reason, /secret/);
  });
});

describe('parseEnvelopePath: length boundaries', () => {
  it(`accepts a ${MAX_LOCAL_PART_OCTETS}-octet local part and refuses one more`, () => {
    const longest = 'a'.repeat(MAX_LOCAL_PART_OCTETS);
    assert.equal(refusalCode(`<${longest}@example.com>`), 'ok');
    assert.equal(refusalCode(`<${longest}b@example.com>`), 'local-part-too-long');
  });

  it('counts the quotes of a quoted local part and UTF-8 octets, not characters', () => {
    const quoted = `"${' '.repeat(MAX_LOCAL_PART_OCTETS - 2)}"`;
    assert.equal(refusalCode(`<${quoted}@example.com>`), 'ok');
    assert.equal(refusalCode(`<"${' '.repeat(MAX_LOCAL_PART_OCTETS - 1)}"@example.com>`),
      'local-part-too-long');
    const umlauts = 'ö'.repeat(MAX_LOCAL_PART_OCTETS / 2);
    assert.equal(refusalCode(`<${umlauts}@example.com>`, UTF8_RCPT), 'ok');
    assert.equal(refusalCode(`<${umlauts}a@example.com>`, UTF8_RCPT), 'local-part-too-long');
  });

  it(`accepts a ${MAX_ADDRESS_OCTETS}-octet address and refuses one more`, () => {
    const local = 'a'.repeat(60);
    const domain = domainOf(MAX_ADDRESS_OCTETS - local.length - 1);
    const address = `${local}@${domain}`;
    assert.equal(Buffer.byteLength(address), MAX_ADDRESS_OCTETS);
    assert.equal(refusalCode(`<${address}>`), 'ok');
    assert.equal(refusalCode(`<a${address}>`), 'address-too-long');
  });

  it('accepts a 63-octet domain label and refuses 64', () => {
    assert.equal(refusalCode(`<user@${'d'.repeat(63)}.example>`), 'ok');
    assert.equal(refusalCode(`<user@${'d'.repeat(64)}.example>`), 'bad-domain');
  });
});

describe('ADDRESS_REASONS', () => {
  it('is produced in full by the cases above, and nothing else is', () => {
    const seen = new Set<string>();
    for (const path of ALL_TEST_PATHS) {
      for (const options of [RCPT, MAIL]) {
        const result = parseEnvelopePath(path, options);
        if (!result.ok) seen.add(result.code);
      }
    }
    assert.deepEqual([...seen].sort(), Object.keys(ADDRESS_REASONS).sort());
  });

  it('has a one-line meaning for every code', () => {
    for (const [code, meaning] of Object.entries(ADDRESS_REASONS)) {
      assert.match(code, /^[a-z][a-z-]+$/);
      assert.ok(meaning.length > 10 && !meaning.includes('\n'), code);
    }
  });
});
