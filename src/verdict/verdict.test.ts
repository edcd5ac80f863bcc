/*
 * Tests for verdict.ts and reasons.ts: the action precedence, the first-recorded tie-break, the
 * reply a decision carries, and the consistency of every row of the reason table.
 */

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { allReasonCodes } from './reasons-doc';

import { REASONS, reasonReply, type Action, type ReasonCode } from './reasons';
import { Verdict, type CheckResult } from './verdict';

function verdictOf(...results: CheckResult[]): Verdict {
  const verdict = new Verdict();
  for (const result of results) verdict.record(result);
  return verdict;
}

const TAG: CheckResult = { check: 'spf', result: 'softfail', action: 'tag', reason: 'clean' };
const QUARANTINE: CheckResult = {
  check: 'rule:spoofed-ceo', result: 'fail', action: 'quarantine', reason: 'clean',
};
const TEMPFAIL: CheckResult = {
  check: 'clamd', result: 'temperror', action: 'tempfail', reason: 'internal-error',
};
const REJECT: CheckResult = {
  check: 'dirty-data', result: 'fail', action: 'reject', reason: 'bare-cr',
};

describe('Verdict.decide precedence', () => {
  it('delivers as clean with the 250 reply when nothing objected', () => {
    const verdict = verdictOf(
      { check: 'relay', result: 'pass' },
      { check: 'spf', result: 'none', action: 'deliver', reason: 'clean' },
    );
    const decision = verdict.decide();
    assert.equal(decision.action, 'deliver');
    assert.equal(decision.reason, 'clean');
    assert.deepEqual(decision.reply, REASONS.clean.reply);
    assert.equal(decision.decidedBy, undefined);
    assert.equal(decision.results.length, 2);
  });

  it('delivers as clean when no check recorded anything', () => {
    const decision = new Verdict().decide();
    assert.equal(decision.action, 'deliver');
    assert.equal(decision.reason, 'clean');
    assert.equal(decision.reply.code, 250);
    assert.deepEqual(decision.results, []);
    assert.deepEqual(decision.headers, []);
  });

  it('returns a copy of the clean reply, not the table row itself', () => {
    const decision = new Verdict().decide();
    decision.reply.text = 'changed by a caller';
    assert.equal(REASONS.clean.reply.text, 'Message accepted');
  });

  // Every ordered pair: the stronger action wins whichever was recorded first.
  const ladder: CheckResult[] = [TAG, QUARANTINE, TEMPFAIL, REJECT];
  for (let weaker = 0; weaker < ladder.length; weaker++) {
    for (let stronger = weaker + 1; stronger < ladder.length; stronger++) {
      const low = ladder[weaker]!;
      const high = ladder[stronger]!;
      it(`${high.action} beats ${low.action} in either order`, () => {
        assert.equal(verdictOf(low, high).decide().decidedBy, high);
        assert.equal(verdictOf(high, low).decide().decidedBy, high);
        assert.equal(verdictOf(high, low).decide().action, high.action);
      });
    }
  }

  it('reject beats everything recorded around it', () => {
    const decision = verdictOf(TAG, TEMPFAIL, REJECT, QUARANTINE).decide();
    assert.equal(decision.action, 'reject');
    assert.equal(decision.reason, 'bare-cr');
    assert.deepEqual(decision.reply, REASONS['bare-cr'].reply);
  });

  it('the first recorded result wins among equal actions', () => {
    const first: CheckResult = {
      check: 'headers', result: 'fail', action: 'reject', reason: 'too-many-headers',
    };
    const second: CheckResult = {
      check: 'clamd', result: 'fail', action: 'reject', reason: 'nul',
    };
    const decision = verdictOf(TAG, first, second).decide();
    assert.equal(decision.decidedBy, first);
    assert.equal(decision.reason, 'too-many-headers');
    assert.deepEqual(decision.reply, REASONS['too-many-headers'].reply);

    // Two tempfails: the earlier one decides too.
    const slow: CheckResult = {
      check: 'downstream', result: 'temperror', action: 'tempfail', reason: 'downstream-tempfail',
    };
    assert.equal(verdictOf(slow, TEMPFAIL).decide().reason, 'downstream-tempfail');
    assert.equal(verdictOf(TEMPFAIL, slow).decide().reason, 'internal-error');
  });

  it('a result without a reason decides with internal-error', () => {
    const decision = verdictOf({ check: 'odd', result: 'error', action: 'tempfail' }).decide();
    assert.equal(decision.reason, 'internal-error');
    assert.deepEqual(decision.reply, REASONS['internal-error'].reply);
  });
});

describe('Verdict.decide reply and headers', () => {
  it('a result carrying its own reply overrides the reason default', () => {
    const reply = { code: 554, enhanced: '5.7.1', text: 'Virus found: Eicar-Test-Signature' };
    const decision = verdictOf(
      TAG, { check: 'clamd', result: 'fail', action: 'reject', reason: 'nul', reply },
    ).decide();
    assert.deepEqual(decision.reply, reply);
    assert.equal(decision.reason, 'nul');
  });

  it('the default reply is a copy the caller may change safely', () => {
    const decision = verdictOf(REJECT).decide();
    decision.reply.code = 999;
    assert.equal(REASONS['bare-cr'].reply.code, 554);
  });

  it('keeps added headers in the order they were added', () => {
    const verdict = new Verdict();
    verdict.addHeader('Authentication-Results', 'mx.example.com; spf=pass');
    verdict.addHeader('X-Moat-Verdict', 'tag');
    verdict.addHeader('Authentication-Results', 'mx.example.com; dkim=none');
    verdict.record(TAG);
    assert.deepEqual(verdict.decide().headers, [
      ['Authentication-Results', 'mx.example.com; spf=pass'],
      ['X-Moat-Verdict', 'tag'],
      ['Authentication-Results', 'mx.example.com; dkim=none'],
    ]);
  });

  it('the decision holds a snapshot of results and headers', () => {
    const verdict = verdictOf(TAG);
    verdict.addHeader('X-One', '1');
    const decision = verdict.decide();
    verdict.record(REJECT);
    verdict.addHeader('X-Two', '2');
    assert.equal(decision.results.length, 1);
    assert.equal(decision.headers.length, 1);
    assert.equal(verdict.results.length, 2);
  });
});

describe('Verdict.refused', () => {
  it('is false with no results and with only deliver, tag and quarantine', () => {
    assert.equal(new Verdict().refused, false);
    assert.equal(verdictOf(
      { check: 'spf', result: 'pass', action: 'deliver', reason: 'clean' }, TAG, QUARANTINE,
    ).refused, false);
  });

  it('becomes true once a tempfail is recorded', () => {
    const verdict = verdictOf(TAG);
    assert.equal(verdict.refused, false);
    verdict.record(TEMPFAIL);
    assert.equal(verdict.refused, true);
  });

  it('becomes true once a reject is recorded', () => {
    assert.equal(verdictOf(QUARANTINE, REJECT).refused, true);
  });
});

describe('REASONS table', () => {
  const classOf: Record<Action, number[]> = {
    deliver: [2], tag: [2], quarantine: [2], tempfail: [4], reject: [5],
  };
  const codes = Object.keys(REASONS) as ReasonCode[];

  it('has rows', () => {
    assert.ok(codes.length > 10);
  });

  for (const code of codes) {
    it(`${code}: reply class matches its action and enhanced code`, () => {
      const spec = REASONS[code];
      const first = Math.floor(spec.reply.code / 100);
      assert.ok(spec.reply.code >= 200 && spec.reply.code <= 599, `${spec.reply.code}`);
      assert.ok(classOf[spec.action].includes(first),
        `${code}: ${spec.action} with reply ${spec.reply.code}`);
      assert.match(spec.reply.enhanced, /^[245]\.\d{1,3}\.\d{1,3}$/);
      assert.equal(spec.reply.enhanced[0], String(first),
        `${code}: ${spec.reply.code} with ${spec.reply.enhanced}`);
      assert.ok(spec.reply.text.length > 0);
      assert.ok(!/[\r\n]/.test(spec.reply.text), `${code}: reply text spans lines`);
      assert.ok(spec.meaning.length > 0);
    });
  }

  it('reasonReply returns a copy of the row reply', () => {
    const reply = reasonReply('downstream-rejected');
    assert.deepEqual(reply, REASONS['downstream-rejected'].reply);
    reply.text = 'changed';
    assert.equal(REASONS['downstream-rejected'].reply.text, 'Refused by the internal server');
  });
});

it('docs/reasons.md lists every reason code', () => {
  const doc = readFileSync(
    join(resolve(__dirname, '..', '..', '..'), 'docs', 'reasons.md'), 'utf8');
  for (const code of allReasonCodes()) {
    assert.ok(doc.includes(`| \`${code}\` |`), `missing ${code}`);
  }
});
