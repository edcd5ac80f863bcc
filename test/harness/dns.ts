/*
 * A small authoritative DNS server on 127.0.0.1, UDP and TCP on the same free port, for tests
 * that need real DNS answers (SPF, DKIM, DMARC, DNSBL, PTR, MX) without the internet.
 *
 * Tests add and remove records at run time. Answers follow the usual authoritative rules:
 * NXDOMAIN for a name that has no records (and is not the parent of one), NOERROR with an empty
 * answer (NODATA) for a known name without the asked type, CNAMEs followed inside our data.
 * Faults per name suffix: blackhole (the query is never answered, for timeout tests), an error
 * rcode (REFUSED, SERVFAIL), or a delay before answering. Every query received is logged, so a
 * test can prove that a cache saved a lookup.
 *
 * Over UDP an answer longer than the client's buffer (512 bytes, or its EDNS size) is sent
 * truncated (TC), and the client retries over TCP, as with a real server.
 *
 * LIMITATION: negative answers carry no SOA record, so a resolver that derives a negative-cache
 * TTL from the SOA minimum has none to use. No DNSSEC, no zone transfers, no wildcards.
 */

import { createSocket, type RemoteInfo, type Socket as UdpSocket } from 'node:dgram';
import { after, before, beforeEach } from 'node:test';
import { createServer, type Server, type Socket } from 'node:net';

import * as dnsPacket from 'dns-packet';

import { Resolver } from '../../src/dns/resolver';
import { freePort, LOOPBACK } from './ports';
import {
  dnsAnswer,
  type DnsRecord,
  type DnsRecordData,
  type DnsRecordType,
} from './dns-records';

export { ptrName } from './dns-records';
export type { DnsRecord, DnsRecordData, DnsRecordType, MxData } from './dns-records';

export type DnsFaultRcode = 'REFUSED' | 'SERVFAIL';

export interface DnsQueryLogEntry {
  name: string;
  type: string;
  transport: 'udp' | 'tcp';
}

const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 };
const MAX_CNAME_HOPS = 8;
const PLAIN_UDP_LIMIT = 512;

type Fault =
  | { kind: 'blackhole' }
  | { kind: 'rcode'; rcode: number }
  | { kind: 'delay'; ms: number };

function normalise(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}

function underSuffix(name: string, suffix: string): boolean {
  return suffix === '' || name === suffix || name.endsWith(`.${suffix}`);
}

export class DnsServer {
  readonly host = LOOPBACK;
  /** Every query received, oldest first. */
  readonly queries: DnsQueryLogEntry[] = [];
  private readonly records: DnsRecord[] = [];
  private readonly faults = new Map<string, Fault>();
  private readonly tcpSockets = new Set<Socket>();
  private readonly timers = new Set<NodeJS.Timeout>();

  private constructor(
    readonly port: number,
    private readonly udp: UdpSocket,
    private readonly tcp: Server,
  ) {}

  /** 127.0.0.1:<port>, as dns.Resolver.setServers() takes it. */
  get address(): string {
    return `${LOOPBACK}:${this.port}`;
  }

  static async start(): Promise<DnsServer> {
    const port = await freePort();
    const udp = createSocket('udp4');
    const tcp = createServer();
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(port, LOOPBACK, () => resolve());
    });
    await new Promise<void>((resolve, reject) => {
      tcp.once('error', reject);
      tcp.listen(port, LOOPBACK, () => resolve());
    });
    const server = new DnsServer(port, udp, tcp);
    udp.on('message', (message, peer) => server.onUdp(message, peer));
    tcp.on('connection', (socket) => server.onTcp(socket));
    return server;
  }

  /** Add one record. A TXT string longer than 255 bytes is split into 255-byte strings. */
  add(name: string, type: DnsRecordType, data: DnsRecordData, ttl = 300): this {
    this.records.push({ name: normalise(name), type, data, ttl });
    return this;
  }

  /** Remove the records of name (only of that type, if given). */
  remove(name: string, type?: DnsRecordType): this {
    const owner = normalise(name);
    for (let i = this.records.length - 1; i >= 0; i--) {
      const record = this.records[i] as DnsRecord;
      if (record.name === owner && (!type || record.type === type)) this.records.splice(i, 1);
    }
    return this;
  }

  clearRecords(): this {
    this.records.length = 0;
    return this;
  }

  /** Never answer queries for suffix and the names under it. */
  blackhole(suffix: string): this {
    this.faults.set(normalise(suffix), { kind: 'blackhole' });
    return this;
  }

  /** Answer queries for suffix and the names under it with an error rcode. */
  refuse(suffix: string, rcode: DnsFaultRcode = 'REFUSED'): this {
    this.faults.set(normalise(suffix), { kind: 'rcode', rcode: RCODE[rcode] });
    return this;
  }

  /** Answer queries for suffix and the names under it only after ms milliseconds. */
  delay(suffix: string, ms: number): this {
    this.faults.set(normalise(suffix), { kind: 'delay', ms });
    return this;
  }

  /** Remove the fault set for suffix, or every fault. */
  heal(suffix?: string): this {
    if (suffix === undefined) this.faults.clear();
    else this.faults.delete(normalise(suffix));
    return this;
  }

  /** How many queries were received, for a name and/or type if given. */
  queryCount(name?: string, type?: string): number {
    const owner = name === undefined ? undefined : normalise(name);
    return this.queries.filter(
      (query) => (owner === undefined || query.name === owner) && (!type || query.type === type),
    ).length;
  }

  resetQueryLog(): void {
    this.queries.length = 0;
  }

  async stop(): Promise<void> {
    for (const timer of this.timers) clearTimeout(timer);
    for (const socket of this.tcpSockets) socket.destroy();
    await new Promise<void>((resolve) => this.tcp.close(() => resolve()));
    await new Promise<void>((resolve) => this.udp.close(() => resolve()));
  }

  private onUdp(message: Buffer, peer: RemoteInfo): void {
    this.handle(message, 'udp', (reply) => {
      this.udp.send(reply, peer.port, peer.address);
    });
  }

  private onTcp(socket: Socket): void {
    this.tcpSockets.add(socket);
    let pending = Buffer.alloc(0);
    socket.on('close', () => this.tcpSockets.delete(socket));
    socket.on('error', () => socket.destroy());
    socket.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 2) {
        const length = pending.readUInt16BE(0);
        if (pending.length < 2 + length) break;
        const message = pending.subarray(2, 2 + length);
        pending = pending.subarray(2 + length);
        this.handle(message, 'tcp', (reply) => {
          if (socket.destroyed) return;
          const prefix = Buffer.alloc(2);
          prefix.writeUInt16BE(reply.length, 0);
          socket.write(Buffer.concat([prefix, reply]));
        });
      }
    });
  }

  private handle(message: Buffer, transport: 'udp' | 'tcp', send: (reply: Buffer) => void): void {
    let query: dnsPacket.Packet;
    try {
      query = dnsPacket.decode(message);
    } catch {
      return; // Not DNS: a real server would drop it too.
    }
    const question = query.questions?.[0];
    if (!question) return;

    const name = normalise(question.name);
    this.queries.push({ name, type: question.type, transport });

    const fault = this.faultFor(name);
    if (fault?.kind === 'blackhole') return;
    if (fault?.kind === 'rcode') return send(this.encode(query, fault.rcode, [], transport));

    const { rcode, answers } = this.resolve(name, question.type);
    const reply = this.encode(query, rcode, answers, transport);
    if (fault?.kind !== 'delay') return send(reply);

    const timer = setTimeout(() => {
      this.timers.delete(timer);
      send(reply);
    }, fault.ms);
    this.timers.add(timer);
  }

  /** The most specific fault whose suffix covers name. */
  private faultFor(name: string): Fault | undefined {
    let best: { suffix: string; fault: Fault } | undefined;
    for (const [suffix, fault] of this.faults) {
      if (!underSuffix(name, suffix)) continue;
      if (!best || suffix.length > best.suffix.length) best = { suffix, fault };
    }
    return best?.fault;
  }

  private resolve(name: string, type: string): { rcode: number; answers: dnsPacket.Answer[] } {
    const answers: dnsPacket.Answer[] = [];
    let owner = name;

    for (let hop = 0; hop <= MAX_CNAME_HOPS; hop++) {
      const atOwner = this.records.filter((record) => record.name === owner);
      const exists = atOwner.length > 0 || this.records.some((r) => r.name.endsWith(`.${owner}`));
      if (!exists) return { rcode: RCODE.NXDOMAIN, answers };

      const matching = atOwner.filter((record) => type === 'ANY' || record.type === type);
      if (matching.length > 0) {
        answers.push(...matching.map(dnsAnswer));
        return { rcode: RCODE.NOERROR, answers };
      }

      // Follow a CNAME inside our own data, as an authoritative server for every name does.
      const alias = atOwner.find((record) => record.type === 'CNAME');
      if (!alias) return { rcode: RCODE.NOERROR, answers };
      answers.push(dnsAnswer(alias));
      owner = normalise(alias.data as string);
    }
    return { rcode: RCODE.SERVFAIL, answers: [] };
  }

  private encode(
    query: dnsPacket.Packet,
    rcode: number,
    answers: dnsPacket.Answer[],
    transport: 'udp' | 'tcp',
  ): Buffer {
    const recursionDesired = (query.flags ?? 0) & dnsPacket.RECURSION_DESIRED;
    const flags = dnsPacket.AUTHORITATIVE_ANSWER | recursionDesired | rcode;
    const base = { type: 'response' as const, id: query.id, questions: query.questions };
    const full = dnsPacket.encode({ ...base, flags, answers });
    if (transport === 'tcp') return full;

    // Over UDP respect the client's buffer: its EDNS size, or 512 without EDNS.
    const edns = query.additionals?.find((record) => record.type === 'OPT');
    const limit = Math.max(PLAIN_UDP_LIMIT, edns?.udpPayloadSize ?? PLAIN_UDP_LIMIT);
    if (full.length <= limit) return full;
    return dnsPacket.encode({ ...base, flags: flags | dnsPacket.TRUNCATED_RESPONSE, answers: [] });
  }
}

export function startDns(): Promise<DnsServer> {
  return DnsServer.start();
}

/**
 * Moat's resolver asking only this server: one attempt, a 1 s timeout, every TTL honoured
 * (no floor), NXDOMAIN kept 1 s when no SOA came. For tests of the checks that use DNS.
 */
export function resolverFor(dns: DnsServer): Resolver {
  return new Resolver({ servers: [{ host: dns.host, port: dns.port }],
    timeoutMs: 1000, attempts: 1, cacheSize: 100, minTtlMs: 0, maxTtlMs: 60_000,
    negativeTtlMs: 1000 });
}

/**
 * For the test file of a check that uses DNS, inside its describe(): the test DNS server runs
 * for the whole suite, and before each test its records, faults and query log are cleared and
 * a fresh resolverFor() it is made (so no answer is cached from an earlier test).
 */
/** A lookup of the address and PTR records, the shape Moat's reputation checks take. */
export type TestLookup = (name: string, rrtype: 'A' | 'AAAA' | 'PTR') => Promise<string[]>;

export function useTestDns(): {
  readonly dns: DnsServer; readonly resolver: Resolver;
  /** The current test's resolver as a plain lookup. */
  readonly lookup: TestLookup;
} {
  const current = {
    lookup: (name, rrtype) => current.resolver.resolve(name, rrtype),
  } as { dns: DnsServer; resolver: Resolver; lookup: TestLookup };
  before(async () => {
    current.dns = await startDns();
  });
  after(async () => {
    await current.dns?.stop();
  });
  beforeEach(() => {
    current.dns.clearRecords().heal().resetQueryLog();
    current.resolver = resolverFor(current.dns);
  });
  return current;
}
