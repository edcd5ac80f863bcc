/*
 * Haraka plugin `moat-envelope`: MAIL FROM and RCPT TO.
 *
 * Decides: 553 for a sender path that does not parse, 552 for a declared SIZE over the limit,
 * 550 5.7.1 for any recipient outside the accepted domains (including every open-relay trick),
 * 550 5.1.1 for an unknown mailbox, 450 4.4.3 when the internal server cannot be asked, and
 * 452 4.5.3 past the recipient limit. A recipient that passes is handed on (CONTINUE): later
 * checks may still refuse it, and moat-verdict gives the final 250.
 *
 * Untrusted input: the command line exactly as the client sent it. Moat parses the path itself
 * (src/envelope/address.ts) rather than trusting Haraka's lenient address parser.
 */

import { parseEnvelopePath } from '../src/envelope/address';
import { extractCommandPath } from '../src/envelope/command';
import { decideRecipient, decideSender } from '../src/envelope/relay';
import { logDecision } from '../src/observability/decision-log';
import { countRecipient, countTransaction } from '../src/observability/metrics';
import { getRuntime, injectFault } from '../src/runtime/context';
import { CONTINUE, hook, refuse, type HookOutcome } from '../src/runtime/hook';
import type { HarakaAddress, HarakaConnection } from '../src/runtime/haraka-types';
import { clientOf, startTransaction, transactionState } from '../src/runtime/state';
import type { EnvelopeDecision } from '../src/envelope/decision';

export function register(): void {
  getRuntime();
}

export const hook_mail = hook('mail',
  async (connection: HarakaConnection, params: [HarakaAddress, Record<string, string | null>]) => {
    const runtime = getRuntime();
    injectFault('hook:mail');

    // A gateway that is stopping takes no new transaction.
    if (runtime.draining) return refuse('draining', undefined, true);
    if (connection.early_talker) return refuse('early-talker', undefined, true);

    // The sender path, parsed from the line the client sent.
    const smtputf8 = params[1]?.['SMTPUTF8'] !== undefined;
    const path = extractCommandPath(connection.current_line ?? '', 'MAIL FROM');
    const sender = parseEnvelopePath(path ?? '', { role: 'sender', smtputf8 });
    const decision = decideSender(sender);
    if (decision.action !== 'accept') {
      logEnvelope(connection, 'mail', decision, path ?? '', []);
      return { kind: 'refuse', reply: replyOf(decision) };
    }

    // A declared size over the limit is refused before any data is sent.
    const declared = Number(params[1]?.['SIZE'] ?? 0);
    if (Number.isFinite(declared) && declared > runtime.config.smtp.maxMessageBytes) {
      logDecision({
        event: 'message', phase: 'mail', action: 'reject', reason: 'size-declared-too-big',
        message_id: connection.transaction?.uuid, client: clientOf(connection),
        envelope: { from: sender.ok ? sender.address : '' },
        evidence: { declared_size: declared, limit: runtime.config.smtp.maxMessageBytes },
      });
      return refuse('size-declared-too-big');
    }

    if (connection.transaction) {
      startTransaction(connection.transaction, sender.ok ? sender.address : '');
    }
    countTransaction();
    // Later checks (sender authentication) may still refuse; Haraka accepts when all continue.
    return CONTINUE;
  });

export const hook_rcpt = hook('rcpt',
  async (connection: HarakaConnection): Promise<HookOutcome> => {
  const runtime = getRuntime();
  const transaction = connection.transaction;
  const state = transactionState(transaction);
  injectFault('hook:rcpt');
  if (!transaction || !state) return refuse('internal-error');

  // The recipient limit comes first: past it, nothing else matters for this transaction.
  const path = extractCommandPath(connection.current_line ?? '', 'RCPT TO') ?? '';
  if (state.recipients.length >= runtime.config.smtp.maxRecipients) {
    state.refusedRecipients++;
    countRecipient('tempfail', 'too-many-recipients');
    logDecision({
      event: 'recipient', phase: 'rcpt', action: 'tempfail', reason: 'too-many-recipients',
      message_id: transaction.uuid, client: clientOf(connection),
      envelope: { from: state.sender, to: [path] },
      evidence: { limit: runtime.config.smtp.maxRecipients },
    });
    return refuse('too-many-recipients');
  }

  // Relay control on the path as sent, then the mailbox itself.
  const rcpt = parseEnvelopePath(path, { role: 'recipient', smtputf8: false });
  const relay = decideRecipient(rcpt, runtime.config.domains);
  let decision: EnvelopeDecision = relay;
  if (relay.action === 'accept' && relay.policy && rcpt.ok) {
    decision = await runtime.recipients.check(rcpt, relay.policy);
  }

  if (decision.action !== 'accept') {
    state.refusedRecipients++;
    logEnvelope(connection, 'rcpt', decision, path, [path]);
    return { kind: 'refuse', reply: replyOf(decision) };
  }

  // Accepted at this stage; moat-verdict gives the final 250 once every RCPT check agreed.
  state.pendingRecipient = { address: rcpt.ok ? rcpt.address : path, reply: replyOf(decision),
    reason: decision.reason };
  return CONTINUE;
});

function replyOf(decision: EnvelopeDecision) {
  return { code: decision.code, enhanced: decision.enhanced, text: decision.text };
}

function logEnvelope(
  connection: HarakaConnection, phase: 'mail' | 'rcpt', decision: EnvelopeDecision,
  path: string, to: string[],
): void {
  const state = transactionState(connection.transaction);
  const action = decision.action === 'accept' ? 'deliver' : decision.action;
  if (phase === 'rcpt') countRecipient(action, decision.reason);
  logDecision({
    event: phase === 'rcpt' ? 'recipient' : 'message', phase, action: decision.action,
    reason: decision.reason, message_id: connection.transaction?.uuid ?? connection.uuid,
    client: clientOf(connection),
    envelope: { from: phase === 'mail' ? path : (state?.sender ?? ''), to },
    evidence: { ...decision.evidence, reply: `${decision.code} ${decision.enhanced}` },
  });
}

export { CONTINUE };
