import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { AuthorResult } from './from-header';
import type { DmarcOutcome, MessageAuth } from './message-auth';
import { judgeMessage, type AuthEvaluation, type AuthPolicyInput } from './policy';
import type { SpfOutcome } from './spf';

const author: AuthorResult = { ok: true, fieldCount: 1,
  author: { address: 'ceo@bank.example', domain: 'bank.example' } };

const spf: SpfOutcome = { result: 'pass', identity: 'mailfrom', domain: 'bulk.example',
  comment: '', info: 'spf=pass smtp.mailfrom=x@bulk.example', durationMs: 3 };

function dmarc(result: DmarcOutcome['result'], policy?: DmarcOutcome['policy']): DmarcOutcome {
  return { result, fromDomain: 'bank.example', ...(policy ? { policy } : {}), inherited: false,
    strictSpf: false, strictDkim: false, testMode: false, comment: '', info: `dmarc=${result}` };
}

function message(d: DmarcOutcome | null, arc: MessageAuth['arc'] = {
  result: 'none', instance: 0, comment: '' }): MessageAuth {
  return { dkim: [], arc, dmarc: d, headerFrom: ['ceo@bank.example'] };
}

const input: AuthPolicyInput = {
  policy: 'enforce', temperror: 'record', quarantineAction: 'quarantine', spfFailReject: false,
  exemptDomains: [], clientExempt: false, trustedSealers: ['lists.example'],
};

function judge(evaluation: Partial<AuthEvaluation>, overrides: Partial<AuthPolicyInput> = {}) {
  return judgeMessage({ author, spf, message: message(dmarc('fail', 'reject')), ...evaluation },
    { ...input, ...overrides });
}

const dmarcRecord = (results: ReturnType<typeof judge>['results']) =>
  results.find((result) => result.check === 'dmarc');

describe('judgeMessage', () => {
  test('p=reject under enforce: reject with 550 5.7.1 naming the domain', () => {
    const record = dmarcRecord(judge({}).results);
    assert.equal(record?.action, 'reject');
    assert.equal(record?.reason, 'dmarc-reject');
    assert.equal(record?.reply?.code, 550);
    assert.equal(record?.reply?.enhanced, '5.7.1');
    assert.match(record?.reply?.text ?? '', /bank\.example/);
  });

  test('p=quarantine: quarantine, or tag when configured', () => {
    const quarantined = judge({ message: message(dmarc('fail', 'quarantine')) });
    assert.equal(dmarcRecord(quarantined.results)?.action, 'quarantine');
    const tagged = judge({ message: message(dmarc('fail', 'quarantine')) },
      { quarantineAction: 'tag' });
    assert.equal(dmarcRecord(tagged.results)?.action, 'tag');
    assert.match(tagged.tag ?? '', /dmarc=fail policy=quarantine/);
  });

  test('p=none and a pass only record', () => {
    assert.equal(dmarcRecord(judge({ message: message(dmarc('fail', 'none')) }).results)?.action,
      undefined);
    assert.equal(dmarcRecord(judge({ message: message(dmarc('pass', 'reject')) }).results)?.action,
      undefined);
  });

  test('policy tag turns the refusal into a tag; off only records', () => {
    const tagged = judge({}, { policy: 'tag' });
    assert.equal(dmarcRecord(tagged.results)?.action, 'tag');
    assert.equal(dmarcRecord(tagged.results)?.reason, 'auth-tagged');
    assert.match(tagged.tag ?? '', /policy=reject/);
    const off = judge({}, { policy: 'off' });
    assert.equal(dmarcRecord(off.results)?.action, undefined);
    assert.equal(off.tag, null);
  });

  test('exempt From domains (and subdomains) and client networks are forgiven, and say so', () => {
    const byDomain = dmarcRecord(judge({}, { exemptDomains: ['example'] }).results);
    assert.equal(byDomain?.action, undefined);
    assert.equal(byDomain?.reason, 'dmarc-exempt');
    const byNetwork = dmarcRecord(judge({}, { clientExempt: true }).results);
    assert.equal(byNetwork?.reason, 'dmarc-exempt');
    assert.equal(byNetwork?.evidence?.['exempt'], 'network');
  });

  test('ARC: only a passing chain sealed by a trusted sealer overrides', () => {
    const trusted = message(dmarc('fail', 'reject'),
      { result: 'pass', instance: 1, sealer: 'lists.example', comment: '' });
    assert.equal(dmarcRecord(judge({ message: trusted }).results)?.reason, 'dmarc-arc-override');
    const untrusted = message(dmarc('fail', 'reject'),
      { result: 'pass', instance: 1, sealer: 'other.example', comment: '' });
    assert.equal(dmarcRecord(judge({ message: untrusted }).results)?.action, 'reject');
    const broken = message(dmarc('fail', 'reject'),
      { result: 'fail', instance: 1, sealer: 'lists.example', comment: '' });
    assert.equal(dmarcRecord(judge({ message: broken }).results)?.action, 'reject');
  });

  test('an ambiguous From is refused with its own reason, before DMARC', () => {
    const { results } = judge({ author: { ok: false, problem: 'several-fields', fieldCount: 2,
      detail: '2 From header fields' } });
    const from = results.find((result) => result.check === 'from');
    assert.equal(from?.action, 'reject');
    assert.equal(from?.reason, 'from-several-fields');
  });

  test('mailauth reading another author domain counts as unparseable', () => {
    const other = { ...message(dmarc('pass', 'reject')), headerFrom: ['x@elsewhere.example'] };
    const from = judge({ message: other }).results.find((result) => result.check === 'from');
    assert.equal(from?.reason, 'from-unparseable');
  });

  test('temperror: recorded by default, 451 only where configured', () => {
    const undecided = { message: message(dmarc('temperror')) };
    assert.equal(judge(undecided).results.some((result) => result.action === 'tempfail'), false);
    const tempfail = judge(undecided, { temperror: 'tempfail' }).results
      .find((result) => result.action === 'tempfail');
    assert.equal(tempfail?.reason, 'auth-temperror');
    const timedOut = judge({ message: null, messageError: 'deadline' }, { temperror: 'tempfail' });
    assert.ok(timedOut.results.some((result) => result.reason === 'auth-temperror'));
  });

  test('SPF fail with spf_fail_action = reject refuses (or tags) the message too', () => {
    const failing: SpfOutcome = { ...spf, result: 'fail' };
    const refused = judge({ spf: failing, message: message(dmarc('pass', 'reject')) },
      { spfFailReject: true });
    assert.equal(refused.results.find((result) => result.check === 'spf')?.reason, 'spf-fail');
    const recorded = judge({ spf: failing, message: message(dmarc('pass', 'reject')) });
    assert.equal(recorded.results.find((result) => result.check === 'spf')?.action, undefined);
  });
});
