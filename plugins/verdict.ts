/*
 * Haraka plugin `moat-verdict`: the one decision.
 *
 * Connect: a connection every earlier connect check let through is counted `accepted`.
 * RCPT: every earlier RCPT check has continued, so the recipient is accepted here with the
 * reply moat-envelope prepared. End of DATA: every check has recorded its result in the
 * transaction's Verdict; decide() turns them into exactly one action, reason and reply. A
 * refusal (reject, tempfail) is answered and logged here; anything else continues to
 * moat-deliver, which gives the final 250 only once the internal server took the message.
 *
 * This plugin stays last before moat-deliver in config/plugins: checks added later (sender
 * authentication, scanners, rules) register between moat-content and moat-verdict.
 */

import { logDecision } from '../src/observability/decision-log';
import { countConnection, countMessage, countRecipient } from '../src/observability/metrics';
import { getRuntime } from '../src/runtime/context';
import { CONTINUE, hook, refuse, type HookOutcome } from '../src/runtime/hook';
import type { HarakaConnection } from '../src/runtime/haraka-types';
import { clientOf, transactionState } from '../src/runtime/state';
import { decisionEvidence } from '../src/verdict/verdict';

export function register(): void {
  getRuntime();
}

/** Haraka runs this only when every earlier connect hook (limits, DNS lists) continued. */
export const hook_connect = hook('connect', async () => {
  countConnection('accepted');
  return CONTINUE;
});

export const hook_rcpt = hook('rcpt',
  async (connection: HarakaConnection): Promise<HookOutcome> => {
  const state = transactionState(connection.transaction);
  const pending = state?.pendingRecipient;
  if (!state || !pending) return refuse('internal-error');

  state.pendingRecipient = null;
  state.recipients.push(pending.address);
  countRecipient('deliver', pending.reason);
  return { kind: 'accept', reply: pending.reply };
});

export const hook_data_post = hook('data_post', async (connection: HarakaConnection) => {
  const transaction = connection.transaction;
  const state = transactionState(transaction);
  if (!transaction || !state) return refuse('internal-error');

  const decision = state.verdict.decide();
  state.decision = decision;
  if (decision.action !== 'reject' && decision.action !== 'tempfail') return CONTINUE;

  countMessage(decision.action, decision.reason);
  logDecision({
    event: 'message', phase: 'data', action: decision.action, reason: decision.reason,
    message_id: transaction.uuid, client: clientOf(connection),
    envelope: { from: state.sender, to: state.recipients },
    evidence: {
      ...state.logEvidence,
      reply: `${decision.reply.code} ${decision.reply.enhanced}`,
      size: state.dataBytes,
      ...decisionEvidence(decision),
    },
    duration_ms: Date.now() - state.startedAt,
  });
  return refuse(decision.reason, decision.reply);
});
