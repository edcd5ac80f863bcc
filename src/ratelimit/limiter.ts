/*
 * The rate limiter: which limits one SMTP event touches, their keys, one store call per group
 * of keys, and the answer.
 *
 * Keys: `moat:rl:{<tag>}:<limit>[:<subject>]`. The hash tag decides the Redis Cluster slot, so
 * the limits of one event that share a tag cost one round trip:
 *   connect  {ip:<client>}            concurrent_connections_per_ip, connections_per_ip
 *   mail     {ip:<client>}            messages_per_ip
 *            {dom:<sender domain>}    messages_per_sender, messages_per_sender_domain
 *   rcpt     {dom:<sender domain>}    recipients_per_sender
 *            {rcpt:<recipient>}       messages_per_recipient
 * On one Redis server every event is one round trip (one script call over all its keys). In a
 * cluster: connect 1, mail up to 2, rcpt up to 2, sent at the same time. Each call is atomic on
 * its own; when one group refuses, the entries the other groups just took are removed again,
 * so a refused event is never left counted (between the two steps a concurrent event can see
 * the extra entry and be refused early: never more than the maximum pass, rarely fewer).
 *
 * Fail-open: a group whose store call fails or misses the deadline counts as allowed; the
 * outcome lists the failure so the caller can log it and count it.
 *
 * Untrusted input: the sender and recipient addresses come from the client. They are
 * lower-cased and their braces, percent signs, spaces and control characters escaped before
 * they become part of a key, so no client can choose another key's hash tag.
 *
 * LIMITATION: sender exemptions trust the envelope sender, which anyone can forge; exempt
 * networks for real trust. The null sender (bounces) is not counted by sender limits.
 * LIMITATION: in a cluster the groups of one event are not one transaction (see above), and
 * all senders of one domain share that domain's slot, so a very large sending domain loads one
 * master more than the others.
 */

import { BlockList, isIP } from 'node:net';
import type { RateLimitConfig } from '../config/sections/ratelimit';
import {
  describeWindow, type Exemptions, type LimitEvent, type LimitName, type LimitSpec,
} from './limits';
import type { CounterCheck, CounterStore } from './store';

export const KEY_PREFIX = 'moat:rl:';

export interface EventSubjects {
  clientIp: string;
  /** Envelope sender, lower-case; '' for the null sender. Absent at connect. */
  sender?: string;
  recipient?: string;
  /** Recipients already accepted in this transaction (rcpt). */
  recipientsSoFar?: number;
  /** Entry id: the connection id for connect (its concurrent entry), else an event id. */
  member: string;
}

export interface LimitHit {
  limit: LimitName;
  key: string;
  count: number;
  maximum: number;
  windowMs: number | null;
  retryAfterMs: number;
  answer: 421 | 451;
  enhanced: string;
  text: string;
}

export interface StoreFailure {
  limits: LimitName[];
  error: Error;
}

export interface LimitOutcome {
  hit: LimitHit | null;
  /** Limits that applied (not exempt) and were asked. */
  checked: LimitName[];
  exempted: LimitName[];
  failures: StoreFailure[];
  /** A concurrent entry taken for this connection, to renew and release. */
  lease: { key: string; member: string } | null;
}

interface PlannedCheck extends CounterCheck {
  spec: LimitSpec;
}

export class RateLimiter {
  private readonly networks = new Map<Exemptions, BlockList>();

  constructor(
    private readonly config: RateLimitConfig,
    readonly store: CounterStore,
  ) {}

  /** True when some limit counts at this event (so the caller can skip all work otherwise). */
  hasLimits(event: LimitEvent): boolean {
    return this.config.limits.some((spec) => spec.kind.event === event);
  }

  async check(event: LimitEvent, subjects: EventSubjects): Promise<LimitOutcome> {
    const outcome: LimitOutcome = { hit: null, checked: [], exempted: [], failures: [],
      lease: null };

    // Which limits apply: the event's, minus exemptions and subjects that are absent.
    const planned: PlannedCheck[] = [];
    for (const spec of this.config.limits) {
      if (spec.kind.event !== event) continue;
      if (this.isExempt(spec, subjects)) {
        outcome.exempted.push(spec.name);
        continue;
      }
      if (spec.kind.counting === 'local') {
        outcome.checked.push(spec.name);
        const count = subjects.recipientsSoFar ?? 0;
        if (count >= spec.maximum) outcome.hit = describeHit(spec, '(this message)', count, 0);
        continue;
      }
      const key = keyFor(spec, subjects);
      if (key === null) continue;
      const periodMs = spec.windowMs ?? this.config.connectionLeaseMs;
      planned.push({ key, spec, maximum: spec.maximum, periodMs,
        counting: spec.kind.counting === 'window' ? 'window' : 'concurrent' });
      outcome.checked.push(spec.name);
    }
    if (outcome.hit || planned.length === 0) return outcome;

    // One store call per group (per hash slot in a cluster), all at once.
    const groups = new Map<string, PlannedCheck[]>();
    for (const check of planned) {
      const group = this.store.groupOf(check.key);
      groups.set(group, [...(groups.get(group) ?? []), check]);
    }
    const results = await Promise.all([...groups.values()].map(async (checks) => {
      try {
        return { checks, result: await this.store.take(checks, subjects.member) };
      } catch (error) {
        outcome.failures.push({ limits: checks.map((check) => check.spec.name),
          error: error instanceof Error ? error : new Error(String(error)) });
        return { checks, result: null };
      }
    }));

    // The first refusal in limit order wins; what the other groups took is given back.
    const refused = results
      .filter(({ result }) => result && !result.allowed)
      .map(({ checks, result }) => ({ check: checks[result?.refusedIndex ?? 0], result }))
      .sort((a, b) => order(this.config, a.check?.spec) - order(this.config, b.check?.spec))[0];
    if (refused?.check && refused.result) {
      const { check, result } = refused;
      outcome.hit = describeHit(check.spec, check.key, result.counts.at(-1) ?? check.maximum,
        result.retryAfterMs);
      for (const { checks, result: taken } of results) {
        if (!taken?.allowed) continue;
        for (const given of checks) void this.store.release(given.key, subjects.member)
          .catch(() => undefined);
      }
      return outcome;
    }

    // Allowed (or failed open): a concurrent entry is held until the connection closes.
    const concurrent = planned.find((check) => check.counting === 'concurrent');
    if (concurrent) outcome.lease = { key: concurrent.key, member: subjects.member };
    return outcome;
  }

  private isExempt(spec: LimitSpec, subjects: EventSubjects): boolean {
    const address = blockListAddress(subjects.clientIp);
    return [this.config.exempt, spec.exempt].some((exempt) =>
      (address !== null && this.networkList(exempt).check(...address))
      || (subjects.sender !== undefined && senderListed(exempt, subjects.sender)));
  }

  private networkList(exempt: Exemptions): BlockList {
    let list = this.networks.get(exempt);
    if (list) return list;
    list = new BlockList();
    for (const network of exempt.networks) {
      const [address = '', bits] = network.split('/');
      const type = isIP(address) === 6 ? 'ipv6' : 'ipv4';
      if (bits === undefined) list.addAddress(address, type);
      else list.addSubnet(address, Number(bits), type);
    }
    this.networks.set(exempt, list);
    return list;
  }
}

/** The key of one limit for these subjects; null when the subject is absent (null sender). */
export function keyFor(spec: LimitSpec, subjects: EventSubjects): string | null {
  const sender = subjects.sender ?? '';
  const domain = sender.includes('@') ? sender.slice(sender.lastIndexOf('@') + 1) : '';
  switch (spec.kind.subject) {
    case 'ip':
      return `${KEY_PREFIX}{ip:${keyPart(subjects.clientIp)}}:${spec.name}`;
    case 'sender':
      if (sender === '') return null;
      return `${KEY_PREFIX}{dom:${keyPart(domain || sender)}}:${spec.name}:${keyPart(sender)}`;
    case 'sender-domain':
      if (domain === '') return null;
      return `${KEY_PREFIX}{dom:${keyPart(domain)}}:${spec.name}`;
    case 'recipient':
      if (!subjects.recipient) return null;
      return `${KEY_PREFIX}{rcpt:${keyPart(subjects.recipient)}}:${spec.name}`;
    default:
      return null;
  }
}

/** Lower case; `{`, `}`, `%`, spaces and control characters percent-escaped. */
export function keyPart(text: string): string {
  return text.toLowerCase().replace(/[{}%\s\x00-\x1f\x7f]/g,
    (char) => `%${char.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

function describeHit(spec: LimitSpec, key: string, count: number, retryAfterMs: number): LimitHit {
  const per = spec.windowMs === null ? '' : ` per ${describeWindow(spec.windowMs)}`;
  const retry = retryAfterMs > 0
    ? `try again in ${Math.ceil(retryAfterMs / 1000)} seconds` : 'try again later';
  const whose: Record<string, string> = {
    'ip': 'from your address', 'sender': 'from this sender',
    'sender-domain': "from this sender's domain", 'recipient': 'for this recipient',
    'transaction': 'in this message',
  };
  const open = spec.kind.counting === 'concurrent' ? 'open ' : '';
  const text = `Too many ${open}${spec.kind.noun} ${whose[spec.kind.subject] ?? ''} `
    + `(limit ${spec.maximum}${per}), ${retry}`;
  return { limit: spec.name, key, count, maximum: spec.maximum, windowMs: spec.windowMs,
    retryAfterMs, answer: spec.answer, enhanced: spec.kind.enhanced, text };
}

function order(config: RateLimitConfig, spec: LimitSpec | undefined): number {
  return spec ? config.limits.indexOf(spec) : Number.MAX_SAFE_INTEGER;
}

function senderListed(exempt: Exemptions, sender: string): boolean {
  if (sender === '') return false;
  const domain = sender.slice(sender.lastIndexOf('@'));
  return exempt.senders.some((entry) => entry === sender || entry === domain);
}

/** BlockList wants IPv4-mapped IPv6 addresses as IPv4. */
function blockListAddress(ip: string): [string, 'ipv4' | 'ipv6'] | null {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped?.[1]) return [mapped[1], 'ipv4'];
  const family = isIP(ip);
  if (family === 0) return null;
  return [ip, family === 6 ? 'ipv6' : 'ipv4'];
}
