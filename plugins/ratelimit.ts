/*
 * Haraka plugin `moat-ratelimit`: rate limits shared by every gateway node (Redis), or per
 * node without Redis.
 *
 * Decides, with the limit's configured answer (421 closes the connection, 451 refuses the
 * command) and a reply naming the limit, its window and when to retry:
 *   connect  concurrent connections and connections per window, per client address
 *   mail     messages per client address, per envelope sender, per sender domain
 *   rcpt     recipients per message, recipients per sender, messages per recipient
 * It sits after moat-envelope (the sender and recipient are parsed and passed) and before
 * moat-content. Each refusal is one decision line with the limit, key, count and window; each
 * hit counts in moat_ratelimit_hits_total{limit}. When a check of the transaction failed open,
 * data_post records `ratelimit=temperror` in the verdict, so the message's line shows it.
 *
 * Needs: Redis at redis.url (optional). Down or slower than ratelimit.redis_timeout: the check
 * lets the mail through, with a warn line and moat_ratelimit_fail_open_total; src/ratelimit/
 * service.ts. The per-process smtp.max_connections_per_ip limit in moat-connection stays as the
 * backstop for concurrent connections, the one protection left while Redis is away.
 */

import { logDecision } from '../src/observability/decision-log';
import { countConnection, countRecipient } from '../src/observability/metrics';
import { countLimitHit } from '../src/observability/metrics-ratelimit';
import type { LimitEvent } from '../src/ratelimit/limits';
import type { LimitHit, LimitOutcome } from '../src/ratelimit/limiter';
import { rateLimits } from '../src/ratelimit/service';
import { getRuntime } from '../src/runtime/context';
import { CONTINUE, hook, type HookOutcome } from '../src/runtime/hook';
import type { HarakaConnection } from '../src/runtime/haraka-types';
import { clientOf, connectionState, transactionState } from '../src/runtime/state';
import type { ReasonCode } from '../src/verdict/reasons';

/** Kept in connection.notes: the concurrent entry to release when the connection closes. */
interface RateLimitNotes {
  member: string | null;
}

/** Kept in transaction.notes: limits of this transaction whose check failed open. */
const FAILED_OPEN = 'moatRateLimitFailedOpen';

export function register(): void {
  getRuntime();
}

export const hook_init_master = hook('init_master', async () => {
  const config = getRuntime().config;
  if (config.smtp.workers === 0) await rateLimits(config).start();
  return CONTINUE;
});

export const hook_init_child = hook('init_child', async () => {
  await rateLimits(getRuntime().config).start();
  return CONTINUE;
});

export const hook_connect = hook('connect', async (connection: HarakaConnection) => {
  const limits = rateLimits(getRuntime().config);
  if (!limits.limiter.hasLimits('connect')) return CONTINUE;

  const member = limits.connectionMember(connection.uuid);
  notesOf(connection).member = member;
  const outcome = await limits.check('connect', {
    clientIp: connectionState(connection).clientIp, member,
  });
  if (outcome.hit) countConnection('refused_limit');
  return answer(connection, 'connect', outcome);
});

export const hook_mail = hook('mail', async (connection: HarakaConnection) => {
  const limits = rateLimits(getRuntime().config);
  const state = transactionState(connection.transaction);
  if (!state || !limits.limiter.hasLimits('mail')) return CONTINUE;

  const outcome = await limits.check('mail', {
    clientIp: connectionState(connection).clientIp, sender: state.sender.toLowerCase(),
    member: limits.eventId(),
  });
  return answer(connection, 'mail', outcome);
});

export const hook_rcpt = hook('rcpt', async (connection: HarakaConnection) => {
  const limits = rateLimits(getRuntime().config);
  const state = transactionState(connection.transaction);
  const pending = state?.pendingRecipient;
  if (!state || !pending || !limits.limiter.hasLimits('rcpt')) return CONTINUE;

  const outcome = await limits.check('rcpt', {
    clientIp: connectionState(connection).clientIp, sender: state.sender.toLowerCase(),
    recipient: pending.address.toLowerCase(), recipientsSoFar: state.recipients.length,
    member: limits.eventId(),
  });
  if (outcome.hit) {
    state.pendingRecipient = null;
    state.refusedRecipients += 1;
    countRecipient('tempfail', reasonOf(outcome.hit));
  }
  return answer(connection, 'rcpt', outcome, [pending.address]);
});

export const hook_data_post = hook('data_post', async (connection: HarakaConnection) => {
  const state = transactionState(connection.transaction);
  if (!state) return CONTINUE;
  const failedOpen = connection.transaction?.notes[FAILED_OPEN] as string[] | undefined;
  if (!failedOpen) return CONTINUE;
  state.verdict.record({ check: 'ratelimit', result: 'temperror',
    evidence: { failed_open: [...new Set(failedOpen)] } });
  return CONTINUE;
});

export const hook_disconnect = hook('disconnect', async (connection: HarakaConnection) => {
  const notes = notesOf(connection);
  if (notes.member) await rateLimits(getRuntime().config).connectionClosed(notes.member);
  notes.member = null;
  return CONTINUE;
});

function answer(
  connection: HarakaConnection, event: LimitEvent, outcome: LimitOutcome, to?: string[],
): HookOutcome {
  const transactionNotes = connection.transaction?.notes;
  for (const failure of outcome.failures) {
    if (!transactionNotes) break;
    const failed = (transactionNotes[FAILED_OPEN] ?? []) as string[];
    transactionNotes[FAILED_OPEN] = [...failed, ...failure.limits];
  }
  const hit = outcome.hit;
  if (!hit) return CONTINUE;

  // One decision line with the evidence, one metric per limit name.
  countLimitHit(hit.limit);
  const state = transactionState(connection.transaction);
  const reason = reasonOf(hit);
  logDecision({
    event: event === 'connect' ? 'connection' : event === 'mail' ? 'message' : 'recipient',
    phase: event, action: 'tempfail', reason,
    message_id: connection.transaction?.uuid ?? connection.uuid,
    client: clientOf(connection),
    ...(state ? { envelope: { from: state.sender, ...(to ? { to } : {}) } } : {}),
    evidence: {
      limit: hit.limit, key: hit.key, count: hit.count, maximum: hit.maximum,
      window_ms: hit.windowMs, retry_after_s: Math.ceil(hit.retryAfterMs / 1000),
      reply: `${hit.answer} ${hit.enhanced}`,
    },
  });
  return { kind: 'refuse', disconnect: hit.answer === 421,
    reply: { code: hit.answer, enhanced: hit.enhanced, text: hit.text } };
}

function reasonOf(hit: LimitHit): ReasonCode {
  return `ratelimit-${hit.limit.replace(/_/g, '-')}` as ReasonCode;
}

function notesOf(connection: HarakaConnection): RateLimitNotes {
  const notes = connection.notes as { moatRateLimit?: RateLimitNotes };
  notes.moatRateLimit ??= { member: null };
  return notes.moatRateLimit;
}
