import assert from 'node:assert/strict';
import { test } from 'node:test';
import { NetworkList } from './networks';

test('NetworkList: networks, single addresses, IPv6, IPv4-mapped, garbage', () => {
  const list = new NetworkList(['192.0.2.0/24', '198.51.100.7', '2001:db8::/32']);
  assert.equal(list.has('192.0.2.200'), true);
  assert.equal(list.has('192.0.3.1'), false);
  assert.equal(list.has('198.51.100.7'), true);
  assert.equal(list.has('198.51.100.8'), false);
  assert.equal(list.has('2001:db8::1'), true);
  assert.equal(list.has('::ffff:192.0.2.9'), true);
  assert.equal(list.has('not an address'), false);
  assert.equal(new NetworkList([]).has('192.0.2.1'), false);
});
