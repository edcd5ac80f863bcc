/*
 * What Moat remembers about one connection and one transaction, kept in Haraka's notes.
 *
 * The connection stage fills ConnectionState; the envelope stage starts a TransactionState at
 * MAIL FROM and adds each accepted recipient; the content stage records results into its
 * Verdict; the delivery stage reads the decision. Nothing here is shared between connections.
 */

import type { TransactionAuth } from '../auth/transaction';
import type { DirtyDataChecker } from '../content/dirty-data';
import type { SpoolBackpressure } from '../content/spool-backpressure';
import type { DnsListVerdict } from '../reputation/dnsbl';
import type { ReverseDnsResult } from '../reputation/reverse-dns';
import type { SmtpReply } from '../verdict/reasons';
import type { Decision } from '../verdict/verdict';
import { Verdict } from '../verdict/verdict';
import type { HarakaConnection, HarakaTransaction } from './haraka-types';

export interface ConnectionState {
  /** The client address: the one presented by PROXY when a load balancer sent it. */
  clientIp: string;
  clientPort: number;
  /** The load balancer's address when PROXY was used. */
  proxiedBy: string | null;
  /** Whether this connection was counted in the registry (and must be removed once). */
  registered: boolean;
  openedAt: number;
  /** The DNS list check made at connect; null when no zones are configured. */
  reputation: DnsListVerdict | null;
  /** The client's forward-confirmed name; null when not looked up (off, internal client). */
  reverseDns: ReverseDnsResult | null;
}

export interface TransactionState {
  sender: string;
  /** Recipients accepted at RCPT, lower-case domain, in order. */
  recipients: string[];
  /** The recipient of the RCPT in progress, passed by moat-envelope, not yet accepted. */
  pendingRecipient: { address: string; reply: SmtpReply; reason: string } | null;
  /** Recipients refused at RCPT, for the message log line. */
  refusedRecipients: number;
  verdict: Verdict;
  decision: Decision | null;
  /** Set once the internal server (or the Maildir) took the message; the 250 to give. */
  deliveredReply: SmtpReply | null;
  startedAt: number;
  dataStartedAt: number | null;
  dataBytes: number;
  sizeExceeded: boolean;
  dirty: DirtyDataChecker | null;
  rateTimer: NodeJS.Timeout | null;
  /** Pauses the client while the spool file lags behind (plugins/content.ts). */
  backpressure?: SpoolBackpressure;
  /** Headers to remove from the delivered copy (before decision.headers are added). */
  removeHeaders: string[];
  /** Extra evidence checks attach to the message's decision line, e.g. `rules`. */
  logEvidence: Record<string, unknown>;
  /** Sender authentication so far (SPF from MAIL time); set by moat-auth. */
  auth?: TransactionAuth;
}

export function connectionState(connection: HarakaConnection): ConnectionState {
  const existing = connection.notes.moat as ConnectionState | undefined;
  if (existing) return existing;
  const state: ConnectionState = {
    clientIp: connection.remote.ip,
    clientPort: connection.remote.port,
    proxiedBy: connection.proxy?.ip ?? null,
    registered: false,
    openedAt: Date.now(),
    reputation: null,
    reverseDns: null,
  };
  connection.notes.moat = state;
  return state;
}

export function startTransaction(transaction: HarakaTransaction, sender: string): TransactionState {
  const state: TransactionState = {
    sender,
    recipients: [],
    pendingRecipient: null,
    refusedRecipients: 0,
    verdict: new Verdict(),
    decision: null,
    deliveredReply: null,
    startedAt: Date.now(),
    dataStartedAt: null,
    dataBytes: 0,
    sizeExceeded: false,
    dirty: null,
    rateTimer: null,
    removeHeaders: [],
    logEvidence: {},
  };
  transaction.notes.moat = state;
  return state;
}

export function transactionState(transaction: HarakaTransaction | null): TransactionState | null {
  return (transaction?.notes.moat as TransactionState | undefined) ?? null;
}

export function clientOf(connection: HarakaConnection): {
  ip: string; port: number; rdns?: string; proxied_by?: string; helo?: string; tls: boolean;
} {
  const state = connectionState(connection);
  const reverse = state.reverseDns;
  return {
    ip: state.clientIp,
    port: state.clientPort,
    ...(reverse ? { rdns: reverse.name ?? 'unknown' } : {}),
    ...(state.proxiedBy ? { proxied_by: state.proxiedBy } : {}),
    ...(connection.hello?.host ? { helo: connection.hello.host } : {}),
    tls: connection.tls?.enabled === true,
  };
}
