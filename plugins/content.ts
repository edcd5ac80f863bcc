/*
 * Haraka plugin `moat-content`: DATA and the end of DATA.
 *
 * While the message arrives, every line passes Moat's dirty-data checker (bare CR, NUL, bare
 * LF, over-long lines, too many header lines), the size is counted against the limit, and the
 * data rate is watched so a slow-drip client is cut off with 421 4.4.2. At the final dot the
 * results go into the verdict; moat-verdict decides once every check has recorded.
 *
 * Asks for: 552 5.3.4 (size), 554 5.6.0 (dirty data); answers 421 4.4.2 itself (slow data).
 * Untrusted input: every byte of DATA.
 * LIMITATION: Haraka refuses a bare LF itself, with 451 and a disconnect, before Moat sees the
 * line; such a message is still never forwarded, but the reply is temporary.
 */

import { DirtyDataChecker, type DirtyDataKind } from '../src/content/dirty-data';
import { SpoolBackpressure, type SpoolingStream } from '../src/content/spool-backpressure';
import { logDecision } from '../src/observability/decision-log';
import { countMessage, observeMessageSize } from '../src/observability/metrics';
import { getRuntime, injectFault } from '../src/runtime/context';
import { CONTINUE, hook, refuse } from '../src/runtime/hook';
import type { HarakaConnection } from '../src/runtime/haraka-types';
import { clientOf, transactionState, type TransactionState } from '../src/runtime/state';
import type { ReasonCode } from '../src/verdict/reasons';
import { reasonReply } from '../src/verdict/reasons';

const DIRTY_REASONS: Record<DirtyDataKind, ReasonCode> = {
  'bare-cr': 'bare-cr',
  'nul': 'nul',
  'bare-lf': 'bare-lf',
  'line-too-long': 'line-too-long',
  'too-many-headers': 'too-many-headers',
};

/** Haraka's connection state while it reads the message (haraka-constants). */
const STATE_DATA = 3;

/** How often the data rate of a transaction in DATA is checked. */
const RATE_CHECK_INTERVAL_MS = 5_000;

export function register(): void {
  getRuntime();
}

export const hook_data = hook('data', async (connection: HarakaConnection) => {
  const runtime = getRuntime();
  const transaction = connection.transaction;
  const state = transactionState(transaction);
  injectFault('hook:data');
  if (!transaction || !state) return refuse('internal-error');
  if (state.recipients.length === 0) return refuse('no-valid-recipients');

  // Every line goes through the checker and the size count before Haraka stores it.
  const limits = runtime.config.smtp;
  const dirty = new DirtyDataChecker({
    maxLineLength: limits.maxDataLineLength, maxHeaderLines: limits.maxHeaderLines,
  });
  state.dirty = dirty;
  state.dataStartedAt = Date.now();
  const store = transaction.add_data.bind(transaction);
  // A message spooled to disk faster than the disk takes it slows its sender down instead.
  const backpressure = new SpoolBackpressure(
    transaction.message_stream as unknown as SpoolingStream, connection.client,
    () => connection.state === STATE_DATA);
  state.backpressure = backpressure;
  transaction.add_data = (line: Buffer): void => {
    dirty.feed(line);
    state.dataBytes += line.length;
    if (state.dataBytes > limits.maxMessageBytes) {
      // Over the limit: keep counting, stop storing; the final dot gets 552.
      state.sizeExceeded = true;
      return;
    }
    store(line);
    backpressure.afterLine();
  };

  watchDataRate(connection, state, limits.minDataRate, limits.minDataRateGraceMs);
  return CONTINUE;
});

export const hook_data_post = hook('data_post', async (connection: HarakaConnection) => {
  const transaction = connection.transaction;
  const state = transactionState(transaction);
  if (!transaction || !state) return refuse('internal-error');
  stopRateWatch(state);
  injectFault('hook:data_post');

  // Size first: an over-size message was not stored whole, so nothing else can be judged.
  const verdict = state.verdict;
  observeMessageSize(state.dataBytes);
  if (state.sizeExceeded) {
    verdict.record({
      check: 'size', result: 'fail', action: 'reject', reason: 'size-exceeded',
      evidence: { bytes: state.dataBytes, limit: getRuntime().config.smtp.maxMessageBytes },
    });
  }

  // Dirty data: the first problem decides, with its line number as evidence.
  const report = state.dirty?.end();
  const problem = report?.firstProblem;
  if (problem) {
    verdict.record({
      check: 'dirty-data', result: 'fail', action: 'reject', reason: DIRTY_REASONS[problem.kind],
      evidence: { kind: problem.kind, line: problem.line, offset: problem.offset },
    });
  } else if (transaction.notes.data_line_length_exceeded) {
    verdict.record({
      check: 'dirty-data', result: 'fail', action: 'reject', reason: 'line-too-long',
      evidence: { kind: 'line-too-long', detected_by: 'haraka' },
    });
  } else {
    verdict.record({ check: 'dirty-data', result: 'pass' });
  }

  return CONTINUE;
});

export const hook_reset_transaction = hook('reset_transaction',
  async (connection: HarakaConnection) => {
  const state = transactionState(connection.transaction);
  if (state) stopRateWatch(state);
  state?.backpressure?.stop();
  return CONTINUE;
});

function watchDataRate(
  connection: HarakaConnection, state: TransactionState, minRate: number, graceMs: number,
): void {
  if (minRate <= 0) return;
  state.rateTimer = setInterval(() => {
    const started = state.dataStartedAt;
    if (started === null) return;
    const elapsedMs = Date.now() - started;
    if (elapsedMs < graceMs) return;
    const rate = state.dataBytes / (elapsedMs / 1000);
    if (rate >= minRate) return;

    // Too slow: answer 421 and close; the message is not accepted, the client may retry.
    stopRateWatch(state);
    const reply = reasonReply('slow-data');
    countMessage('tempfail', 'slow-data');
    logDecision({
      event: 'message', phase: 'data', action: 'tempfail', reason: 'slow-data',
      message_id: connection.transaction?.uuid, client: clientOf(connection),
      envelope: { from: state.sender, to: state.recipients },
      evidence: {
        bytes: state.dataBytes, seconds: Math.round(elapsedMs / 1000), min_rate: minRate,
      },
    });
    connection.respond(reply.code, `${reply.enhanced} ${reply.text}`,
      () => connection.disconnect());
  }, RATE_CHECK_INTERVAL_MS);
  state.rateTimer.unref();
}

function stopRateWatch(state: TransactionState): void {
  if (state.rateTimer) clearInterval(state.rateTimer);
  state.rateTimer = null;
}
