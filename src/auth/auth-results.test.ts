import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { authservIdOf, claimsAuthservId, formatAuthResults } from './auth-results';

describe('authservIdOf', () => {
  const cases: Array<[string, string]> = [
    ['mx.example.com; spf=pass smtp.mailfrom=a@b.example', 'mx.example.com'],
    ['  MX.Example.COM. ;dkim=pass', 'mx.example.com'],
    ['(forged) mx.example.com 1; none', 'mx.example.com'],
    ['"mx.example.com"; dmarc=pass', 'mx.example.com'],
    ['\r\n\tmx.example.com;\r\n\tspf=pass', 'mx.example.com'],
    ['other.example; spf=pass', 'other.example'],
    ['mx.example.com.evil.example; spf=pass', 'mx.example.com.evil.example'],
  ];
  for (const [value, id] of cases) {
    test(JSON.stringify(value), () => assert.equal(authservIdOf(value), id));
  }

  test('claimsAuthservId compares whole ids, case-insensitively', () => {
    assert.equal(claimsAuthservId('MX.example.com; spf=pass', 'mx.example.com'), true);
    assert.equal(claimsAuthservId('mx.example.com.evil; spf=pass', 'mx.example.com'), false);
    assert.equal(claimsAuthservId('x.mx.example.com; spf=pass', 'mx.example.com'), false);
  });
});

describe('formatAuthResults', () => {
  test('one resinfo a folded line; control characters cannot start a new header line', () => {
    const value = formatAuthResults('mx.example.com', ['spf=pass', 'dkim=pass\r\nX-Evil: 1', '']);
    assert.equal(value, 'mx.example.com;\n\tspf=pass;\n\tdkim=pass X-Evil: 1');
  });

  test('no results is "none"', () => {
    assert.equal(formatAuthResults('mx.example.com', []), 'mx.example.com; none');
  });
});
