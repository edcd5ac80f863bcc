import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ValueProblem } from '../config/values';
import { formatAge, parseAge } from './age';

describe('parseAge', () => {
  it('reads seconds to weeks, and a bare number as days', () => {
    assert.equal(parseAge('45s'), 45_000);
    assert.equal(parseAge('90m'), 90 * 60_000);
    assert.equal(parseAge('12h'), 12 * 3_600_000);
    assert.equal(parseAge('30d'), 30 * 86_400_000);
    assert.equal(parseAge('30'), 30 * 86_400_000);
    assert.equal(parseAge('2W'), 14 * 86_400_000);
    assert.equal(parseAge('0'), 0);
  });

  it('refuses what it cannot read, and ages past ten years', () => {
    for (const bad of ['', '-1d', '1.5d', '30 days', '1y', '3651d']) {
      assert.throws(() => parseAge(bad), ValueProblem, bad);
    }
  });

  it('formats in the largest whole unit', () => {
    assert.equal(formatAge(parseAge('30d')), '30d');
    assert.equal(formatAge(parseAge('2w')), '2w');
    assert.equal(formatAge(parseAge('36h')), '36h');
    assert.equal(formatAge(45_000), '45s');
  });
});
