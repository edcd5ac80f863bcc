/*
 * Dependency health on /metrics: is each service the mail path needs answering right now?
 *
 *   moat_dependency_up{dependency}             1 when it answered its probe, else 0
 *   moat_dependency_probe_seconds{dependency}  how long that probe took (up to the deadline)
 *
 * dependency: downstream (the internal server: connect, greeting, EHLO, STARTTLS when
 * required) or maildir (writable) when no internal server is set; clamd and spamd (PING, any
 * configured address); redis (one round trip to the rate-limit store). Only what is configured
 * has a series. DNS has no probe: its health is the outcome of real lookups
 * (moat_dns_lookups_total{outcome}).
 *
 * The probes run when /metrics is scraped, all at once, each within PROBE_DEADLINE_MS, so an
 * idle gateway still tells whether it could take mail, and nothing runs between scrapes.
 * Concurrent scrapes share one round; a round is reused for ROUND_REUSE_MS. They run in the
 * process that serves /metrics (the Haraka master), in a registry of their own: in cluster
 * mode the workers' registries are summed, and one answer per node is what is wanted here.
 * A change of state is logged once (`component: health`): warn when a dependency stops
 * answering, info when it answers again.
 *
 * LIMITATION: two Prometheus servers scraping the same node probe twice as often. Each probe
 * is one short connection, the same as a /readyz call.
 */

import { Gauge, Registry } from 'prom-client';

import { log } from './decision-log';

export const DEPENDENCIES = ['downstream', 'maildir', 'clamd', 'spamd', 'redis'] as const;
export type DependencyName = (typeof DEPENDENCIES)[number];

export interface ProbeResult {
  ok: boolean;
  detail: string;
}
export type DependencyProbe = () => Promise<ProbeResult>;
export type DependencyProbes = Partial<Record<DependencyName, DependencyProbe>>;

export const PROBE_DEADLINE_MS = 2000;
const ROUND_REUSE_MS = 1000;

/** Served next to Moat's main registry by the master's /metrics (./http.ts). */
export const healthRegistry = new Registry();

let probes: DependencyProbes = {};
let deadlineMs = PROBE_DEADLINE_MS;
let reuseMs = ROUND_REUSE_MS;
let round: Promise<void> | null = null;
let roundFinishedAt = -Infinity;
const lastUp = new Map<DependencyName, boolean>();

const upGauge = new Gauge({
  name: 'moat_dependency_up',
  help: 'Whether a dependency answered its probe at this scrape: 1 yes, 0 no (refused, timed '
    + 'out or answered wrongly).',
  labelNames: ['dependency'] as const,
  registers: [healthRegistry],
  async collect() {
    await probeAll();
  },
});

const probeSecondsGauge = new Gauge({
  name: 'moat_dependency_probe_seconds',
  help: 'How long the probe of a dependency took at this scrape (at most the probe deadline).',
  labelNames: ['dependency'] as const,
  registers: [healthRegistry],
  async collect() {
    await probeAll();
  },
});

/** Sets what is probed (the configured dependencies); the series of others disappear. */
export function setDependencyProbes(
  configured: DependencyProbes, options: { deadlineMs?: number; reuseMs?: number } = {},
): void {
  probes = { ...configured };
  deadlineMs = options.deadlineMs ?? PROBE_DEADLINE_MS;
  reuseMs = options.reuseMs ?? ROUND_REUSE_MS;
  roundFinishedAt = -Infinity;
  lastUp.clear();
  upGauge.reset();
  probeSecondsGauge.reset();
}

/** Runs every probe once (or joins the round in flight, or reuses one just finished). */
export async function probeAll(): Promise<void> {
  if (round) return round;
  if (performance.now() - roundFinishedAt < reuseMs) return;

  round = (async () => {
    const entries = Object.entries(probes) as Array<[DependencyName, DependencyProbe]>;
    await Promise.all(entries.map(async ([name, probe]) => {
      const started = performance.now();
      const result = await withinDeadline(probe, deadlineMs);
      upGauge.set({ dependency: name }, result.ok ? 1 : 0);
      probeSecondsGauge.set({ dependency: name }, (performance.now() - started) / 1000);
      noteChange(name, result);
    }));
  })();
  try {
    await round;
  } finally {
    round = null;
    roundFinishedAt = performance.now();
  }
}

function noteChange(name: DependencyName, result: ProbeResult): void {
  const before = lastUp.get(name);
  lastUp.set(name, result.ok);
  if (before === result.ok || (before === undefined && result.ok)) return;
  const fields = { dependency: name, detail: result.detail };
  if (result.ok) log('info', 'health', `${name} answers again`, fields);
  else log('warn', 'health', `${name} does not answer`, fields);
}

async function withinDeadline(probe: DependencyProbe, limitMs: number): Promise<ProbeResult> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<ProbeResult>((resolve) => {
    timer = setTimeout(() => resolve({ ok: false, detail: `no answer within ${limitMs} ms` }),
      limitMs);
  });
  try {
    return await Promise.race([probe(), late]);
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    return { ok: false, detail: `probe failed: ${why}` };
  } finally {
    clearTimeout(timer);
  }
}
