/*
 * Turns a ScanReport into CheckResults, headers and a Subject prefix: what the scanners found
 * becomes a verdict request with its evidence (signature names, score, rules, MIME problems).
 *
 * - MIME problems: strict → reject 554 5.6.0 with the first problem's code; lenient → logged.
 * - clamd: a signature → clamd.action (reject 554 5.7.0 naming it, or quarantine); only
 *   Heuristics.* signatures → clamd.heuristics_action; a size refusal → 552 5.3.4 always;
 *   down/slow/garbage → clamd.on_failure (451 4.7.1, or deliver with X-Moat-Unscanned).
 * - spamd: reject / quarantine / tag by the thresholds of the recipients' domains; tagged and
 *   quarantined mail gets X-Spam-Flag, X-Spam-Score and X-Spam-Status; down/slow →
 *   spamd.on_failure (451 4.7.1, or deliver with X-Moat-Unscanned: spam).
 * Pure: no I/O, so every branch is unit-tested.
 */

import type { MoatConfig } from '../config/types';
import type { ScanConfig, SpamThresholds } from '../config/sections/scan';
import type { SmtpReply } from '../verdict/reasons';
import { reasonReply } from '../verdict/reasons';
import type { CheckResult } from '../verdict/verdict';
import type { ScanReport } from './scheduler';

export const UNSCANNED_HEADER = 'X-Moat-Unscanned';
/** Headers only Moat may set: copies arriving with the message are removed before scanning. */
export const VERDICT_HEADERS = [UNSCANNED_HEADER, 'X-Spam-Flag', 'X-Spam-Score', 'X-Spam-Status'];

const MAX_RULES_SHOWN = 60;

export interface ScanJudgement {
  results: CheckResult[];
  headers: Array<[string, string]>;
  /** Put before the Subject (tagged spam with a configured prefix). */
  subjectPrefix: string | null;
  /** Scanners whose verdict is missing while the message goes on (fail-open or absent). */
  unscanned: Array<{
    scanner: 'clamd' | 'spamd'; why: 'failure' | 'not-configured'; detail: string;
  }>;
}

export function judgeScan(
  report: ScanReport, config: ScanConfig, thresholds: SpamThresholds,
): ScanJudgement {
  const judgement: ScanJudgement = { results: [], headers: [], subjectPrefix: null, unscanned: [] };
  judgeMime(report, config, judgement);
  judgeClamd(report, config, judgement);
  judgeSpamd(report, config, thresholds, judgement);
  return judgement;
}

function judgeMime(report: ScanReport, config: ScanConfig, judgement: ScanJudgement): void {
  const problems = report.mime.problems;
  const first = problems[0];
  if (!first) {
    judgement.results.push({ check: 'mime', result: 'pass',
      evidence: { parts: report.mime.parts.length, attachments: report.mime.attachments.length } });
    return;
  }
  const evidence = {
    problems: problems.slice(0, 5)
      .map((problem) => `${problem.code}@${problem.part}: ${problem.detail}`),
    count: problems.length,
  };
  if (config.mimeStrictness === 'strict') {
    judgement.results.push({
      check: 'mime', result: 'permerror', action: 'reject', reason: first.code, evidence,
    });
  } else {
    judgement.results.push({
      check: 'mime', result: 'neutral', evidence: { ...evidence, lenient: true },
    });
  }
}

function judgeClamd(report: ScanReport, config: ScanConfig, judgement: ScanJudgement): void {
  const clamd = report.clamd;
  const evidence: Record<string, unknown> = { scans: clamd.scans, seconds: clamd.seconds };
  if (clamd.address) evidence['clamd'] = clamd.address;

  switch (clamd.status) {
    case 'skip':
      judgement.results.push({
        check: 'clamd', result: 'skip', evidence: { why: 'no clamd.address' },
      });
      judgement.unscanned.push({
        scanner: 'clamd', why: 'not-configured', detail: 'clamd not configured',
      });
      judgement.headers.push([UNSCANNED_HEADER, 'malware (clamd not configured)']);
      return;
    case 'clean':
      judgement.results.push({ check: 'clamd', result: 'pass', evidence });
      return;
    case 'found': {
      const signatures = [...new Set(clamd.findings.map((finding) => finding.signature))];
      const malware = signatures.filter((name) => !name.startsWith('Heuristics.'));
      const heuristic = malware.length === 0;
      const shown = (heuristic ? signatures : malware)[0] ?? 'unknown';
      const action = heuristic ? config.clamd.heuristicsAction : config.clamd.action;
      evidence['signatures'] = signatures.slice(0, 10);
      evidence['found_in'] = clamd.findings.slice(0, 10).map((finding) =>
        (finding.filename ? `${finding.where} (${finding.filename})` : finding.where));
      if (action === 'reject') {
        const reason = heuristic ? 'scan-limit-exceeded' : 'malware-found';
        judgement.results.push({
          check: 'clamd', result: 'fail', action, reason, evidence,
          reply: namingReply(reason, shown),
        });
        return;
      }
      judgement.results.push({
        check: 'clamd', result: 'fail', action, evidence,
        reason: heuristic ? 'scan-limit-quarantined' : 'malware-quarantined',
      });
      return;
    }
    case 'error': {
      const error = clamd.error;
      evidence['failure'] = error?.kind ?? 'unavailable';
      evidence['error'] = error?.message;
      if (error?.kind === 'too-large') {
        judgement.results.push({
          check: 'clamd', result: 'permerror', action: 'reject', reason: 'scanner-size-exceeded',
          evidence,
        });
        return;
      }
      if (config.clamd.onFailure === 'tempfail') {
        judgement.results.push({
          check: 'clamd', result: 'temperror', action: 'tempfail', reason: 'clamd-unavailable',
          evidence,
        });
        return;
      }
      evidence['fail_open'] = true;
      judgement.results.push({
        check: 'clamd', result: 'temperror', reason: 'clamd-unavailable', evidence,
      });
      judgement.unscanned.push({ scanner: 'clamd', why: 'failure', detail: error?.message ?? '' });
      judgement.headers.push([UNSCANNED_HEADER, `malware (clamd ${error?.kind ?? 'unavailable'})`]);
    }
  }
}

function judgeSpamd(
  report: ScanReport, config: ScanConfig, thresholds: SpamThresholds, judgement: ScanJudgement,
): void {
  const spamd = report.spamd;
  if (spamd.status === 'skip') {
    judgement.results.push({
      check: 'spamd', result: 'skip', evidence: { why: 'no spamd.address' },
    });
    judgement.unscanned.push({
      scanner: 'spamd', why: 'not-configured', detail: 'spamd not configured',
    });
    judgement.headers.push([UNSCANNED_HEADER, 'spam (spamd not configured)']);
    return;
  }

  if (spamd.status === 'error' || !spamd.verdict) {
    const error = spamd.error;
    const evidence = { failure: error?.kind ?? 'unavailable', error: error?.message };
    if (config.spamd.onFailure === 'tempfail') {
      judgement.results.push({
        check: 'spamd', result: 'temperror', action: 'tempfail', reason: 'spamd-unavailable',
        evidence,
      });
      return;
    }
    judgement.results.push({
      check: 'spamd', result: 'temperror', reason: 'spamd-unavailable',
      evidence: { ...evidence, fail_open: true },
    });
    judgement.unscanned.push({ scanner: 'spamd', why: 'failure', detail: error?.message ?? '' });
    judgement.headers.push([UNSCANNED_HEADER, `spam (spamd ${error?.kind ?? 'unavailable'})`]);
    return;
  }

  // Scored: the strongest threshold reached decides.
  const { score, symbols } = spamd.verdict;
  const evidence = {
    score, rules: symbols.slice(0, MAX_RULES_SHOWN), spamd_required: spamd.verdict.threshold,
    spamd: spamd.verdict.address, seconds: spamd.seconds,
    ...(spamd.truncated ? { prefix_only: true, bytes_scored: spamd.bytesSent } : {}),
  };
  const reached = (limit: number | null): boolean => limit !== null && score >= limit;
  const tagHeaders = (): void => {
    const required = thresholds.tag ?? thresholds.quarantine ?? thresholds.reject ?? 0;
    judgement.headers.push(['X-Spam-Flag', 'YES']);
    judgement.headers.push(['X-Spam-Score', score.toFixed(1)]);
    judgement.headers.push(['X-Spam-Status', statusLine('Yes', score, required, symbols)]);
  };

  if (reached(thresholds.reject)) {
    judgement.results.push({
      check: 'spamd', result: 'fail', action: 'reject', reason: 'spam-rejected',
      evidence: { ...evidence, threshold: thresholds.reject },
    });
    return;
  }
  if (reached(thresholds.quarantine)) {
    tagHeaders();
    judgement.results.push({
      check: 'spamd', result: 'fail', action: 'quarantine', reason: 'spam-quarantined',
      evidence: { ...evidence, threshold: thresholds.quarantine },
    });
    return;
  }
  if (reached(thresholds.tag)) {
    tagHeaders();
    if (thresholds.subjectPrefix) judgement.subjectPrefix = thresholds.subjectPrefix;
    judgement.results.push({
      check: 'spamd', result: 'softfail', action: 'tag', reason: 'spam-tagged',
      evidence: { ...evidence, threshold: thresholds.tag },
    });
    return;
  }
  // Below every threshold the message is left exactly as sent; the score is in the log.
  judgement.results.push({ check: 'spamd', result: 'pass', evidence });
}

function statusLine(flag: 'Yes', score: number, required: number, rules: string[]): string {
  const tests = rules.slice(0, MAX_RULES_SHOWN).join(',') || 'none';
  return `${flag}, score=${score.toFixed(1)} required=${required.toFixed(1)} tests=${tests}`;
}

/** The reason's reply with the signature named; the name is reduced to safe characters. */
function namingReply(
  reason: 'malware-found' | 'scan-limit-exceeded', signature: string,
): SmtpReply {
  const base = reasonReply(reason);
  const name = signature.replace(/[^A-Za-z0-9._:-]/g, '').slice(0, 80) || 'unknown';
  return { ...base, text: `${base.text} (${name})` };
}

/**
 * The spam thresholds for a message: for each one, the strictest (lowest) among the
 * recipients' domains, each domain's `[domain]` override or else the global value. The
 * subject prefix is the first one set.
 */
export function spamThresholdsFor(
  config: MoatConfig, recipients: readonly string[],
): SpamThresholds {
  const global = config.scan.spamd.thresholds;
  const domains = [...new Set(
    recipients.map((address) => address.slice(address.lastIndexOf('@') + 1)))];
  const policies = domains.map((domain) => config.domains.get(domain)?.overrides)
    .filter((overrides): overrides is Map<string, unknown> => overrides !== undefined);
  if (policies.length === 0) return { ...global };

  const pick = (key: string, fallback: number | null): number | null => {
    const values = policies.map((overrides) =>
      (overrides.has(key) ? overrides.get(key) as number | null : fallback));
    const set = values.filter((value): value is number => value !== null);
    return set.length === 0 ? null : Math.min(...set);
  };
  const prefixes = policies.map((overrides) =>
    (overrides.has('spam_subject_prefix') ? overrides.get('spam_subject_prefix') as string
      : global.subjectPrefix));
  return {
    tag: pick('spam_tag_score', global.tag),
    quarantine: pick('spam_quarantine_score', global.quarantine),
    reject: pick('spam_reject_score', global.reject),
    subjectPrefix: prefixes.find((prefix) => prefix !== '') ?? '',
  };
}
