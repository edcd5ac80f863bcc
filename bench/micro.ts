/*
 * Micro rows: the cost of single pieces, measured in this process on Moat's own modules
 * against the benchmark's real services (Redis, the DNS server), so a change to one piece
 * shows without the noise of a whole SMTP run.
 *
 *   rate limits     one message's checks (connect, MAIL, RCPT, close) with every limit on,
 *                   against Redis and in process memory: wall ms and this process's CPU ms
 *   rules           300 generated rules (subject regex, body keywords, header and attachment
 *                   tests, monitor mode so every rule is evaluated) on a 100 KB message
 *   DNS             Moat's resolver: a cache miss (a query to the DNS server) and a cache hit
 *   auth            SPF at MAIL and DKIM/ARC/DMARC at the end of DATA for a signed ~10 KB
 *                   message, with the resolver's cache warm (the steady state of a gateway)
 */

import { mkdtempSync, writeFileSync } from 'node:fs';
import { BlockList } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { authenticateMessage } from '../src/auth/message-auth';
import { checkSpf } from '../src/auth/spf';
import { Resolver } from '../src/dns/resolver';
import type { RateLimitConfig } from '../src/config/sections/ratelimit';
import { RateLimiter } from '../src/ratelimit/limiter';
import { parseLimit, type LimitName, type LimitSpec } from '../src/ratelimit/limits';
import { MemoryCounterStore } from '../src/ratelimit/memory-store';
import { RedisCounterStore } from '../src/ratelimit/redis-store';
import type { CounterStore } from '../src/ratelimit/store';
import { runRules } from '../src/rules/engine';
import { loadRuleSet } from '../src/rules/loader';
import { fromRawMessage } from '../src/rules/message';
import type { Corpus } from './corpus';
import type { Services } from './services';
import { round as roundTo } from './stats';

export interface MicroRow {
  name: string;
  value: number;
  unit: string;
  detail: string;
}

/** Wall and CPU milliseconds per iteration of an async step, after a warm-up. */
async function timed(iterations: number, step: (index: number) => Promise<void> | void) {
  for (let index = 0; index < Math.min(50, iterations); index++) await step(-1 - index);
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  for (let index = 0; index < iterations; index++) await step(index);
  const wallMs = (performance.now() - started) / iterations;
  const cpu = process.cpuUsage(cpuBefore);
  return { wallMs, cpuMs: (cpu.user + cpu.system) / 1000 / iterations };
}

const fixed = (value: number, digits = 3): number => roundTo(value, digits);

export async function runMicro(
  services: Services, corpus: Corpus, say: (text: string) => void,
): Promise<MicroRow[]> {
  const rows: MicroRow[] = [];
  say('micro: rate limits');
  rows.push(...await rateLimitRows(services));
  say('micro: rules');
  rows.push(...rulesRows());
  say('micro: DNS resolver');
  rows.push(...await dnsRows(services));
  say('micro: sender authentication');
  rows.push(...await authRows(services, corpus));
  return rows;
}

async function rateLimitRows(services: Services): Promise<MicroRow[]> {
  const text: Record<string, string> = {
    concurrent_connections_per_ip: '100000', connections_per_ip: '100000/1m',
    messages_per_ip: '100000/1m', messages_per_sender: '100000/1m',
    messages_per_sender_domain: '100000/1m', recipients_per_message: '50',
    recipients_per_sender: '100000/1m', messages_per_recipient: '100000/1m',
  };
  const limits = Object.entries(text).map(([name, value]) => parseLimit(name as LimitName, value))
    .filter((spec): spec is LimitSpec => spec !== null);
  const settings: RateLimitConfig = { limits, exempt: { networks: [], senders: [] },
    redisTimeoutMs: 1000, redisCluster: false, connectionLeaseMs: 60_000 };
  const stores: Array<[string, CounterStore]> = [
    ['redis', new RedisCounterStore({
      url: services.redis.url, cluster: false, timeoutMs: 1000, onClientError: () => undefined,
    })],
    ['memory', new MemoryCounterStore()],
  ];
  const rows: MicroRow[] = [];
  for (const [kind, store] of stores) {
    if (store instanceof RedisCounterStore) await store.connect(2000);
    const limiter = new RateLimiter(settings, store);
    const result = await timed(2000, async (index) => {
      const clientIp = `192.0.2.${(Math.abs(index) % 200) + 1}`;
      const sender = `s${Math.abs(index) % 50}@sender1.bench.test`;
      const member = `bench:${index}`;
      const connect = await limiter.check('connect', { clientIp, member });
      await limiter.check('mail', { clientIp, sender, member: `${member}:m` });
      const recipient = `user${Math.abs(index) % 200}@example.com`;
      await limiter.check('rcpt', {
        clientIp, sender, recipient, recipientsSoFar: 0, member: `${member}:r`,
      });
      if (connect.lease) await store.release(connect.lease.key, connect.lease.member);
    });
    rows.push({
      name: `rate limits, every limit on, ${kind} store`, value: fixed(result.wallMs),
      unit: 'ms/message',
      detail: `connect+MAIL+RCPT+close, sequential; ${fixed(result.cpuMs)} ms CPU `
        + 'in Moat\'s process',
    });
    await store.close();
  }
  return rows;
}

function rulesRows(): MicroRow[] {
  const dir = mkdtempSync(join(tmpdir(), 'moat-bench-rules-'));
  const rules: string[] = ['rules:'];
  for (let index = 0; index < 300; index++) {
    const condition = [
      `subject: { regex: "(?:urgent|invoice) #${index}[0-9]+" }`,
      `body: { keywords: ["wire transfer ${index}", "gift card ${index}", `
        + `"password reset ${index}"] }`,
      `header: { name: X-Bench-${index}, contains: "marker" }`,
      `attachment: { name: ["*.scr${index}", "*.js${index}"] }`,
      `sender: { domain: spam${index}.example }`,
    ][index % 5];
    rules.push(`  - id: bench-rule-${index}`, `    description: generated rule ${index}`,
      '    owner: bench@example.com', '    mode: monitor', '    direction: any',
      `    when: { ${condition} }`, '    actions:', '      - quarantine: generated');
  }
  writeFileSync(join(dir, 'bench.yaml'), `${rules.join('\n')}\n`);
  const set = loadRuleSet(dir);

  // A 100 KB message: text and an attachment.
  const words = 'quarterly report attached please review the figures before the meeting '
    .repeat(20);
  const body = Array.from({ length: 1100 }, (_, index) => `${index} ${words.slice(0, 60)}`)
    .join('\r\n');
  const attachment = Buffer.alloc(20_000, 7).toString('base64').replace(/.{76}/g, '$&\r\n');
  const raw = Buffer.from([
    'From: <alice@sender1.bench.test>', 'To: <user1@example.com>', 'Subject: The report',
    'MIME-Version: 1.0', 'Content-Type: multipart/mixed; boundary="b"', '', '--b',
    'Content-Type: text/plain', '', body, '--b', 'Content-Type: application/pdf; name="r.pdf"',
    'Content-Transfer-Encoding: base64', '', attachment, '--b--', ''].join('\r\n'));

  const parsed = { value: fromRawMessage(raw) };
  const parse = timedSync(200, () => { parsed.value = fromRawMessage(raw); });
  const input = {
    envelope: {
      sender: 'alice@sender1.bench.test', recipients: ['user1@example.com'], clientIp: '192.0.2.1',
    },
    message: parsed.value, direction: 'inbound' as const, results: [],
    acceptedDomains: new Set(['example.com']), internalNetworks: new BlockList(),
    maxTextChars: 2 * 1024 * 1024,
  };
  const evaluation = timedSync(200, () => { runRules(set, input); });
  return [
    { name: `rules, ${set.rules.length} rules on a ${Math.round(raw.length / 1024)} KB message`,
      value: fixed(evaluation), unit: 'ms/message',
      detail: 'evaluation only (every rule evaluated: monitor mode)' },
    { name: 'rules, reading that message for the rules', value: fixed(parse), unit: 'ms/message',
      detail: 'MIME parse and text extraction when the scan stage\'s parse is not shared' },
  ];
}

function timedSync(iterations: number, step: () => void): number {
  for (let index = 0; index < 20; index++) step();
  const started = performance.now();
  for (let index = 0; index < iterations; index++) step();
  return (performance.now() - started) / iterations;
}

async function dnsRows(services: Services): Promise<MicroRow[]> {
  const [host = '127.0.0.1', port = '53'] = services.dns.address.split(':');
  const resolver = new Resolver({
    servers: [{ host, port: Number(port) }], timeoutMs: 2000, attempts: 1, cacheSize: 100_000,
    minTtlMs: 60_000, maxTtlMs: 3_600_000, negativeTtlMs: 60_000,
  });
  services.dns.add('hit.bench.test', 'TXT', 'v=spf1 -all', 3600);
  // Every name the timed loop asks for (and its warm-up, at negative indexes) is in place
  // before the clock starts, so the loop does nothing but look up.
  for (let index = -50; index < 1000; index++) {
    services.dns.add(`m${index}.bench.test`, 'A', '192.0.2.1');
  }
  const miss = await timed(1000, async (index) => {
    await resolver.resolve(`m${index}.bench.test`, 'A');
  });
  const hit = await timed(5000, async () => { await resolver.resolve('hit.bench.test', 'TXT'); });
  return [
    { name: 'DNS lookup, cache miss', value: fixed(miss.wallMs * 1000, 0), unit: 'µs',
      // The test DNS server answers in this same process: its CPU is in the figure too.
      detail: `a query to the loopback DNS server; ${fixed(miss.cpuMs * 1000, 0)} µs CPU `
        + 'for the resolver and the test server together (one process)' },
    { name: 'DNS lookup, cache hit', value: fixed(hit.wallMs * 1000, 1), unit: 'µs',
      detail: `${fixed(hit.cpuMs * 1000, 1)} µs CPU` },
  ];
}

async function authRows(services: Services, corpus: Corpus): Promise<MicroRow[]> {
  const [host = '127.0.0.1', port = '53'] = services.dns.address.split(':');
  const resolver = new Resolver({
    servers: [{ host, port: Number(port) }], timeoutMs: 2000, attempts: 1, cacheSize: 10_000,
    minTtlMs: 60_000, maxTtlMs: 3_600_000, negativeTtlMs: 60_000,
  });
  const signed = corpus.messages.find((message) => message.name.startsWith('small')
    && message.wire.includes('DKIM-Signature'));
  if (!signed) return [];
  // The corpus keeps messages dot-stuffed for the wire; the checks read them unstuffed.
  const unstuffed = signed.wire.toString('latin1').replace(/\r\n\.\./g, '\r\n.');
  const message = Buffer.from(unstuffed, 'latin1');
  const sender = signed.from;
  const spfQuery = {
    clientIp: '192.0.2.7', sender, helo: 'mail.sender.example', mta: 'moat.bench.test',
    resolve: resolver.lookup, timeoutMs: 8000,
  };
  const spf = await timed(500, async () => {
    await checkSpf(spfQuery);
  });
  const spfResult = await checkSpf(spfQuery);
  const data = await timed(300, async () => {
    await authenticateMessage(message, { spf: spfResult, sender, resolve: resolver.lookup,
      minRsaBits: 1024, rejectRsaSha1: true, partialBody: 'policy', timeoutMs: 15_000 });
  });
  return [
    { name: 'auth, SPF at MAIL', value: fixed(spf.cpuMs), unit: 'ms CPU/message',
      detail: `${fixed(spf.wallMs)} ms wall, resolver cache warm` },
    { name: `auth, DKIM+ARC+DMARC at end of DATA (${Math.round(message.length / 1024)} KB, `
        + 'RSA 2048 signed)',
      value: fixed(data.cpuMs), unit: 'ms CPU/message',
      detail: `${fixed(data.wallMs)} ms wall, resolver cache warm` },
  ];
}
