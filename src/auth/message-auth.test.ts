import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { dkimSigned, ed25519Key, rsaKey } from '../../test/fixtures/auth/signing';
import { AuthDeadlineError, authenticateMessage, type MessageAuthOptions } from './message-auth';
import type { DnsResolve } from './mailauth';

// Unit level: DNS answers come from a table (the e2e tests use a real DNS server).
function tableResolver(txt: Record<string, string>): DnsResolve {
  return async (name, rrtype) => {
    const value = rrtype === 'TXT' ? txt[name.toLowerCase()] : undefined;
    if (value === undefined) {
      throw Object.assign(new Error(`no ${rrtype} for ${name}`), { code: 'ENOTFOUND' });
    }
    return [[value]];
  };
}

const message = (from: string, body = 'Hello.\r\n'): string =>
  `From: ${from}\r\nTo: bob@example.com\r\nSubject: test\r\nMessage-ID: <1@sender.example>\r\n`
  + `\r\n${body}`;

function options(resolve: DnsResolve, extra: Partial<MessageAuthOptions> = {}): MessageAuthOptions {
  return {
    spf: null, sender: 'alice@sender.example', resolve, minRsaBits: 1024, rejectRsaSha1: true,
    partialBody: 'policy', timeoutMs: 5000, ...extra,
  };
}

describe('authenticateMessage', () => {
  const rsa = rsaKey(1024);
  const ed = ed25519Key();
  const dns = tableResolver({
    'rsa._domainkey.sender.example': rsa.record,
    'ed._domainkey.sender.example': ed.record,
    '_dmarc.sender.example': 'v=DMARC1; p=reject',
  });

  test('RSA and Ed25519 signatures both pass and align', async () => {
    let signed = await dkimSigned(message('alice@sender.example'),
      { domain: 'sender.example', selector: 'rsa', key: rsa });
    signed = await dkimSigned(signed, { domain: 'sender.example', selector: 'ed', key: ed });
    const result = await authenticateMessage(Buffer.from(signed), options(dns));
    assert.deepEqual(result.dkim.map((s) => [s.selector, s.algorithm, s.result]).sort(), [
      ['ed', 'ed25519-sha256', 'pass'], ['rsa', 'rsa-sha256', 'pass'],
    ]);
    assert.equal(result.dkim.find((s) => s.selector === 'rsa')?.keyBits, 1024);
    assert.equal(result.dmarc?.result, 'pass');
  });

  test('l= with content appended is policy, not a pass, and DMARC fails', async () => {
    const original = message('alice@sender.example', 'Signed part.\r\n');
    const signed = await dkimSigned(original,
      { domain: 'sender.example', selector: 'rsa', key: rsa, bodyLength: 14 });
    const tampered = `${signed}Unsigned: pay to account 123.\r\n`;
    const result = await authenticateMessage(Buffer.from(tampered), options(dns));
    assert.equal(result.dkim[0]?.result, 'policy');
    assert.ok((result.dkim[0]?.unsignedBytes ?? 0) > 0);
    assert.match(result.dkim[0]?.info ?? '', /^dkim=policy /);
    assert.equal(result.dmarc?.result, 'fail');
    assert.equal(result.dmarc?.policy, 'reject');

    // Trusting l= is the operator's explicit choice.
    const trusting = await authenticateMessage(Buffer.from(tampered),
      options(dns, { partialBody: 'pass' }));
    assert.equal(trusting.dkim[0]?.result, 'pass');
    assert.equal(trusting.dmarc?.result, 'pass');
  });

  test('a key shorter than the minimum is policy', async () => {
    const signed = await dkimSigned(message('alice@sender.example'),
      { domain: 'sender.example', selector: 'rsa', key: rsa });
    const result = await authenticateMessage(Buffer.from(signed),
      options(dns, { minRsaBits: 2048 }));
    assert.equal(result.dkim[0]?.result, 'policy');
    assert.equal(result.dmarc?.result, 'fail');
  });

  test('an unsigned message has no signatures and DMARC none without a record', async () => {
    const unsigned = Buffer.from(message('a@nodmarc.example'));
    const result = await authenticateMessage(unsigned, options(dns));
    assert.deepEqual(result.dkim, []);
    assert.equal(result.dmarc?.result, 'none');
    assert.equal(result.arc.result, 'none');
  });

  test('a resolver that never answers ends in AuthDeadlineError', async () => {
    const silent: DnsResolve = () => new Promise(() => undefined);
    const signed = await dkimSigned(message('alice@sender.example'),
      { domain: 'sender.example', selector: 'rsa', key: rsa });
    await assert.rejects(
      authenticateMessage(Buffer.from(signed), options(silent, { timeoutMs: 200 })),
      AuthDeadlineError);
  });
});
