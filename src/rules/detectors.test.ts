/* Detectors: checksums hold, near misses do not, and hits are masked. */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { detect, ibanValid, luhnValid } from './detectors';

test('payment cards: Luhn and issuer prefix, masked to the last four digits', () => {
  assert.equal(luhnValid('4111111111111111'), true);
  assert.equal(luhnValid('4111111111111112'), false);
  const hits = detect('payment_card',
    'visa 4111 1111 1111 1111, amex 3782-822463-10005, bad 4111 1111 1111 1112');
  assert.deepEqual(hits.map((hit) => hit.masked), ['************1111', '***********0005']);
  assert.deepEqual(
    detect('payment_card', 'order 1234567890123456 and phone 0049 30 1234 5678 9'), []);
});

test('IBAN: country length and mod-97', () => {
  assert.equal(ibanValid('DE89370400440532013000'), true);
  assert.equal(ibanValid('DE89370400440532013001'), false);
  assert.equal(ibanValid('GB82WEST12345698765432'), true);
  const hits = detect('iban', 'pay DE89 3704 0044 0532 0130 00 or GB82 WEST 1234 5698 7654 32');
  assert.deepEqual(hits.map((hit) => hit.masked),
    ['DE89**************3000', 'GB82**************5432']);
});

test('US SSN: never-issued ranges are not numbers', () => {
  assert.deepEqual(detect('us_ssn', 'ssn 123-45-6789').map((hit) => hit.masked), ['***-**-6789']);
  assert.deepEqual(
    detect('us_ssn', '000-12-3456 666-12-3456 912-12-3456 123-00-4567 123-45-0000'), []);
});

test('keys', () => {
  assert.equal(detect('private_key', '-----BEGIN OPENSSH PRIVATE KEY-----').length, 1);
  assert.deepEqual(detect('aws_access_key', 'key AKIAIOSFODNN7EXAMPLE').map((hit) => hit.masked),
    ['AKIA************MPLE']);
});
