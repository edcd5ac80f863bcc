/*
 * Haraka plugin `moat-reputation`: DNS blocklists and allowlists for the client address.
 *
 * Connect: every zone in reputation.zones is asked at once about the client (the address the
 * PROXY protocol presented), under reputation.deadline (src/reputation/dnsbl.ts). A score at
 * or above reputation.threshold refuses with 554 5.7.1 naming the lists: at once when
 * reputation.refuse_at = connect, or at each RCPT when it is rcpt (the log then carries the
 * envelope). Clients in smtp.internal_networks or reputation.allow_networks are not checked.
 * DATA: the result is copied into the message's verdict as the `dnsbl` check, so the message's
 * log line carries the evidence too.
 *
 * Fail-open: a zone that times out or errs is skipped with a warn line and a metric; the other
 * zones still count. Needs: the shared resolver (MOAT_DNS_SERVERS).
 *
 * lookup_rdns (before connect): the client's forward-confirmed name through the same resolver
 * under reputation.reverse_dns_deadline (src/reputation/reverse-dns.ts), given to Haraka for the
 * Received header and the EHLO reply, and kept for the decision lines (`client.rdns`). Haraka's
 * own lookup, through the system resolver with no deadline of Moat's, never runs: this hook
 * always answers. Internal clients and reputation.reverse_dns = off are not looked up.
 */

import type { BlockList } from 'node:net';

import { networkList } from '../src/config/sections/reputation';
import { getResolver } from '../src/dns/resolver';
import { log, logDecision } from '../src/observability/decision-log';
import { countConnection, countRecipient } from '../src/observability/metrics';
import { observeCheck } from '../src/observability/metrics-checks';
import {
  countDnsListCheck, countDnsListLookup, declareDnsListZones,
} from '../src/observability/metrics-reputation';
import {
  checkDnsLists, inNetworks, plainClientIp, type DnsListVerdict,
} from '../src/reputation/dnsbl';
import { lookupReverseName, type ReverseDnsOutcome } from '../src/reputation/reverse-dns';
import { getRuntime } from '../src/runtime/context';
import { CONTINUE, hook, refuse, type HookOutcome } from '../src/runtime/hook';
import type { HarakaConnection } from '../src/runtime/haraka-types';
import { clientOf, connectionState, transactionState } from '../src/runtime/state';
import { extractCommandPath } from '../src/envelope/command';
import { REASONS, type SmtpReply } from '../src/verdict/reasons';
import type { ResultWord } from '../src/verdict/verdict';

let internalNetworks: BlockList | null = null;

export function register(): void {
  const { config } = getRuntime();
  declareDnsListZones(config.reputation.dnsbl.zones.map((zone) => zone.zone));
}

/** Haraka's name for a client without a confirmed one; Postfix writes the same. */
const UNKNOWN_NAME = 'unknown';

export const hook_lookup_rdns = hook('lookup_rdns',
  async (connection: HarakaConnection): Promise<HookOutcome> => {
    const { config } = getRuntime();
    const settings = config.reputation.reverseDns;
    const state = connectionState(connection);
    const ip = plainClientIp(state.clientIp);
    internalNetworks ??= networkList(config.smtp.internalNetworks);
    if (!settings.enabled || inNetworks(ip, internalNetworks)) {
      return { kind: 'value', value: UNKNOWN_NAME };
    }

    const resolver = getResolver(config);
    const result = await lookupReverseName(ip, (name, rrtype) => resolver.resolve(name, rrtype),
      settings.deadlineMs);
    state.reverseDns = result;
    observeCheck('rdns', result.durationMs / 1000);
    if (result.outcome === 'timeout' || result.outcome === 'error') {
      log('warn', 'reputation', `reverse DNS of the client failed (${result.outcome}); `
        + 'named unknown', {
        client_ip: ip, outcome: result.outcome, detail: result.detail,
        message_id: connection.uuid,
      });
    }
    return { kind: 'value', value: result.name ?? UNKNOWN_NAME };
  });

const RDNS_RESULT: Record<ReverseDnsOutcome, ResultWord> = {
  confirmed: 'pass', unconfirmed: 'neutral', none: 'none', timeout: 'temperror', error: 'temperror',
};

export const hook_connect = hook('connect', async (connection: HarakaConnection) => {
  const { config } = getRuntime();
  const settings = config.reputation.dnsbl;
  if (settings.zones.length === 0) return CONTINUE;

  // Ask the lists.
  internalNetworks ??= networkList(config.smtp.internalNetworks);
  const resolver = getResolver(config);
  const state = connectionState(connection);
  const verdict = await checkDnsLists(state.clientIp, settings, internalNetworks,
    (name, rrtype) => resolver.resolve(name, rrtype));
  state.reputation = verdict;

  // Skipped clients: internal ones silently (they are most connections on a relay host).
  if (verdict.skipped === 'internal-network' || verdict.skipped === 'not-an-ip') {
    countDnsListCheck('skipped_internal');
    return CONTINUE;
  }
  if (verdict.skipped === 'local-allowlist') countDnsListCheck('skipped_allowlist');

  // Count each zone; say which were skipped for failing (fail-open).
  for (const zone of verdict.zones) {
    countDnsListLookup(zone.zone, zone.outcome);
    if (zone.outcome !== 'error' && zone.outcome !== 'timeout') continue;
    log('warn', 'reputation', `DNS list ${zone.zone} skipped (${zone.outcome}); fail-open`, {
      zone: zone.zone, outcome: zone.outcome, detail: zone.detail,
      client_ip: verdict.clientIp, message_id: connection.uuid,
    });
  }

  // One decision line for the connection, with the evidence.
  const refuseNow = verdict.refused && settings.refuseAt === 'connect';
  logDecision({
    event: 'connection', phase: 'connect',
    action: refuseNow ? 'reject' : 'accept', reason: verdict.refused ? 'dnsbl-listed' : 'clean',
    message_id: connection.uuid, client: clientOf(connection),
    evidence: { dnsbl: evidenceOf(verdict), refuse_at: settings.refuseAt },
  });
  if (verdict.skipped) return CONTINUE;
  countDnsListCheck(verdict.refused ? 'refused' : 'passed', verdict.durationMs / 1000);

  if (!refuseNow) return CONTINUE;
  countConnection('refused_policy');
  return refuse('dnsbl-listed', listedReply(verdict), true);
});

export const hook_rcpt = hook('rcpt',
  async (connection: HarakaConnection): Promise<HookOutcome> => {
    const verdict = connectionState(connection).reputation;
    if (!verdict?.refused) return CONTINUE;

    // Only reached with refuse_at = rcpt: a refusal at connect ended the connection.
    const state = transactionState(connection.transaction);
    if (state) state.refusedRecipients++;
    countRecipient('reject', 'dnsbl-listed');
    logDecision({
      event: 'recipient', phase: 'rcpt', action: 'reject', reason: 'dnsbl-listed',
      message_id: connection.transaction?.uuid ?? connection.uuid, client: clientOf(connection),
      envelope: { from: state?.sender ?? '', to: [rcptPath(connection)] },
      evidence: { dnsbl: evidenceOf(verdict) },
    });
    return refuse('dnsbl-listed', listedReply(verdict));
  });

export const hook_data = hook('data', async (connection: HarakaConnection) => {
  const { reputation: verdict, reverseDns } = connectionState(connection);
  const state = transactionState(connection.transaction);
  if (state && reverseDns) {
    state.verdict.record({
      check: 'rdns', result: RDNS_RESULT[reverseDns.outcome],
      evidence: {
        outcome: reverseDns.outcome, ...(reverseDns.name ? { name: reverseDns.name } : {}),
        ptr: reverseDns.ptr.join(','), duration_ms: reverseDns.durationMs,
        ...(reverseDns.detail ? { detail: reverseDns.detail } : {}),
      },
    });
  }
  if (!verdict || !state) return CONTINUE;

  state.verdict.record({ check: 'dnsbl', result: resultWord(verdict),
    evidence: evidenceOf(verdict) });
  return CONTINUE;
});

/** The 554 naming the lists (zone names come from our configuration, not from the client). */
function listedReply(verdict: DnsListVerdict): SmtpReply {
  const base = REASONS['dnsbl-listed'].reply;
  const lists = verdict.listedBy.length > 0 ? verdict.listedBy.join(', ') : 'DNS lists';
  return { ...base, text: `Service refused: [${verdict.clientIp}] is listed by ${lists}` };
}

function resultWord(verdict: DnsListVerdict): ResultWord {
  if (verdict.skipped) return 'skip';
  if (verdict.refused) return 'fail';
  if (verdict.zones.some((zone) => zone.outcome === 'listed' && zone.kind === 'block')) {
    return 'neutral';
  }
  if (verdict.zones.some((zone) => zone.outcome === 'error' || zone.outcome === 'timeout')) {
    return 'temperror';
  }
  return 'pass';
}

/** The evidence for the log and the verdict: score, threshold, each zone's answer. */
function evidenceOf(verdict: DnsListVerdict): Record<string, unknown> {
  if (verdict.skipped) return { skipped: verdict.skipped };
  return {
    score: verdict.score,
    threshold: verdict.threshold,
    refused: verdict.refused,
    duration_ms: verdict.durationMs,
    zones: verdict.zones.map((zone) => ({
      zone: zone.zone, kind: zone.kind, outcome: zone.outcome, weight: zone.weight,
      // A string, not a list: the log keeps four levels of nesting, and this is the fifth.
      ...(zone.answers.length > 0 ? { answers: zone.answers.join(',') } : {}),
      ...(zone.detail ? { detail: zone.detail } : {}),
    })),
  };
}

function rcptPath(connection: HarakaConnection): string {
  return extractCommandPath(connection.current_line ?? '', 'RCPT TO') ?? '';
}
