/*
 * Haraka plugin `moat-rules`: the content-control rules of rules/*.yaml, at the end of DATA.
 *
 * Runs after moat-auth and moat-scan, so their results (SPF, DKIM, DMARC, blocklists, spam
 * score, virus) are in the verdict for rules to read, and before moat-verdict, which turns the
 * rules' `rule:<id>` results into the one decision with everything else. Changes to the
 * delivered copy (subject tag, headers, redirect) are made here; copies and notifications are
 * sent from the queue hook, once the internal server accepted the message (src/rules/actions).
 *
 * Can decide: 550 5.7.1 or the rule's own reject text, 451 4.7.1 (tempfail), quarantine, tag.
 * A bad rule set stops start-up (one line per problem, exit 2); a bad set at reload is refused
 * and the previous one keeps running (src/rules/reload.ts). Needs: the rules folder.
 * Untrusted input: the whole message; evidence is masked and cut before it is logged.
 */

import { PassThrough, Readable } from 'node:stream';
import { log } from '../src/observability/decision-log';
import {
  countRuleHit, countRuleSideEffect, observeRulesEvaluation,
} from '../src/observability/metrics-rules';
import { getRuntime } from '../src/runtime/context';
import { CONTINUE, hook, refuse, type HookOutcome } from '../src/runtime/hook';
import type { HarakaConnection, HarakaTransaction } from '../src/runtime/haraka-types';
import { connectionState, transactionState, type TransactionState } from '../src/runtime/state';
import {
  actionLabel, checkResults, logSummary, notificationMessage, plannedEffects, taggedSubject,
  type RuleEffects,
} from '../src/rules/actions';
import { runRules, type RulesOutcome } from '../src/rules/engine';
import { RulesError } from '../src/rules/errors';
import { fromRawMessage, headerValues, type RuleMessage } from '../src/rules/message';
import { directionOf, getRules, internalNetworks } from '../src/rules/runtime';
import { fromParsedMessage, hasBodies } from '../src/rules/scan-adapter';
import { SHARED_PARSE_NOTE, type ParsedMessage } from '../src/scan/mime/message';

interface Pending {
  outcome: RulesOutcome;
  effects: RuleEffects;
  message: RuleMessage;
  envelope: { sender: string; recipients: string[] };
}

const pendingByState = new WeakMap<TransactionState, Pending>();

export function register(): void {
  const runtime = getRuntime();
  try {
    getRules(runtime.config);
  } catch (error) {
    if (!(error instanceof RulesError)) throw error;
    for (const line of error.lines()) process.stderr.write(`moat: configuration error: ${line}\n`);
    process.exit(2);
  }
}

export const hook_data_post = hook('data_post',
  async (connection: HarakaConnection): Promise<HookOutcome> => {
  const runtime = getRuntime();
  const config = runtime.config;
  const transaction = connection.transaction;
  const state = transactionState(transaction);
  if (!transaction || !state) return refuse('internal-error');
  const set = getRules(config).current;
  if (state.verdict.refused) {
    state.logEvidence['rules'] = { version: set.version, skipped: 'already refused' };
    return CONTINUE;
  }

  // The message once, and the facts the rules need about its envelope.
  const message = await messageOf(transaction);
  const acceptedDomains = new Set(config.domains.keys());
  const networks = internalNetworks(config);
  const clientIp = connectionState(connection).clientIp;
  const envelope = { sender: state.sender, recipients: [...state.recipients], clientIp };
  const outcome = runRules(set, {
    envelope, message, results: state.verdict.results, acceptedDomains, internalNetworks: networks,
    direction: directionOf(state.sender, clientIp, acceptedDomains, networks),
    maxTextChars: config.rules.maxTextChars,
  });
  observeRulesEvaluation(outcome.elapsedMs / 1000);

  // Into the verdict and the decision line.
  for (const result of checkResults(outcome)) state.verdict.record(result);
  for (const report of outcome.fired) {
    countRuleHit(report.rule.id, 'enforce', actionLabel(report.rule));
  }
  for (const report of outcome.monitored) {
    countRuleHit(report.rule.id, 'monitor', actionLabel(report.rule));
  }
  state.logEvidence['rules'] = logSummary(outcome);

  // Changes to the delivered copy, unless the message will not be delivered at all.
  const effects = plannedEffects(outcome);
  const pending: Pending = { outcome, effects, message, envelope };
  const action = state.verdict.decide().action;
  if (action === 'tempfail') return CONTINUE;
  if (action === 'reject') {
    await notifyAll(pending, 'refused (reject)', transaction.uuid);
    return CONTINUE;
  }
  if (effects.subjectTags.length > 0) {
    state.removeHeaders.push('Subject');
    state.verdict.addHeader('Subject',
      taggedSubject(currentSubject(transaction, message), effects.subjectTags));
  }
  state.removeHeaders.push(...effects.removeHeaders);
  for (const [name, value] of effects.addHeaders) state.verdict.addHeader(name, value);
  if (effects.redirectTo) {
    state.logEvidence['redirected_from'] = [...state.recipients];
    state.recipients.splice(0, state.recipients.length, ...effects.redirectTo);
  }
  if (effects.copies.length > 0 || effects.notifications.length > 0) {
    pendingByState.set(state, pending);
  }
  return CONTINUE;
});

/** After moat-deliver's data_post: the message is with the internal server; send the copies. */
export const hook_queue = hook('queue',
  async (connection: HarakaConnection): Promise<HookOutcome> => {
  const transaction = connection.transaction;
  const state = transactionState(transaction);
  const pending = state ? pendingByState.get(state) : undefined;
  if (!transaction || !state || !pending || !state.deliveredReply) return CONTINUE;
  pendingByState.delete(state);

  const what = state.decision?.action === 'quarantine' ? 'quarantined' : 'delivered';
  await copyAll(pending, transaction);
  await notifyAll(pending, what, transaction.uuid);
  return CONTINUE;
});

async function messageOf(transaction: HarakaTransaction): Promise<RuleMessage> {
  // The scanning stage's parse, when it kept the decoded bodies; else our own reading.
  const shared = transaction.notes[SHARED_PARSE_NOTE] as ParsedMessage | undefined;
  if (shared && hasBodies(shared)) return fromParsedMessage(shared, transaction.data_bytes);
  const chunks: Buffer[] = [];
  for await (const chunk of openMessage(transaction) as AsyncIterable<Buffer>) chunks.push(chunk);
  return fromRawMessage(Buffer.concat(chunks));
}

function openMessage(transaction: HarakaTransaction, prefix?: string): Readable {
  const output = new PassThrough({ highWaterMark: 64 * 1024 });
  if (prefix) output.write(prefix);
  transaction.message_stream.pipe(output, { dot_stuffed: true, line_endings: '\r\n' });
  return output;
}

function currentSubject(transaction: HarakaTransaction, message: RuleMessage): string {
  // The transaction's Subject: another check (spam tagging) may already have prefixed it.
  const current = transaction.header.get('Subject');
  const raw = (current ?? '').replace(/\r?\n$/, '').trim();
  return raw || message.subject;
}

async function copyAll(pending: Pending, transaction: HarakaTransaction): Promise<void> {
  const delivery = getRuntime().delivery;
  for (const copy of pending.effects.copies) {
    const prefix = `X-Moat-Rule-Copy: ${copy.rule.id}; version=${pending.outcome.version}\r\n`;
    try {
      const result = await delivery.deliver(
        { sender: pending.envelope.sender, recipients: copy.addresses },
        () => openMessage(transaction, prefix), transaction.data_bytes + prefix.length);
      const ok = result.outcome === 'delivered' || result.outcome === 'partial';
      countRuleSideEffect('copy', ok ? 'sent' : 'failed');
      log(ok ? 'info' : 'warn', 'rules',
        ok ? 'rule copy sent' : 'rule copy FAILED; the message itself was delivered', {
        rule: copy.rule.id, message_id: transaction.uuid, to: copy.addresses,
        downstream: `${result.code} ${result.enhanced} ${result.text}`.trim(),
      });
    } catch (error) {
      countRuleSideEffect('copy', 'failed');
      log('warn', 'rules', 'rule copy FAILED; the message itself was delivered', {
        rule: copy.rule.id, message_id: transaction.uuid, error: String(error),
      });
    }
  }
}

async function notifyAll(pending: Pending, what: string, messageId: string): Promise<void> {
  const runtime = getRuntime();
  const hostname = runtime.config.smtp.hostname || 'localhost';
  const from = runtime.config.rules.notifyFrom || `postmaster@${hostname}`;
  for (const notice of pending.effects.notifications) {
    const report = pending.outcome.fired.find((entry) => entry.rule === notice.rule);
    const body = notificationMessage({
      from, to: notice.addresses, rule: notice.rule, subject: notice.subject, outcome: what,
      envelope: pending.envelope, messageSubject: pending.message.subject,
      messageId: headerValues(pending.message, 'message-id')[0] ?? '(none)',
      evidence: report?.evidence.map((entry) => `${entry.condition}: ${entry.matched}`) ?? [],
      hostname, now: new Date(),
    });
    try {
      // The null sender: a notification must never bounce back into a loop.
      const result = await runtime.delivery.deliver({ sender: '', recipients: notice.addresses },
        () => Readable.from([body]), body.length);
      const ok = result.outcome === 'delivered' || result.outcome === 'partial';
      countRuleSideEffect('notify', ok ? 'sent' : 'failed');
      if (!ok) {
        log('warn', 'rules', 'rule notification FAILED', {
          rule: notice.rule.id, message_id: messageId, to: notice.addresses,
          downstream: `${result.code} ${result.enhanced} ${result.text}`.trim(),
        });
      }
    } catch (error) {
      countRuleSideEffect('notify', 'failed');
      log('warn', 'rules', 'rule notification FAILED', {
        rule: notice.rule.id, message_id: messageId, error: String(error),
      });
    }
  }
}
