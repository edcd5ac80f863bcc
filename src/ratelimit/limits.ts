/*
 * The rate limits Moat knows, and the one-line syntax an operator writes them in.
 *
 * Each limit has a fixed name (also its config key in `[ratelimit]` and its metric label), the
 * SMTP event that counts it, and the subject it counts per: the client address, the envelope
 * sender, the sender's domain or the recipient. An operator sets its maximum, its window, its
 * answer (421 closes the connection, 451 refuses only the command) and its exemptions:
 *
 *   messages_per_sender = 100/1h 451 exempt=203.0.113.0/24,alerts@partner.example,@bulk.example
 *
 * Windowed limits count events in a sliding window ("no more than 100 in any hour"). The two
 * limits without a window count what is open right now: concurrent connections, and recipients
 * of the message in progress. Parsing throws a ValueProblem naming the part that is wrong.
 */

import { isIP } from 'node:net';
import { parseCidr, parseDuration, parseInteger, ValueProblem } from '../config/values';

export type LimitEvent = 'connect' | 'mail' | 'rcpt';
export type LimitSubject = 'ip' | 'sender' | 'sender-domain' | 'recipient' | 'transaction';

export interface LimitKind {
  name: string;
  event: LimitEvent;
  subject: LimitSubject;
  /** `window`: a sliding window; `concurrent`: held until released; `local`: this message. */
  counting: 'window' | 'concurrent' | 'local';
  /** What is counted, for the reply text: "connections", "messages", "recipients". */
  noun: string;
  /** Enhanced status code of the refusal. */
  enhanced: string;
  /** The reply the limit gives unless the operator chose the other one. */
  defaultAnswer: 421 | 451;
  why: string;
}

/** Every limit, in the order an SMTP session meets them. */
export const LIMIT_KINDS = [
  { name: 'concurrent_connections_per_ip', event: 'connect', subject: 'ip',
    counting: 'concurrent', noun: 'connections', enhanced: '4.7.0', defaultAnswer: 421,
    why: 'connections one client address holds open at once, across all nodes' },
  { name: 'connections_per_ip', event: 'connect', subject: 'ip', counting: 'window',
    noun: 'connections', enhanced: '4.7.0', defaultAnswer: 421,
    why: 'connections one client address opens per window' },
  { name: 'messages_per_ip', event: 'mail', subject: 'ip', counting: 'window',
    noun: 'messages', enhanced: '4.7.0', defaultAnswer: 451,
    why: 'messages (MAIL FROM) one client address starts per window' },
  { name: 'messages_per_sender', event: 'mail', subject: 'sender', counting: 'window',
    noun: 'messages', enhanced: '4.7.0', defaultAnswer: 451,
    why: 'messages one envelope sender starts per window, from any address' },
  { name: 'messages_per_sender_domain', event: 'mail', subject: 'sender-domain',
    counting: 'window', noun: 'messages', enhanced: '4.7.0', defaultAnswer: 451,
    why: 'messages all senders of one domain start per window' },
  { name: 'recipients_per_message', event: 'rcpt', subject: 'transaction', counting: 'local',
    noun: 'recipients', enhanced: '4.5.3', defaultAnswer: 451,
    why: 'recipients of one message, with exemptions (smtp.max_recipients caps everyone)' },
  { name: 'recipients_per_sender', event: 'rcpt', subject: 'sender', counting: 'window',
    noun: 'recipients', enhanced: '4.5.3', defaultAnswer: 451,
    why: 'recipients one envelope sender addresses per window' },
  { name: 'messages_per_recipient', event: 'rcpt', subject: 'recipient', counting: 'window',
    noun: 'messages', enhanced: '4.7.0', defaultAnswer: 451,
    why: 'messages one mailbox receives per window (a mailbox being bombed)' },
] as const satisfies readonly LimitKind[];

export type LimitName = (typeof LIMIT_KINDS)[number]['name'];

export const MAX_WINDOW_MS = 7 * 24 * 3_600_000;
/** The window log keeps one entry per counted event; this bounds its memory per key. */
export const MAX_MAXIMUM = 100_000;

/** Client networks and envelope senders a limit does not apply to. */
export interface Exemptions {
  /** Addresses or CIDR networks of clients. */
  networks: string[];
  /** Lower-case sender addresses, or `@domain` for every sender of a domain. */
  senders: string[];
}

export interface LimitSpec {
  name: LimitName;
  kind: LimitKind;
  maximum: number;
  /** null for the limits that count what is open now (concurrent, local). */
  windowMs: number | null;
  answer: 421 | 451;
  exempt: Exemptions;
}

export function limitKind(name: LimitName): LimitKind {
  const kind = LIMIT_KINDS.find((candidate) => candidate.name === name);
  if (!kind) throw new RangeError(`no rate limit named ${name}`);
  return kind;
}

/**
 * `MAX/WINDOW [421|451] [exempt=LIST]` (or `MAX [...]` for the limits without a window).
 * Empty means the limit is off: returns null.
 */
export function parseLimit(name: LimitName, raw: string): LimitSpec | null {
  const kind = limitKind(name);
  const tokens = raw.trim().split(/\s+/).filter((token) => token !== '');
  if (tokens.length === 0) return null;
  const windowed = kind.counting === 'window';
  const shape = windowed
    ? 'MAX/WINDOW [421|451] [exempt=LIST], e.g. 100/1h 451 exempt=192.0.2.0/24,@partner.example'
    : 'MAX [421|451] [exempt=LIST], e.g. 20 421 exempt=192.0.2.0/24';

  // The maximum, and the window after the slash.
  const [count, window, extra] = (tokens[0] ?? '').split('/');
  if (extra !== undefined || (windowed && window === undefined)) {
    throw new ValueProblem(windowed ? `${shape} (the window is missing)` : shape);
  }
  if (!windowed && window !== undefined) {
    throw new ValueProblem(`${shape} (${name} counts what is open now: no window)`);
  }
  const maximum = withContext(`the maximum in ${shape}`,
    () => parseInteger(count ?? '', 1, MAX_MAXIMUM));
  const windowMs = window === undefined ? null : withContext(`the window in ${shape}`,
    () => parseDuration(window, 1000, MAX_WINDOW_MS));

  // The answer and the exemptions, in any order, each at most once.
  let answer: 421 | 451 = kind.defaultAnswer;
  let exempt: Exemptions = { networks: [], senders: [] };
  const seen = new Set<string>();
  for (const token of tokens.slice(1)) {
    const part = token.startsWith('exempt=') ? 'exempt' : 'answer';
    if (seen.has(part)) throw new ValueProblem(`${shape} (${part} given twice)`);
    seen.add(part);
    if (part === 'exempt') {
      exempt = parseExemptions(token.slice('exempt='.length));
      continue;
    }
    if (token !== '421' && token !== '451') {
      throw new ValueProblem(`${shape} (the answer must be 421 or 451, not "${token}")`);
    }
    answer = token === '421' ? 421 : 451;
  }
  if (kind.event === 'connect' && answer !== 421) {
    throw new ValueProblem(`${shape} (a refused connection can only be answered 421)`);
  }
  return { name, kind, maximum, windowMs, answer, exempt };
}

/** `192.0.2.0/24,2001:db8::1,alerts@partner.example,@bulk.example` */
export function parseExemptions(raw: string): Exemptions {
  const exempt: Exemptions = { networks: [], senders: [] };
  for (const entry of raw.split(',').map((item) => item.trim()).filter(Boolean)) {
    if (entry.includes('@')) {
      if (!/^[^\s@]*@[^\s@]+\.[^\s@]+$/.test(entry)) {
        throw new ValueProblem(`a sender address or @domain in the exemptions, not "${entry}"`);
      }
      exempt.senders.push(entry.toLowerCase());
      continue;
    }
    if (!isIP(entry.split('/')[0] ?? '')) {
      throw new ValueProblem(
        `a client address or network (192.0.2.0/24), sender or @domain in the exemptions, not "${
          entry}"`);
    }
    exempt.networks.push(withContext(`the network "${entry}" in the exemptions`,
      () => parseCidr(entry)));
  }
  return exempt;
}

function withContext<T>(what: string, parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    if (!(error instanceof ValueProblem)) throw error;
    throw new ValueProblem(`${what}: ${error.expected}`);
  }
}

/** "1h", "90s", "2m 30s" — a window as an operator would write it, for reply texts. */
export function describeWindow(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}
