/*
 * policy.ts: what each scanner outcome asks of the verdict, and the start-up size check in
 * the scan settings (src/config/sections/scan.ts).
 */

import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { loadConfig } from '../config/load';
import { ConfigError } from '../config/errors';
import type { ScanConfig, SpamThresholds } from '../config/sections/scan';
import { ScannerError } from './errors';
import { judgeScan, spamThresholdsFor } from './policy';
import type { ScanReport } from './scheduler';

function config(ini = '', env: Record<string, string> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'moat-scan-policy-'));
  writeFileSync(join(dir, 'moat.ini'), ini);
  return loadConfig({
    root: dir, configDir: dir, env: { MOAT_DOMAINS: 'example.com,example.net', ...env },
  });
}

const SCAN: ScanConfig = config().scan;
const THRESHOLDS: SpamThresholds = { tag: 5, quarantine: 10, reject: 15, subjectPrefix: '' };

function report(overrides: Partial<ScanReport> = {}): ScanReport {
  return {
    clamd: { status: 'clean', findings: [], scans: 1, seconds: 0.01 },
    spamd: { status: 'scored', bytesSent: 10, truncated: false, seconds: 0.1,
      verdict: { isSpam: false, score: 1, threshold: 5, symbols: ['RULE_A'], address: 'a:1' } },
    mime: { root: {} as never, parts: [], attachments: [], problems: [] },
    bytes: 10, seconds: 0.1, ...overrides,
  };
}

function spam(score: number): Partial<ScanReport> {
  return { spamd: { status: 'scored', bytesSent: 10, truncated: false, seconds: 0.1,
    verdict: { isSpam: score >= 5, score, threshold: 5, symbols: ['GTUBE'], address: 'a:1' } } };
}

const check = (judgement: ReturnType<typeof judgeScan>, name: string) =>
  judgement.results.find((result) => result.check === name);

describe('judgeScan', () => {
  it('clean mail asks for nothing', () => {
    const judgement = judgeScan(report(), SCAN, THRESHOLDS);
    assert.ok(judgement.results.every((result) => result.action === undefined));
    assert.deepEqual(judgement.unscanned, []);
  });

  it('a signature rejects naming it; Heuristics follow their own action', () => {
    const found = report({ clamd: { status: 'found', scans: 2, seconds: 0.1,
      findings: [{ signature: 'Win.Test.EICAR_HDB-1', where: '2', filename: 'a.com' }] } });
    const result = check(judgeScan(found, SCAN, THRESHOLDS), 'clamd');
    assert.equal(result?.reason, 'malware-found');
    assert.equal(result?.reply?.text, 'Message refused: malware found (Win.Test.EICAR_HDB-1)');

    const heuristic = report({ clamd: { status: 'found', scans: 1, seconds: 0.1,
      findings: [{ signature: 'Heuristics.Encrypted.Zip', where: 'message' }] } });
    const quarantining = {
      ...SCAN, clamd: { ...SCAN.clamd, heuristicsAction: 'quarantine' as const },
    };
    const held = check(judgeScan(heuristic, quarantining, THRESHOLDS), 'clamd');
    assert.equal(held?.action, 'quarantine');
    assert.equal(held?.reason, 'scan-limit-quarantined');
  });

  it('clamd failure: tempfail, or deliver marked; too large is always refused', () => {
    const failed = report({ clamd: { status: 'error', findings: [], scans: 1, seconds: 3,
      error: new ScannerError('clamd', 'timeout', 'a:1', 'slow') } });
    assert.equal(check(judgeScan(failed, SCAN, THRESHOLDS), 'clamd')?.action, 'tempfail');

    const open = { ...SCAN, clamd: { ...SCAN.clamd, onFailure: 'deliver' as const } };
    const judgement = judgeScan(failed, open, THRESHOLDS);
    assert.equal(check(judgement, 'clamd')?.action, undefined);
    assert.deepEqual(judgement.headers[0], ['X-Moat-Unscanned', 'malware (clamd timeout)']);

    const large = report({ clamd: { status: 'error', findings: [], scans: 1, seconds: 1,
      error: new ScannerError('clamd', 'too-large', 'a:1', 'limit') } });
    assert.equal(check(judgeScan(large, open, THRESHOLDS), 'clamd')?.reason,
      'scanner-size-exceeded');
  });

  it('spam scores: reject, quarantine, tag with headers and prefix, or pass', () => {
    assert.equal(check(judgeScan(report(spam(20)), SCAN, THRESHOLDS), 'spamd')?.reason,
      'spam-rejected');
    assert.equal(check(judgeScan(report(spam(12)), SCAN, THRESHOLDS), 'spamd')?.reason,
      'spam-quarantined');
    const tagged = judgeScan(report(spam(6)), SCAN, { ...THRESHOLDS, subjectPrefix: '[SPAM]' });
    assert.equal(check(tagged, 'spamd')?.action, 'tag');
    assert.equal(tagged.subjectPrefix, '[SPAM]');
    assert.deepEqual(tagged.headers.map(([name]) => name),
      ['X-Spam-Flag', 'X-Spam-Score', 'X-Spam-Status']);
    const negative = judgeScan(report(spam(-2.5)), SCAN, THRESHOLDS);
    assert.equal(check(negative, 'spamd')?.result, 'pass');
    assert.deepEqual(negative.headers, []);
    assert.equal(check(negative, 'spamd')?.evidence?.['score'], -2.5);
  });

  it('strict MIME rejects with the first problem code; lenient only records', () => {
    const odd = report({ mime: { root: {} as never, parts: [], attachments: [],
      problems: [{ code: 'mime-boundary-prefix', part: '1', detail: 'x' }] } });
    assert.equal(check(judgeScan(odd, SCAN, THRESHOLDS), 'mime')?.reason, 'mime-boundary-prefix');
    const lenient = { ...SCAN, mimeStrictness: 'lenient' as const };
    assert.equal(check(judgeScan(odd, lenient, THRESHOLDS), 'mime')?.action, undefined);
  });
});

describe('spam thresholds per domain', () => {
  it('takes the strictest value among the recipients\' domains; empty switches one off', () => {
    const loaded = config('[domain example.net]\nspam_reject_score = 8\nspam_tag_score =\n'
      + 'spam_subject_prefix = [SPAM]\n');
    assert.deepEqual(spamThresholdsFor(loaded, ['a@example.com']),
      { tag: 5, quarantine: null, reject: 15, subjectPrefix: '' });
    assert.deepEqual(spamThresholdsFor(loaded, ['a@example.net']),
      { tag: null, quarantine: null, reject: 8, subjectPrefix: '[SPAM]' });
    assert.deepEqual(spamThresholdsFor(loaded, ['a@example.com', 'b@example.net']),
      { tag: 5, quarantine: null, reject: 8, subjectPrefix: '[SPAM]' });
  });
});

describe('start-up size check', () => {
  it('refuses a message size limit above what clamd takes', () => {
    assert.throws(
      () => config('[smtp]\nmax_message_size = 50M\n', { MOAT_CLAMD: '127.0.0.1:3310' }),
      (error: unknown) => error instanceof ConfigError
        && error.problem.key === 'clamd.stream_max_length');
    const fits = config('[smtp]\nmax_message_size = 50M\n[clamd]\nstream_max_length = 64M\n',
      { MOAT_CLAMD: '127.0.0.1:3310' });
    assert.equal(fits.scan.clamd.streamMaxLength, 64 * 1024 * 1024);
  });

  it('refuses to start without clamd when clamd.required is set', () => {
    assert.throws(() => config('[clamd]\nrequired = true\n'),
      (error: unknown) => error instanceof ConfigError && error.problem.key === 'clamd.address');
  });
});
