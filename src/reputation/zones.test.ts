/*
 * The zone syntax: what parses, and the precise complaint for what does not.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { ValueProblem } from '../config/values';
import { inRanges, parseCodes, parseZones } from './zones';

describe('reputation zones', () => {
  it('parses block and allow zones with weights and codes', () => {
    const zones = parseZones(
      'block:ZEN.example.:1.5:127.0.0.2-127.0.0.11|127.0.0.20, allow:list.dnswl.example:-2');
    assert.equal(zones.length, 2);
    assert.deepEqual(zones.map(({ kind, zone, weight }) => ({ kind, zone, weight })), [
      { kind: 'block', zone: 'zen.example', weight: 1.5 },
      { kind: 'allow', zone: 'list.dnswl.example', weight: -2 },
    ]);
    const [zen, dnswl] = zones;
    assert.ok(zen && dnswl);
    assert.ok(inRanges('127.0.0.11', zen.codes));
    assert.ok(inRanges('127.0.0.20', zen.codes));
    assert.ok(!inRanges('127.0.0.12', zen.codes));
    assert.ok(!inRanges('127.0.0.1', dnswl.codes), 'the default codes start at 127.0.0.2');
    assert.ok(inRanges('127.0.10.3', dnswl.codes));
    assert.deepEqual(parseZones('  '), []);
  });

  it('reads networks as code ranges', () => {
    const codes = parseCodes('127.255.255.0/24');
    assert.ok(inRanges('127.255.255.254', codes));
    assert.ok(!inRanges('127.255.254.255', codes));
    assert.ok(!inRanges('2001:db8::1', codes));
  });

  it('names what is wrong in a bad entry', () => {
    const problem = (raw: string): string => {
      try {
        parseZones(raw);
      } catch (error) {
        assert.ok(error instanceof ValueProblem);
        return error.expected;
      }
      assert.fail(`accepted ${raw}`);
    };
    assert.match(problem('zen.example'), /kind:zone:weight/);
    assert.match(problem('deny:zen.example:1'), /kind block or allow/);
    assert.match(problem('block:zen:1'), /zone name/);
    assert.match(problem('block:zen.example:heavy'), /weight such as/);
    assert.match(problem('block:zen.example:-1'), /positive weight for block zone zen.example/);
    assert.match(problem('allow:wl.example:2'), /negative weight for allow zone wl.example/);
    assert.match(problem('block:zen.example:1:127.0.0.9-127.0.0.2'), /runs backwards/);
    assert.match(problem('block:zen.example:1:127.0.0.300'), /answer codes.*zen.example/);
    assert.match(problem('block:a.example:1, block:A.example:2'), /each zone once/);
    assert.match(problem('block:a.example:1:127.0.0.2:extra'), /kind:zone:weight/);
  });
});
