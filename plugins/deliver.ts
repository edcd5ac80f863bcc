/*
 * Haraka plugin `moat-deliver`: hands the message to the internal mailbox server.
 *
 * The promise: the client gets 250 only after the internal server answered 250 for the
 * message (or, with no server configured, after the local Maildir copy is fsynced). A 4xx from
 * the server becomes 4xx, a 5xx becomes 5xx with the server's text made safe, and a server that
 * is down or slow becomes 451 within the configured deadlines.
 *
 * Quarantine: when the verdict is `quarantine`, the message is not forwarded. It is stored
 * (src/quarantine/store.ts), written and fsynced, and only then does the sender get the same
 * `250 2.0.0 Message accepted` a delivered message gets: the sender is not told that the
 * message was held, so a spammer cannot probe the thresholds. A store failure answers
 * 451 4.3.0 (reason quarantine-store-failed) and nothing is kept.
 *
 * Needs: the forwarder (src/delivery/forwarder.ts) or the Maildir writer; the quarantine folder.
 *
 * Recipients the internal server refuses at delivery time, after Moat said 250 at RCPT: a 4xx
 * for any of them defers the whole message with that 4xx (nothing is delivered, the client
 * retries all); 5xx refusals let the others have the message, and each refused recipient gets
 * a `recipient` decision line (phase queue, reason downstream-rejected) and a count in
 * moat_recipients_total{action="reject",reason="downstream-rejected"}.
 * LIMITATION: for those 5xx refusals no bounce (DSN) is generated: the client got 250 for the
 * message. Use recipient verification (`recipients = verify`) so the internal server's
 * refusal reaches the sender at RCPT time.
 */

import { PassThrough, type Readable } from 'node:stream';
import type { DeliveryResult } from '../src/delivery/types';
import { logDecision } from '../src/observability/decision-log';
import { countMessage, countRecipient } from '../src/observability/metrics';
import {
  countQuarantineStored, countQuarantineStoreFailure,
} from '../src/observability/metrics-quarantine';
import { getQuarantine, startQuarantineMaintenance } from '../src/quarantine/runtime';
import { getRuntime, injectFault } from '../src/runtime/context';
import { CONTINUE, hook, refuse, type HookOutcome } from '../src/runtime/hook';
import type { HarakaConnection, HarakaTransaction } from '../src/runtime/haraka-types';
import { clientOf, transactionState, type TransactionState } from '../src/runtime/state';
import { reasonReply, type ReasonCode } from '../src/verdict/reasons';
import { decisionEvidence, resultsEvidence, type Decision } from '../src/verdict/verdict';

export function register(): void {
  getRuntime();
}

/** Quarantine housekeeping (retention purge, gauges) runs where mail is handled. */
export const hook_init_master = hook('init_master', async () => {
  if (getRuntime().config.smtp.workers === 0) startQuarantineMaintenance();
  return CONTINUE;
});

export const hook_init_child = hook('init_child', async () => {
  startQuarantineMaintenance();
  return CONTINUE;
});

/*
 * Delivery runs at the end of data_post, after moat-content decided, not in Haraka's queue
 * hook: Haraka's queue reply path replaces the SMTP code with 450/550, whereas data_post keeps
 * the exact code Moat chooses (451 4.4.1, 554 ...). The queue hook then only confirms the 250.
 */
export const hook_data_post = hook('data_post',
  async (connection: HarakaConnection): Promise<HookOutcome> => {
  const runtime = getRuntime();
  const transaction = connection.transaction;
  const state = transactionState(transaction);
  injectFault('hook:deliver');
  if (!transaction || !state || !state.decision) return refuse('internal-error');
  if (state.decision.action === 'quarantine') {
    return quarantine(connection, transaction, state, state.decision);
  }

  // Headers the checks asked for go on the delivered copy (removals first).
  for (const name of state.removeHeaders) transaction.remove_header(name);
  for (const [name, value] of state.decision.headers) transaction.add_header(name, value);

  // Hand the message on; the reply to the client is the internal server's.
  const result = await runtime.delivery.deliver(
    { sender: state.sender, recipients: state.recipients },
    () => openMessage(transaction),
    transaction.data_bytes,
  );
  const reason = deliveryReason(result);
  const action = result.outcome === 'delivered' || result.outcome === 'partial'
    ? state.decision.action
    : (result.outcome === 'tempfail' ? 'tempfail' : 'reject');

  // One line for the delivery; one count per refused recipient, and for a partial delivery one
  // line per recipient the server refused after the client was told 250 at RCPT.
  if (result.outcome === 'partial') {
    logPartialRefusals(connection, transaction.uuid, state, result);
  } else {
    for (const { accepted, code } of result.recipients) {
      if (!accepted) countRecipient(code >= 500 ? 'reject' : 'tempfail', reason);
    }
  }
  countMessage(action, action === 'deliver' || action === 'tag' ? state.decision.reason : reason);
  logDecision({
    event: 'delivery', phase: 'queue', action, reason,
    message_id: transaction.uuid, client: clientOf(connection),
    envelope: { from: state.sender, to: state.recipients },
    downstream: { code: result.code, text: `${result.enhanced} ${result.text}`.trim() },
    evidence: {
      ...state.logEvidence,
      verdict: state.decision.reason,
      // The delivery's own `detail` below; the deciding check is in `verdict`.
      ...resultsEvidence(state.decision.results),
      downstream: result.downstream,
      tls: result.tls,
      size: transaction.data_bytes,
      detail: result.detail,
      refused: result.recipients.filter((entry) => !entry.accepted)
        .map((entry) => `${entry.recipient} ${entry.code} ${entry.enhanced}`.trim()),
    },
    duration_ms: Date.now() - state.startedAt,
  });

  // The reply: 250 only when the server took the message.
  const reply = { code: result.code, enhanced: result.enhanced || defaultEnhanced(result.code),
    text: result.text };
  if (result.outcome === 'delivered' || result.outcome === 'partial') {
    state.deliveredReply = reply;
    return CONTINUE;
  }
  return { kind: 'refuse', reply };
});

/** The message is already with the internal server: confirm with its 250. */
export const hook_queue = hook('queue',
  async (connection: HarakaConnection): Promise<HookOutcome> => {
  const state = transactionState(connection.transaction);
  if (!state?.deliveredReply) return refuse('internal-error');
  return { kind: 'accept', reply: state.deliveredReply };
});

/** Store instead of forwarding; 250 only once the copy is on disk. */
async function quarantine(
  connection: HarakaConnection,
  transaction: HarakaTransaction,
  state: TransactionState,
  decision: Decision,
): Promise<HookOutcome> {
  const client = clientOf(connection);
  const envelope = { from: state.sender, to: state.recipients };
  let id: string;
  let failure: string | null = null;
  try {
    const record = await getQuarantine().store({
      messageId: transaction.uuid,
      receivedAt: new Date(state.startedAt),
      envelope,
      client,
      verdict: {
        action: decision.action, reason: decision.reason, reply: decision.reply,
        decidedBy: decision.decidedBy?.check ?? null,
      },
      results: decision.results,
      addedHeaders: decision.headers,
    }, () => openMessage(transaction));
    id = record.id;
    countQuarantineStored(record.size);
  } catch (error) {
    id = '';
    failure = error instanceof Error ? error.message : String(error);
    countQuarantineStoreFailure();
  }

  // One line either way: the verdict's reason, and where the message is (or why it is not).
  const reason: ReasonCode = failure === null ? decision.reason : 'quarantine-store-failed';
  const action = failure === null ? 'quarantine' : 'tempfail';
  countMessage(action, reason);
  logDecision({
    event: 'message', phase: 'data', action, reason,
    message_id: transaction.uuid, client, envelope,
    evidence: {
      ...state.logEvidence,
      ...(failure === null ? { quarantine_id: id } : { error: failure, verdict: decision.reason }),
      size: transaction.data_bytes,
      ...decisionEvidence(decision),
    },
    duration_ms: Date.now() - state.startedAt,
  });
  if (failure !== null) return refuse('quarantine-store-failed');

  // The sender gets what a delivered message gets.
  state.deliveredReply = reasonReply('clean');
  return CONTINUE;
}

/*
 * A partial delivery: the server took the message for some recipients and refused the others
 * with 5xx (a 4xx defers the whole message, see src/delivery/forwarder.ts). The client already
 * has 250 for them and gets 250 for the message, so this line and the count are all that say
 * so; no DSN is sent.
 */
function logPartialRefusals(
  connection: HarakaConnection, messageId: string, state: TransactionState,
  result: DeliveryResult,
): void {
  for (const refused of result.recipients.filter((entry) => !entry.accepted)) {
    countRecipient('reject', 'downstream-rejected');
    logDecision({
      event: 'recipient', phase: 'queue', action: 'reject', reason: 'downstream-rejected',
      message_id: messageId, client: clientOf(connection),
      envelope: { from: state.sender, to: [refused.recipient] },
      downstream: { code: refused.code, text: `${refused.enhanced} ${refused.text}`.trim() },
      evidence: {
        downstream: result.downstream,
        after_rcpt_250: true,
        dsn: 'none (recipients = verify refuses at RCPT instead)',
      },
    });
  }
}

function openMessage(transaction: HarakaTransaction): Readable {
  // dot_stuffed: true tells Haraka the stored lines are dot-stuffed, so it undoes that: the
  // forwarder stuffs again for the wire, and the Maildir gets the message as written.
  const output = new PassThrough();
  transaction.message_stream.pipe(output, { dot_stuffed: true, line_endings: '\r\n' });
  return output;
}

function deliveryReason(result: DeliveryResult): ReasonCode {
  switch (result.outcome) {
    case 'delivered': return 'downstream-accepted';
    case 'partial': return 'downstream-partial';
    case 'tempfail': return 'downstream-tempfail';
    case 'rejected': return 'downstream-rejected';
  }
}

function defaultEnhanced(code: number): string {
  return `${Math.floor(code / 100)}.0.0`;
}
