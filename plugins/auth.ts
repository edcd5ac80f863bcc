/*
 * Haraka plugin `moat-auth`: sender authentication (SPF, DKIM, DMARC, ARC, the From header)
 * and the Authentication-Results header.
 *
 * MAIL: SPF for the envelope sender (HELO for the null sender) against the client address
 * (the PROXY-presented one). With auth.spf_fail_action = reject an SPF fail is refused with
 * 550 5.7.23, at MAIL (global policy) or at RCPT (each recipient domain's policy).
 * End of DATA: DKIM, ARC and DMARC on the message, the From-header checks, and the policy
 * (src/auth/policy.ts) recorded into the verdict: 550 5.7.1 for DMARC p=reject and for an
 * ambiguous From, quarantine or tag for p=quarantine, 451 4.4.3 for DNS failures where
 * configured. Moat's Authentication-Results header goes on top of the delivered copy, and
 * incoming ones claiming Moat's authserv-id are removed.
 *
 * Needs: DNS (dns.servers). Clients in smtp.internal_networks are not checked (they are ours)
 * unless auth.check_internal is set; forged headers are still removed for them.
 * Untrusted input: envelope, HELO, every message byte, every DNS answer.
 * LIMITATION: the HELO name is only SPF-checked for the null sender (RFC 7208 2.3 suggests it
 * always); no DMARC aggregate or failure reports are sent; the message is held in memory once
 * more for DKIM (bounded by smtp.max_message_size). Honest A-R headers of other servers move
 * below the others when a forged one is removed (Haraka removes headers by name only).
 */

import { claimsAuthservId, formatAuthResults } from '../src/auth/auth-results';
import { findAuthor } from '../src/auth/from-header';
import { openAuthMessage } from '../src/auth/message-reader';
import { authenticateMessage, type MessageAuth } from '../src/auth/message-auth';
import { NetworkList } from '../src/auth/networks';
import { judgeMessage, spfRecord } from '../src/auth/policy';
import { authResolver } from '../src/auth/resolver';
import { checkSpf } from '../src/auth/spf';
import {
  domainAuthPolicy, messageAuthPolicy, recipientDomain,
} from '../src/auth/transaction';
import { log, logDecision } from '../src/observability/decision-log';
import { countRecipient } from '../src/observability/metrics';
import { countAuthResult, observeAuthStep } from '../src/observability/metrics-auth';
import { getRuntime, type Runtime } from '../src/runtime/context';
import { CONTINUE, hook, refuse, type HookOutcome } from '../src/runtime/hook';
import type { HarakaConnection, HarakaTransaction } from '../src/runtime/haraka-types';
import {
  clientOf, connectionState, transactionState, type TransactionState,
} from '../src/runtime/state';
import type { SmtpReply } from '../src/verdict/reasons';

const AUTH_RESULTS = 'Authentication-Results';
const TAG_HEADER = 'X-Moat-Auth';

export function register(): void {
  getRuntime();
}

export const hook_mail = hook('mail',
  async (connection: HarakaConnection): Promise<HookOutcome> => {
  const runtime = getRuntime();
  const state = transactionState(connection.transaction);
  if (!state) return CONTINUE;

  // Our own clients are not judged by SPF.
  const clientIp = connectionState(connection).clientIp;
  if (!runtime.config.auth.checkInternal && networks(runtime).internal.has(clientIp)) {
    state.auth = { spf: null, skipped: 'internal-network' };
    return CONTINUE;
  }

  // SPF now, so a fail can be refused before any data is sent.
  const spf = await checkSpf({
    clientIp, sender: state.sender, helo: connection.hello?.host ?? '',
    mta: authservId(runtime), resolve: authResolver(runtime.config),
    timeoutMs: runtime.config.auth.spfTimeoutMs,
  });
  state.auth = { spf, skipped: null };
  countAuthResult('spf', spf.result);
  observeAuthStep('spf', spf.durationMs / 1000);

  const auth = runtime.config.auth;
  if (spf.result !== 'fail' || auth.spfFailAction !== 'reject' || auth.spfFailStage !== 'mail'
    || auth.policy !== 'enforce') {
    return CONTINUE;
  }
  const reply = spfFailReply(spf.domain);
  logDecision({
    event: 'message', phase: 'mail', action: 'reject', reason: 'spf-fail',
    message_id: connection.transaction?.uuid, client: clientOf(connection),
    envelope: { from: state.sender },
    evidence: { ...spfRecord(spf).evidence, reply: `${reply.code} ${reply.enhanced}` },
  });
  return refuse('spf-fail', reply);
});

export const hook_rcpt = hook('rcpt',
  async (connection: HarakaConnection): Promise<HookOutcome> => {
  const runtime = getRuntime();
  const state = transactionState(connection.transaction);
  const spf = state?.auth?.spf;
  const pending = state?.pendingRecipient;
  const auth = runtime.config.auth;
  if (!state || !spf || !pending || spf.result !== 'fail') return CONTINUE;
  if (auth.spfFailAction !== 'reject' || auth.spfFailStage !== 'rcpt') return CONTINUE;

  // Each recipient's domain decides whether its mail is refused for an SPF fail.
  const domain = recipientDomain(pending.address);
  if (domainAuthPolicy(runtime.config.domains, auth, domain).policy !== 'enforce') return CONTINUE;

  state.pendingRecipient = null;
  state.refusedRecipients++;
  countRecipient('reject', 'spf-fail');
  const reply = spfFailReply(spf.domain);
  logDecision({
    event: 'recipient', phase: 'rcpt', action: 'reject', reason: 'spf-fail',
    message_id: connection.transaction?.uuid, client: clientOf(connection),
    envelope: { from: state.sender, to: [pending.address] },
    evidence: { ...spfRecord(spf).evidence, reply: `${reply.code} ${reply.enhanced}` },
  });
  return refuse('spf-fail', reply);
});

export const hook_data_post = hook('data_post', async (connection: HarakaConnection) => {
  const runtime = getRuntime();
  const transaction = connection.transaction;
  const state = transactionState(transaction);
  if (!transaction || !state) return refuse('internal-error');

  // Forged claims to be us are removed whatever else happens; a refused message needs no more.
  const id = authservId(runtime);
  const removed = removeForgedHeaders(transaction, id);
  if (state.verdict.refused) return CONTINUE;
  if (state.auth?.skipped) {
    state.verdict.record({ check: 'auth', result: 'skip',
      evidence: { skipped: state.auth.skipped, ...(removed ? { forged_removed: removed } : {}) } });
    return CONTINUE;
  }

  // The message once, as the recipients will get it (dot-stuffing undone), streamed to
  // mailauth; its header block is kept on the way for the From checks.
  const message = openAuthMessage((destination) => transaction.message_stream.pipe(destination,
    { dot_stuffed: true, line_endings: '\r\n' }));
  const spf = state.auth?.spf ?? null;
  const auth = runtime.config.auth;
  let messageAuth: MessageAuth | null = null;
  let messageError: string | undefined;
  try {
    messageAuth = await authenticateMessage(message.stream, {
      spf, sender: state.sender, resolve: authResolver(runtime.config),
      minRsaBits: auth.dkimMinRsaBits, rejectRsaSha1: auth.dkimRejectRsaSha1,
      partialBody: auth.dkimPartialBody, timeoutMs: auth.messageTimeoutMs,
      onStep: observeAuthStep,
    });
  } catch (error) {
    // A deadline or a library failure: every message result is temperror, the policy decides.
    messageError = error instanceof Error ? error.message : String(error);
    log('warn', 'auth', 'DKIM/ARC/DMARC not evaluated', {
      message_id: transaction.uuid, error: messageError,
    });
  }

  // Whatever mailauth left unread is drained: the next check must be able to read it.
  await message.release();
  const author = findAuthor(await message.headerBlock);

  // The policy of the recipients' domains turns results into actions.
  const { policy, temperror } = messageAuthPolicy(runtime.config.domains, auth, state.recipients);
  const judgement = judgeMessage(
    { author, spf, message: messageAuth, ...(messageError ? { messageError } : {}) },
    {
      policy, temperror, quarantineAction: auth.dmarcQuarantineAction,
      spfFailReject: auth.spfFailAction === 'reject',
      exemptDomains: auth.dmarcExemptDomains,
      clientExempt: networks(runtime).exempt.has(connectionState(connection).clientIp),
      trustedSealers: auth.arcTrustedSealers,
    },
  );
  for (const result of judgement.results) {
    if (result.check === 'dmarc' && removed) {
      result.evidence = { ...result.evidence, forged_removed: removed };
    }
    state.verdict.record(result);
    // SPF was counted at MAIL; DKIM is counted with its own word (policy is not fail).
    if (result.check === 'spf') continue;
    const word = result.check === 'dkim' ? result.evidence?.['result'] : undefined;
    countAuthResult(result.check, typeof word === 'string' ? word : result.result);
  }
  if (judgement.tag) state.verdict.addHeader(TAG_HEADER, judgement.tag);

  // One Authentication-Results header, on top, above the trace fields (RFC 8601 section 5).
  transaction.add_leading_header(AUTH_RESULTS, formatAuthResults(id, resinfos(state, author,
    messageAuth)));
  return CONTINUE;
});

/** The resinfo lines of our Authentication-Results header. */
function resinfos(
  state: TransactionState, author: ReturnType<typeof findAuthor>, message: MessageAuth | null,
): string[] {
  const lines: string[] = [];
  const spf = state.auth?.spf;
  if (spf) lines.push(spf.info);
  if (!message) return [...lines, 'dkim=temperror', 'dmarc=temperror'];

  if (message.dkim.length === 0) lines.push('dkim=none');
  for (const signature of message.dkim) lines.push(signature.info);
  if (message.arc.info) lines.push(message.arc.info);
  if (message.dmarc && author.ok) lines.push(message.dmarc.info);
  else lines.push(`dmarc=permerror (From: ${author.ok ? 'not evaluated' : author.problem})`);
  return lines;
}

/**
 * Removes incoming Authentication-Results headers that claim our authserv-id, keeping the
 * others in their order, and any incoming X-Moat-Auth. Returns how many A-R were forged.
 */
function removeForgedHeaders(transaction: HarakaTransaction, id: string): number {
  if (transaction.header.get_all(TAG_HEADER).length > 0) transaction.remove_header(TAG_HEADER);

  const all = [...transaction.header.get_all(AUTH_RESULTS)];
  const kept = all.filter((value) => !claimsAuthservId(value, id));
  if (kept.length === all.length) return 0;

  // Haraka removes by name only: remove all, then put the honest ones back, in order. They
  // move to the end of the header block; DKIM still verifies, as same-name order is kept.
  transaction.remove_header(AUTH_RESULTS);
  for (const value of kept) transaction.add_header(AUTH_RESULTS, value.replace(/\r?\n$/, ''));
  return all.length - kept.length;
}

function spfFailReply(domain: string): SmtpReply {
  return {
    code: 550, enhanced: '5.7.23',
    text: `SPF check failed: ${printableDomain(domain)} does not authorise your address`,
  };
}

function printableDomain(domain: string): string {
  return domain.replace(/[^A-Za-z0-9.-]/g, '?').slice(0, 253);
}

function authservId(runtime: Runtime): string {
  return runtime.config.auth.authservId || runtime.config.smtp.hostname;
}

let lists: { internal: NetworkList; exempt: NetworkList } | null = null;

function networks(runtime: Runtime): { internal: NetworkList; exempt: NetworkList } {
  lists ??= {
    internal: new NetworkList(runtime.config.smtp.internalNetworks),
    exempt: new NetworkList(runtime.config.auth.dmarcExemptNetworks),
  };
  return lists;
}
