/*
 * Haraka plugin `moat-scan`: malware (clamd), spam (spamd) and MIME structure, at the end of
 * DATA.
 *
 * Skipped when an earlier check already refused the message. Otherwise the message is read
 * once and fed at the same time to clamd (whole message and each decoded attachment), Moat's
 * strict MIME walker and spamd (src/scan/scheduler.ts); src/scan/policy.ts turns the report
 * into CheckResults and headers for moat-verdict. Headers a sender could forge to fake a
 * verdict (X-Spam-Flag, X-Spam-Score, X-Spam-Status, X-Moat-Unscanned) are removed first.
 *
 * Asks for: 554 5.7.0 (malware, naming it), 554 5.6.0 (ambiguous MIME, strict), 550 5.7.1
 * (spam), 552 5.3.4 (larger than clamd takes), 451 4.7.1 (scanner down or slow), quarantine,
 * tag. Needs: clamd and spamd (MOAT_CLAMD, MOAT_SPAMD); see src/scan/runtime.ts without them.
 * Untrusted input: the whole message, and what the scanners answer.
 */

import { rm } from 'node:fs/promises';
import { PassThrough, type Readable } from 'node:stream';
import { log } from '../src/observability/decision-log';
import {
  countMimeProblem, countScan, countUnscanned, observeScan,
} from '../src/observability/metrics-scan';
import { getRuntime } from '../src/runtime/context';
import { CONTINUE, hook, refuse } from '../src/runtime/hook';
import type { HarakaConnection, HarakaTransaction } from '../src/runtime/haraka-types';
import { transactionState } from '../src/runtime/state';
import {
  judgeScan, spamThresholdsFor, VERDICT_HEADERS, type ScanJudgement,
} from '../src/scan/policy';
import { scanRuntime } from '../src/scan/runtime';
import { scanMessage, type ScanReport } from '../src/scan/scheduler';
import { SHARED_PARSE_NOTE, type BodySpill } from '../src/scan/mime/message';
import { spoolDir } from '../src/runtime/haraka-home';

/** Transaction note: the files the MIME parse spilled kept bodies into. */
const SPILL_NOTE = 'moat_scan_spill';

export function register(): void {
  // Builds the clients and says at start-up what is and is not scanned.
  scanRuntime(getRuntime().config);
}

export const hook_data_post = hook('data_post', async (connection: HarakaConnection) => {
  const runtime = getRuntime();
  const config = runtime.config;
  const transaction = connection.transaction;
  const state = transactionState(transaction);
  if (!transaction || !state) return refuse('internal-error');
  const verdict = state.verdict;
  const scanners = scanRuntime(config);

  // Nothing to scan for a message already refused.
  if (verdict.refused) {
    verdict.record({ check: 'scan', result: 'skip', evidence: { why: 'already refused' } });
    return CONTINUE;
  }

  // A message larger than clamd reads is refused, never passed on.
  const streamMax = config.scan.clamd.streamMaxLength;
  if (scanners.clamd && transaction.data_bytes > streamMax) {
    verdict.record({
      check: 'clamd', result: 'permerror', action: 'reject', reason: 'scanner-size-exceeded',
      evidence: { bytes: transaction.data_bytes, stream_max_length: streamMax },
    });
    return CONTINUE;
  }

  // Verdict headers may only come from Moat.
  for (const name of VERDICT_HEADERS) transaction.remove_header(name);

  // The one MIME parse of the message: the rules after us read it (with its decoded bodies)
  // from the transaction's notes rather than parsing the message again. Bodies past the
  // in-memory budget wait in the spool folder until the transaction ends (hook below).
  const spill: BodySpill = {
    dir: spoolDir(config), inMemoryBytes: config.scan.bodiesInMemoryBytes, files: [],
  };
  transaction.notes[SPILL_NOTE] = spill;
  const report = await scanMessage({
    open: () => openMessage(transaction), clamd: scanners.clamd, spamd: scanners.spamd,
    config: config.scan, keepBodyBytes: config.smtp.maxMessageBytes, spill,
  });
  transaction.notes[SHARED_PARSE_NOTE] = report.mime;
  const judgement = judgeScan(report, config.scan, spamThresholdsFor(config, state.recipients));

  // Into the verdict: results, headers, and the Subject prefix of tagged spam.
  for (const result of judgement.results) verdict.record(result);
  for (const [name, value] of judgement.headers) verdict.addHeader(name, value);
  if (judgement.subjectPrefix) prefixSubject(transaction, judgement.subjectPrefix);

  account(report, judgement, transaction.uuid);
  return CONTINUE;
});

/** Removes the bodies this transaction's parse wrote to disk (also on disconnect). */
export const hook_reset_transaction = hook('reset_transaction',
  async (connection: HarakaConnection) => {
    const spill = connection.transaction?.notes[SPILL_NOTE] as BodySpill | undefined;
    if (!spill) return CONTINUE;
    const files = spill.files.splice(0);
    await Promise.allSettled(files.map((file) => rm(file, { force: true })));
    return CONTINUE;
  });

function openMessage(transaction: HarakaTransaction): Readable {
  // dot_stuffed: true undoes the stored dot-stuffing: scanners read what the recipient reads.
  const output = new PassThrough({ highWaterMark: 64 * 1024 });
  transaction.message_stream.pipe(output, { dot_stuffed: true, line_endings: '\r\n' });
  return output;
}

function prefixSubject(transaction: HarakaTransaction, prefix: string): void {
  const subject = (transaction.header.get('Subject') ?? '').replace(/\r?\n$/, '').trim();
  if (subject.startsWith(prefix)) return;
  transaction.remove_header('Subject');
  transaction.add_header('Subject', subject ? `${prefix} ${subject}` : prefix);
}

/** Metrics for every scan, and one log line per message (a warning when unscanned). */
function account(report: ScanReport, judgement: ScanJudgement, messageId: string): void {
  const clamd = report.clamd;
  if (clamd.status !== 'skip') {
    const heuristic = clamd.findings.length > 0
      && clamd.findings.every((finding) => finding.signature.startsWith('Heuristics.'));
    countScan('clamd', clamd.status === 'found' ? (heuristic ? 'heuristic' : 'found')
      : clamd.status === 'clean' ? 'clean'
        : clamd.error?.kind === 'timeout' ? 'timeout'
          : clamd.error?.kind === 'too-large' ? 'too-large' : 'error');
    observeScan('clamd', clamd.seconds);
  }
  const spamd = report.spamd;
  if (spamd.status !== 'skip') {
    countScan('spamd', spamd.status === 'scored' ? (spamd.verdict?.isSpam ? 'spam' : 'ham')
      : spamd.error?.kind === 'timeout' ? 'timeout' : 'error');
    observeScan('spamd', spamd.seconds);
  }
  observeScan('all', report.seconds);
  if (report.mime.problems.length > 0) {
    countMimeProblem(judgement.results.some((result) => result.check === 'mime' && result.action)
      ? 'refused' : 'logged');
  }
  for (const entry of judgement.unscanned) countUnscanned(entry.scanner, entry.why);

  // The decision line carries each scanner's evidence; this line adds the timings and, when a
  // scanner failed and the message passed unscanned, the warning. A clean scan is debug only
  // (component `scan`), so an ordinary message writes one line, its decision.
  const failedOpen = judgement.unscanned.filter((entry) => entry.why === 'failure');
  log(failedOpen.length > 0 ? 'warn' : 'debug', 'scan',
    failedOpen.length > 0 ? 'scanner failed; message passed on UNSCANNED (on_failure = deliver)'
      : 'message scanned', {
      message_id: messageId,
      bytes: report.bytes,
      seconds: report.seconds,
      clamd: { status: clamd.status, scans: clamd.scans, seconds: clamd.seconds,
        signatures: clamd.findings.map((finding) => finding.signature).slice(0, 10),
        error: clamd.error?.message },
      spamd: { status: spamd.status, score: spamd.verdict?.score, seconds: spamd.seconds,
        rules: spamd.verdict?.symbols.slice(0, 30), prefix_only: spamd.truncated,
        error: spamd.error?.message },
      mime: report.mime.problems.slice(0, 5).map((problem) => `${problem.code}@${problem.part}`),
      unscanned: judgement.unscanned.map((entry) => `${entry.scanner}:${entry.why}`),
    });
}
