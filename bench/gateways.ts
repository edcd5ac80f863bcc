/*
 * The two Moats the benchmark measures, started with the test harness's startGateway (the real
 * dist/src/runtime/main.js as `npm start` runs it) and configured through moat.ini:
 *
 * relay  every check off that can be switched off: no scanners ([scanners] local = off and no
 *        addresses), no blocklists, no rate limits, an empty rules folder; the load comes from
 *        127.0.0.1, an internal network, so sender authentication is skipped. What is left is
 *        Moat's own path: Haraka, the dirty-data checker, the MIME walk, the verdict, the
 *        decision line, metrics and the pooled forwarder.
 * full   everything on: the DNS blocklist, SPF/DKIM/DMARC/ARC against the benchmark's DNS
 *        server (loopback is made external so the checks run), every rate limit in Redis with
 *        maxima high enough never to refuse, clamd and spamd, and the shipped rules.
 *
 * Connection limits are raised (50 concurrent connections come from one address). Decision
 * lines are counted by event, action and reason and then dropped: the harness would keep every
 * line, which over a long run is the benchmark's own memory leak.
 */

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { REPO_ROOT, startGateway, type Gateway } from '../test/harness/gateway';
import { BLOCKLIST_ZONE } from './corpus';
import type { Services } from './services';

export type Mode = 'relay' | 'full';

/** The local address the load client sends PROXY headers from (the only PROXY host). */
export const PROXY_CLIENT = '127.0.0.5';

export interface BenchGateway {
  mode: Mode;
  gateway: Gateway;
  pid: number;
  /** Decision lines seen so far, by `event action reason`. */
  decisions: Map<string, number>;
  /** Operational lines at warn or error, the last few. */
  warnings: string[];
  /** Per-message scan times from the `message scanned` lines (seconds, summed). */
  scans: ScanTotals;
  stop(): Promise<void>;
}

export interface ScanTotals {
  messages: number;
  /** The scan step as a whole. */
  step: number;
  clamd: number;
  spamd: number;
  /** Per message, the slower of clamd and spamd, and the two added. */
  slower: number;
  added: number;
}

const HIGH = '100000/1m';

/** moat.ini as sections of key = value; `overrides` ("section.key": value) win. */
function ini(
  mode: Mode, services: Services, workers: number, overrides: Record<string, string> = {},
): string {
  const sections: Record<string, Record<string, string>> = {
    smtp: {
      workers: String(workers), max_connections_per_ip: '100000', max_connections: '100000',
      ...(mode === 'full' ? { internal_networks: '10.0.0.0/8' } : {}),
    },
    downstream: { pool_size: '64' },
    rules: {
      dir: mode === 'full' ? join(REPO_ROOT, 'rules')
        : mkdtempSync(join(tmpdir(), 'moat-bench-rules-')),
      reload: 'false',
    },
    scanners: { local: 'off' },
    ratelimit: { concurrent_connections_per_ip: '' },
    reputation: { reverse_dns: 'off' },
  };
  if (mode === 'full') {
    Object.assign(sections, {
      reputation: { zones: `block:${BLOCKLIST_ZONE}:1` },
      redis: { url: services.redis.url },
      ratelimit: {
        concurrent_connections_per_ip: '100000', connections_per_ip: HIGH,
        messages_per_ip: HIGH, messages_per_sender: HIGH, messages_per_sender_domain: HIGH,
        recipients_per_message: '50', recipients_per_sender: HIGH, messages_per_recipient: HIGH,
      },
      clamd: { address: services.clamd.address, required: 'true' },
      spamd: { address: services.spamd.address },
    });
  }
  for (const [name, value] of Object.entries(overrides)) {
    const [section = '', key = ''] = name.split('.');
    sections[section] = { ...sections[section], [key]: value };
  }
  return Object.entries(sections).flatMap(([section, keys]) => [
    `[${section}]`, ...Object.entries(keys).map(([key, value]) => `${key} = ${value}`),
  ]).join('\n');
}

export async function startBenchGateway(
  mode: Mode, services: Services,
  options: {
    workers?: number; env?: Record<string, string>;
    /** Settings over the mode's, as "section.key": value. */
    settings?: Record<string, string>;
  } = {},
): Promise<BenchGateway> {
  const gateway = await startGateway({
    ini: ini(mode, services, options.workers ?? 0, options.settings),
    env: {
      MOAT_DOWNSTREAM: services.sink.address,
      MOAT_DNS_SERVERS: services.dns.address,
      // The scan step's timings come from the scanner's debug line (countLine below): one line
      // a message more than the default configuration writes.
      ...(mode === 'full' ? { MOAT_PROXY_HOSTS: PROXY_CLIENT, MOAT_DEBUG: 'scan' } : {}),
      ...options.env,
    },
    startTimeoutMs: 60_000,
  });

  // Replace the harness's keep-every-line listener with counters.
  const stdout = gateway.daemon.child.stdout;
  stdout?.removeAllListeners('data');
  const decisions = new Map<string, number>();
  const warnings: string[] = [];
  const scans: ScanTotals = { messages: 0, step: 0, clamd: 0, spamd: 0, slower: 0, added: 0 };
  let partial = '';
  stdout?.on('data', (chunk: Buffer) => {
    const lines = (partial + chunk.toString('utf8')).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) countLine(line, decisions, warnings, scans);
  });

  return {
    mode, gateway, decisions, warnings, scans,
    pid: gateway.daemon.child.pid as number,
    stop: () => gateway.stop(),
  };
}

function countLine(
  line: string, decisions: Map<string, number>, warnings: string[], scans: ScanTotals,
): void {
  if (!line.startsWith('{')) return;
  if (line.includes('"msg":"message scanned"')) {
    addScan(line, scans);
    return;
  }
  // Cheap field reads: parsing every line as JSON would cost the benchmark a core.
  const event = /"event":"([^"]+)"/.exec(line)?.[1];
  if (event) {
    const action = /"action":"([^"]+)"/.exec(line)?.[1] ?? '?';
    const reason = /"reason":"([^"]+)"/.exec(line)?.[1] ?? '?';
    const key = `${event} ${action} ${reason}`;
    decisions.set(key, (decisions.get(key) ?? 0) + 1);
    return;
  }
  if (/"level":"(warn|error)"/.test(line)) {
    warnings.push(line.slice(0, 400));
    if (warnings.length > 20) warnings.shift();
  }
}

function addScan(line: string, scans: ScanTotals): void {
  let entry: { seconds?: number; clamd?: { seconds?: number }; spamd?: { seconds?: number } };
  try {
    entry = JSON.parse(line) as typeof entry;
  } catch {
    return;
  }
  const clamd = entry.clamd?.seconds ?? 0;
  const spamd = entry.spamd?.seconds ?? 0;
  scans.messages += 1;
  scans.step += entry.seconds ?? 0;
  scans.clamd += clamd;
  scans.spamd += spamd;
  scans.slower += Math.max(clamd, spamd);
  scans.added += clamd + spamd;
}
