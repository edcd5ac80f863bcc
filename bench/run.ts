/*
 * `npm run bench`: how fast Moat moves mail, next to its floor, in one reproducible run.
 *
 * Starts on loopback the DNS server, Redis, clamd, spamd and the sink (bench/services.ts), a
 * relay-only Moat and a full-pipeline Moat (bench/gateways.ts), then, for each concurrency
 * level and repeat, alternates: the floor (load straight into the sink), relay-only, full.
 * Each of those is measured twice: smtp-source sending the ~10 KB message (throughput, the same
 * C client for all three) and the benchmark's own client sending the mixed corpus (throughput
 * and latency from the end of DATA to the reply). Then the memory runs, the micro rows, one
 * table on stdout, and the JSON (bench/results/latest.json unless --out says otherwise).
 *
 * Options (or MOAT_BENCH_* variables): --levels 1,10,50  --repeats 2  --scale 1 (multiplies
 * message counts)  --workers 0  --relay-workers <cores>  --skip memory,micro  --out FILE.
 * bench/README.md has the rest.
 */

import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { REPO_ROOT } from '../test/harness/gateway';
import { buildCorpus, type Corpus } from './corpus';
import { PROXY_CLIENT, startBenchGateway, type BenchGateway, type Mode } from './gateways';
import { runLoad, type LoadReport } from './load';
import { histograms, meanMsBetween, measure, type Measured } from './measure';
import { runMemoryChecks, type MemoryReport } from './memory';
import { runMicro, type MicroRow } from './micro';
import { largestResident } from './proc';
import { printReport, summarise, type RunRecord } from './report';
import { startServices, type Services } from './services';
import { startSpamdFront, type SpamdFront } from './spamd-front';
import { runSmtpSource, smtpSourcePath, type SourceReport } from './smtp-source';

export interface BenchOptions {
  levels: number[];
  repeats: number;
  scale: number;
  workers: number;
  /** Workers of the extra relay gateway whose smtp-source runs are the 'relay-workers' rows;
   * 0: none. Default: the core count, as docs/operations.md advises for a busy node. */
  relayWorkers: number;
  skip: Set<string>;
  out: string;
}

/** Messages per run, before --scale: enough for a few seconds of each at the speeds seen here. */
const COUNTS: Record<RunRecord['mode'], { source: number; client: number }> = {
  floor: { source: 4000, client: 1500 },
  relay: { source: 2000, client: 800 },
  'relay-workers': { source: 2000, client: 0 },
  full: { source: 200, client: 150 },
  'full-stand-in': { source: 2000, client: 0 },
};

/** Moat's latency histograms read around each run (docs/metrics.md). */
const HISTOGRAMS = ['moat_check_duration_seconds', 'moat_ratelimit_store_seconds',
  'moat_downstream_seconds', 'moat_dns_query_seconds'];

function parseOptions(argv: string[]): BenchOptions {
  const value = (flag: string, env: string, fallback: string): string => {
    const index = argv.indexOf(flag);
    if (index !== -1 && argv[index + 1] !== undefined) return argv[index + 1] as string;
    return process.env[env] ?? fallback;
  };
  const numbers = (text: string, what: string): number[] => text.split(',').map((item) => {
    const number = Number(item);
    if (!Number.isFinite(number) || number <= 0) {
      throw new RangeError(`${what}: "${item}" is not a positive number`);
    }
    return number;
  });
  return {
    levels: numbers(value('--levels', 'MOAT_BENCH_LEVELS', '1,10,50'), '--levels'),
    repeats: numbers(value('--repeats', 'MOAT_BENCH_REPEATS', '2'), '--repeats')[0] as number,
    scale: numbers(value('--scale', 'MOAT_BENCH_SCALE', '1'), '--scale')[0] as number,
    workers: Number(value('--workers', 'MOAT_WORKERS', '0')),
    relayWorkers: Number(value('--relay-workers', 'MOAT_BENCH_RELAY_WORKERS',
      String(cpus().length))),
    skip: new Set(value('--skip', 'MOAT_BENCH_SKIP', '').split(',').filter(Boolean)),
    out: value('--out', 'MOAT_BENCH_OUT', join(REPO_ROOT, 'bench', 'results', 'latest.json')),
  };
}

export async function main(argv = process.argv.slice(2)): Promise<void> {
  const options = parseOptions(argv);
  smtpSourcePath();
  const startLoad = loadavg();
  say(`load average at start: ${startLoad.map((value) => value.toFixed(2)).join(' ')} `
    + `(2 cores; figures are noisy above ~0.5)`);

  say('building the corpus');
  const corpus = await buildCorpus();
  say('starting DNS, Redis, clamd, spamd and the sink');
  const services = await startServices(corpus.records);
  let relay: BenchGateway | undefined;
  let full: BenchGateway | undefined;
  let relayWorkers: BenchGateway | undefined;
  // The full gateway's spamd: the real one through a front that can also answer at once, for
  // the warm-ups and the full-stand-in rows (bench/spamd-front.ts).
  const spamdFront: SpamdFront = await startSpamdFront(services.spamd.address);
  try {
    say('starting the relay-only and full-pipeline gateways');
    relay = await startBenchGateway('relay', services, { workers: options.workers });
    full = await startBenchGateway('full', services, {
      workers: options.workers, settings: { 'spamd.address': spamdFront.address },
    });
    if (options.relayWorkers > 0) {
      relayWorkers = await startBenchGateway('relay', services, { workers: options.relayWorkers });
    }
    const idle = {
      relay: largestResident(relay.pid), full: largestResident(full.pid),
    };

    say('warming up');
    await warmUp(relay, full, corpus);
    const justAfterWarmUp = { relay: largestResident(relay.pid), full: largestResident(full.pid) };
    await sleep(IDLE_QUIET_MS);
    const idleAfterWarmUp = { relay: largestResident(relay.pid), full: largestResident(full.pid) };

    const runs: RunRecord[] = [];
    for (const level of options.levels) {
      for (let repeat = 1; repeat <= options.repeats; repeat++) {
        for (const mode of ['floor', 'relay', 'full'] as const) {
          const gateway: BenchGateway | null = mode === 'relay' ? relay
            : mode === 'full' ? full : null;
          if (mode === 'relay') await warmUpSource(relay, corpus, level);
          if (mode === 'full') {
            // Warmed like the relay, with spamd answering at once; the stand-in rows are the
            // same gateway at that pace; then the measured runs meet the real spamd.
            spamdFront.answerAtOnce();
            await warmUpSource(full, corpus, level);
            if (!options.skip.has('stand-in')) {
              runs.push(await sourceRun('full-stand-in', full, services, corpus, level, repeat,
                options.scale));
            }
            spamdFront.forward();
          }
          runs.push(await sourceRun(mode, gateway, services, corpus, level, repeat, options.scale));
          runs.push(await clientRun(mode, gateway, services, corpus, level, repeat, options.scale));
          if (mode === 'relay' && relayWorkers) {
            await warmUpSource(relayWorkers, corpus, level);
            runs.push(await sourceRun('relay-workers', relayWorkers, services, corpus, level,
              repeat, options.scale));
          }
        }
      }
    }

    const memory: MemoryReport | null = options.skip.has('memory') ? null
      : await runMemoryChecks(relay, full, say);
    const micro: MicroRow[] = options.skip.has('micro') ? []
      : await runMicro(services, corpus, say);

    const summary = summarise({
      runs, idle, justAfterWarmUp, idleAfterWarmUp, memory, micro, full,
      standInAnswered: options.skip.has('stand-in') ? null : spamdFront.answered(),
      loadAverage: { start: startLoad, end: loadavg() }, options,
      corpusMix: corpus.mix,
    });
    printReport(summary);
    mkdirSync(dirname(options.out), { recursive: true });
    writeFileSync(options.out, `${JSON.stringify(summary, null, 2)}\n`);
    say(`written ${options.out}`);
  } finally {
    await relay?.stop();
    await full?.stop();
    await relayWorkers?.stop();
    await spamdFront.stop();
    await services.stop();
  }
}

async function warmUp(relay: BenchGateway, full: BenchGateway, corpus: Corpus) {
  for (const gateway of [relay, full]) {
    await runLoad({
      host: gateway.gateway.host, port: gateway.gateway.port, concurrency: 5,
      messages: corpus.messages, count: gateway.mode === 'full' ? 60 : 300,
      ...(gateway.mode === 'full' ? { proxyFrom: PROXY_CLIENT } : { expectAll: relayExpect }),
    });
  }
}

/**
 * Before each relay and full smtp-source run, 4000 messages that are not measured (the full
 * gateway's answered at once by the spamd front). Those runs measure a gateway in its steady
 * state, and one that sat idle for a while, or has seen only a few hundred messages, is not in
 * it: V8's memory reducer, which gives the heap back after a burst, leaves the next few
 * thousand messages costing more CPU each (two workers, c=10, 1000 messages a run: 2.08 ms a
 * message, then after 12 s without traffic 3.01, 2.46, 2.56, 2.37, 2.16, 2.14 ms; with the
 * reducer off, no rise), and V8 optimises a function by how often it ran, which for the code
 * of one message is once a message (the full pipeline at c=10 after its first 60 messages:
 * 11.0 ms a message; after 4000 more, 6.8-7.4 ms). Here each gateway waits 30-60 s for the
 * others' runs.
 */
async function warmUpSource(
  gateway: BenchGateway, corpus: Corpus, sessions: number,
): Promise<void> {
  await runSmtpSource({
    host: gateway.gateway.host, port: gateway.gateway.port, sessions, count: 4000,
    file: corpus.typical.file, from: corpus.typical.from, to: corpus.typical.to,
  });
}

/*
 * Idle means no traffic for this long. V8 gives back the heap it grew under load only some
 * seconds after allocation stops (its memory reducer: 8-12 s on this machine), so a reading
 * right after the warm-up is the load's high-water mark, not idle memory; that reading is
 * printed too.
 */
const IDLE_QUIET_MS = 20_000;

const relayExpect = { code: 250, at: 'data' as const };

function target(mode: RunRecord['mode'], gateway: BenchGateway | null, services: Services) {
  if (!gateway) {
    const [host = '127.0.0.1', port = '0'] = services.sink.address.split(':');
    return { host, port: Number(port) };
  }
  return { host: gateway.gateway.host, port: gateway.gateway.port };
}

function subjects(gateway: BenchGateway | null, services: Services) {
  return {
    trees: {
      moat: gateway?.pid ?? 0, clamd: services.pids.clamd, spamd: services.pids.spamd,
      redis: services.pids.redis, sink: services.pids.sink,
    },
    ...(gateway ? { memoryOf: gateway.pid } : {}),
  };
}

/**
 * What both kinds of run share: the sink's count, Moat's histograms and the CPU and memory of
 * every process tree, taken around `load`.
 */
async function measuredLoad<T>(
  gateway: BenchGateway | null, services: Services, load: () => Promise<T>,
): Promise<{ measured: Measured<T>; delivered: number; checks: RunRecord['checks'] }> {
  const before = await sinkCount(services);
  const metricsPort = gateway?.gateway.metricsPort;
  const metricsBefore = metricsPort ? await histograms(metricsPort, HISTOGRAMS) : null;
  const measured = await measure(subjects(gateway, services), load);
  const delivered = (await sinkCount(services)) - before;
  const checks = metricsPort && metricsBefore
    ? meanMsBetween(metricsBefore, await histograms(metricsPort, HISTOGRAMS)) : {};
  return { measured, delivered, checks };
}

async function sourceRun(
  mode: RunRecord['mode'], gateway: BenchGateway | null, services: Services, corpus: Corpus,
  level: number, repeat: number, scale: number,
): Promise<RunRecord> {
  const count = Math.max(level * 4, Math.round(COUNTS[mode].source * scale));
  const { host, port } = target(mode, gateway, services);
  const { measured, delivered, checks } = await measuredLoad(gateway, services,
    (): Promise<SourceReport> => runSmtpSource({
      host, port, sessions: level, count, file: corpus.typical.file,
      from: corpus.typical.from, to: corpus.typical.to,
    }));
  say(`${mode.padEnd(5)} smtp-source c=${level} #${repeat}: ${measured.result.perSecond} msg/s, `
    + `moat ${perMessage(measured.cpuMs['moat'], count)} ms CPU/msg, `
    + `delivered ${delivered}/${count}`);
  return {
    mode, tool: 'smtp-source', level, repeat, sent: count, delivered,
    perSecond: measured.result.perSecond, wallMs: measured.result.wallMs,
    cpuMs: measured.cpuMs, lostProcess: measured.lostProcess, peakRssBytes: measured.peakRssBytes,
    // The typical message is clean: every copy must reach the sink, in every mode.
    checks, mismatches: count - delivered,
  };
}

async function clientRun(
  mode: 'floor' | Mode, gateway: BenchGateway | null, services: Services, corpus: Corpus,
  level: number, repeat: number, scale: number,
): Promise<RunRecord> {
  const count = Math.max(level * 4, Math.round(COUNTS[mode].client * scale));
  const { host, port } = target(mode, gateway, services);
  const scansBefore = gateway ? { ...gateway.scans } : null;
  const { measured, delivered, checks } = await measuredLoad(gateway, services,
    (): Promise<LoadReport> => runLoad({
      host, port, concurrency: level, messages: corpus.messages, count,
      ...(mode === 'full' ? { proxyFrom: PROXY_CLIENT } : { expectAll: relayExpect }),
    }));
  const report = measured.result;
  say(`${mode.padEnd(5)} client      c=${level} #${repeat}: ${report.perSecond} msg/s, `
    + `p50 ${report.latencyMs.p50} p95 ${report.latencyMs.p95} p99 ${report.latencyMs.p99} ms, `
    + `moat ${perMessage(measured.cpuMs['moat'], count)} ms CPU/msg, `
    + `mismatches ${report.mismatches}`
    + (report.examples.length > 0 ? ` e.g. ${report.examples[0]}` : ''));
  const scans = gateway && scansBefore && mode === 'full'
    ? { scans: scanDelta(scansBefore, gateway.scans) } : {};
  return {
    mode, tool: 'client', level, repeat, sent: report.sent, delivered,
    perSecond: report.perSecond, wallMs: report.wallMs, latencyMs: report.latencyMs,
    cpuMs: measured.cpuMs, lostProcess: measured.lostProcess, peakRssBytes: measured.peakRssBytes,
    checks, mismatches: report.mismatches, codes: report.codes, examples: report.examples,
    ...scans,
  };
}

function scanDelta(before: BenchGateway['scans'], after: BenchGateway['scans']) {
  const delta = { ...after };
  for (const key of Object.keys(delta) as Array<keyof typeof delta>) delta[key] -= before[key];
  return delta;
}

async function sinkCount(services: Services): Promise<number> {
  // smtp-sink prints its counters as it goes; give the last update a moment to arrive.
  await sleep(100);
  return services.sink.accepted();
}

function perMessage(ms: number | undefined, count: number): string {
  return ms === undefined ? 'n/a' : (ms / count).toFixed(2);
}

export function say(message: string): void {
  process.stderr.write(`bench: ${message}\n`);
}


if (require.main === module) {
  main().then(() => process.exit(0), (error: unknown) => {
    const text = error instanceof Error ? error.stack : String(error);
    process.stderr.write(`bench: failed: ${text}\n`);
    process.exit(1);
  });
}
