/*
 * Tests for verify-cache.ts: expiry with an injected clock, the size bound, LRU order.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { VerifyCache } from './verify-cache';

describe('VerifyCache', () => {
  it('expires an entry exactly at its TTL', () => {
    let now = 500;
    const cache = new VerifyCache<string>(10, () => now);
    cache.set('a@example.com', 'yes', 100);
    now = 599;
    assert.equal(cache.get('a@example.com')?.value, 'yes');
    assert.equal(cache.has('a@example.com'), true);
    now = 600;
    assert.equal(cache.has('a@example.com'), false);
    assert.equal(cache.get('a@example.com'), undefined);
    assert.equal(cache.size, 0);
  });

  it('stores nothing with a zero TTL or a zero size', () => {
    const cache = new VerifyCache<string>(10, () => 0);
    cache.set('a@example.com', 'yes', 0);
    assert.equal(cache.size, 0);
    const none = new VerifyCache<string>(0, () => 0);
    none.set('a@example.com', 'yes', 100);
    assert.equal(none.size, 0);
  });

  it('evicts the least recently used entry beyond its bound', () => {
    const cache = new VerifyCache<number>(3, () => 0);
    cache.set('a', 1, 100);
    cache.set('b', 2, 100);
    cache.set('c', 3, 100);
    cache.get('a');
    cache.set('d', 4, 100);
    assert.equal(cache.size, 3);
    assert.deepEqual(['a', 'b', 'c', 'd'].map((key) => cache.has(key)),
      [true, false, true, true]);

    // Re-storing a key refreshes it too.
    cache.set('c', 33, 100);
    cache.set('e', 5, 100);
    assert.deepEqual(['a', 'c', 'd', 'e'].map((key) => cache.has(key)),
      [false, true, true, true]);
    assert.equal(cache.get('c')?.value, 33);
  });
});
