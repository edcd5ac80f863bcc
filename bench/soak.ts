/*
 * `npm run soak`: does Moat's memory grow when it runs for a long time?
 *
 * Starts the benchmark's services and the full-pipeline Moat (every check on, the mixed corpus
 * with its EICAR, GTUBE and listed senders), warms it up, then sends mail at a steady
 * concurrency for --minutes (default 30) while it samples, every --sample-seconds, Moat's
 * resident memory (all its processes) and the V8 heap in use (moat_nodejs_heap_size_used_bytes
 * from its own /metrics), with the heap V8 holds and the memory outside it (Buffers) beside
 * them, so a growing RSS can be told apart: heap, Buffers or the allocator. It then compares
 * the first third of the samples with the last third and fits a line through them, and prints
 * one verdict: growth is the last third's median over the first third's, and the soak fails
 * (exit 1) when heap or RSS grew by more than --max-growth (default 10 %) or when any reply
 * was not the one the corpus expects.
 *
 * Bounded: it stops by itself after warm-up plus --minutes, sends only to loopback, and writes
 * its samples as JSON (bench/results/soak.json unless --out says otherwise).
 *
 * The resident size is a sawtooth: every smtp.busy_collect (30 s) the gateway collects and trims
 * (src/runtime/busy-collection.ts), and it climbs again until the next time. Samples every 30 s
 * drifted slowly against that period, from just after the collections in the first third to just
 * before them in the last, and read 24 % of "growth" (138 -> 172 MB) in a run whose heap was
 * flat and whose lowest readings were 115-117 MB at the start and at the end. So samples are
 * taken every 5 s by default: each third then holds every phase of the sawtooth.
 *
 * Options (or MOAT_SOAK_* variables): --minutes 30  --concurrency 10  --sample-seconds 5
 * --warmup-seconds 120  --max-growth 0.10  --out FILE.
 */

import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { REPO_ROOT } from '../test/harness/gateway';
import { buildCorpus } from './corpus';
import { PROXY_CLIENT, startBenchGateway, type BenchGateway } from './gateways';
import { runLoad, type MessageResult } from './load';
import { residentBytes } from './proc';
import { startServices } from './services';
import { mebibytes, median, round as roundTo } from './stats';

interface SoakOptions {
  minutes: number;
  concurrency: number;
  sampleSeconds: number;
  warmupSeconds: number;
  maxGrowth: number;
  out: string;
}

interface Sample {
  /** Seconds since the measured part began. */
  at: number;
  rssMb: number;
  heapMb: number;
  /** V8 heap held (moat_nodejs_heap_size_total_bytes): used plus what V8 keeps free. */
  heapTotalMb: number;
  /** Memory V8 counts outside its heap, Buffers mostly (moat_nodejs_external_memory_bytes). */
  externalMb: number;
  messages: number;
}

function parseOptions(argv: string[]): SoakOptions {
  const number = (flag: string, env: string, fallback: number): number => {
    const index = argv.indexOf(flag);
    const text = index !== -1 ? argv[index + 1] : process.env[env];
    if (text === undefined) return fallback;
    const value = Number(text);
    if (!Number.isFinite(value) || value <= 0) {
      throw new RangeError(`${flag}: "${text}" is not a positive number`);
    }
    return value;
  };
  const outIndex = argv.indexOf('--out');
  return {
    minutes: number('--minutes', 'MOAT_SOAK_MINUTES', 30),
    concurrency: number('--concurrency', 'MOAT_SOAK_CONCURRENCY', 10),
    sampleSeconds: number('--sample-seconds', 'MOAT_SOAK_SAMPLE_SECONDS', 5),
    warmupSeconds: number('--warmup-seconds', 'MOAT_SOAK_WARMUP_SECONDS', 120),
    maxGrowth: number('--max-growth', 'MOAT_SOAK_MAX_GROWTH', 0.1),
    out: (outIndex !== -1 ? argv[outIndex + 1] : undefined) ?? process.env['MOAT_SOAK_OUT']
      ?? join(REPO_ROOT, 'bench', 'results', 'soak.json'),
  };
}

/** Moat's memory gauges, summed over its workers, from its /metrics. */
async function memoryGauges(
  gateway: BenchGateway,
): Promise<{ heapUsed: number; heapTotal: number; external: number }> {
  const response = await fetch(`http://127.0.0.1:${gateway.gateway.metricsPort}/metrics`);
  const text = await response.text();
  const sum = (name: string): number => {
    let total = 0;
    for (const match of text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))) {
      total += Number(match[1]);
    }
    return total;
  };
  return {
    heapUsed: sum('moat_nodejs_heap_size_used_bytes'),
    heapTotal: sum('moat_nodejs_heap_size_total_bytes'),
    external: sum('moat_nodejs_external_memory_bytes'),
  };
}


/** Least-squares slope of value over time, per hour. */
function slopePerHour(samples: Sample[], value: (sample: Sample) => number): number {
  const n = samples.length;
  if (n < 2) return 0;
  const meanAt = samples.reduce((sum, sample) => sum + sample.at, 0) / n;
  const meanValue = samples.reduce((sum, sample) => sum + value(sample), 0) / n;
  let numerator = 0;
  let denominator = 0;
  for (const sample of samples) {
    numerator += (sample.at - meanAt) * (value(sample) - meanValue);
    denominator += (sample.at - meanAt) ** 2;
  }
  return denominator === 0 ? 0 : (numerator / denominator) * 3600;
}

/** First third against last third, by median, for one measure. */
function growthOf(samples: Sample[], value: (sample: Sample) => number) {
  const third = Math.max(1, Math.floor(samples.length / 3));
  const first = median(samples.slice(0, third).map(value));
  const last = median(samples.slice(-third).map(value));
  return {
    firstMb: round(first), lastMb: round(last),
    growth: first > 0 ? round((last - first) / first, 3) : 0,
    slopeMbPerHour: round(slopePerHour(samples, value)),
  };
}

const round = (value: number, digits = 1): number => roundTo(value, digits);
const mb = mebibytes;

export async function soak(argv = process.argv.slice(2)): Promise<boolean> {
  const options = parseOptions(argv);
  const corpus = await buildCorpus();
  say('starting DNS, Redis, clamd, spamd and the sink');
  const services = await startServices(corpus.records);
  let gateway: BenchGateway | undefined;
  try {
    gateway = await startBenchGateway('full', services);
    const target = {
      host: gateway.gateway.host, port: gateway.gateway.port, proxyFrom: PROXY_CLIENT,
      concurrency: options.concurrency, messages: corpus.messages,
    };

    say(`warming up for ${options.warmupSeconds} s`);
    await runLoad({ ...target, durationMs: options.warmupSeconds * 1000 });

    // The measured part: load runs in the background, samples are taken on a timer.
    say(`soaking for ${options.minutes} min at concurrency ${options.concurrency}, `
      + `a sample every ${options.sampleSeconds} s`);
    let messages = 0;
    let unexpected = 0;
    const examples: string[] = [];
    const onMessage = (result: MessageResult): void => {
      messages += 1;
      if (result.ok) return;
      unexpected += 1;
      if (examples.length < 5) examples.push(`${result.name}: ${result.code} at ${result.at}`);
    };
    const started = Date.now();
    const load = runLoad({ ...target, durationMs: options.minutes * 60_000, onMessage });
    const samples: Sample[] = [];
    let loadDone = false;
    void load.finally(() => {
      loadDone = true;
    });
    while (!loadDone) {
      const at = (Date.now() - started) / 1000;
      const rssMb = round(mb(residentBytes(gateway.pid)));
      const gauges = await memoryGauges(gateway);
      const sample: Sample = {
        at, rssMb, heapMb: round(mb(gauges.heapUsed)), heapTotalMb: round(mb(gauges.heapTotal)),
        externalMb: round(mb(gauges.external)), messages,
      };
      samples.push(sample);
      // One line in six: at the default 5 s, a line every 30 s.
      if ((samples.length - 1) % 6 === 0) {
        say(`t=${Math.round(sample.at)} s: RSS ${sample.rssMb} MB, heap ${sample.heapMb} MB `
          + `(held ${sample.heapTotalMb} MB), external ${sample.externalMb} MB, `
          + `${messages} messages, ${unexpected} unexpected`);
      }
      await Promise.race([sleep(options.sampleSeconds * 1000), load]);
    }
    const report = await load;

    const rss = growthOf(samples, (sample) => sample.rssMb);
    const heap = growthOf(samples, (sample) => sample.heapMb);
    // Shown beside the verdict, not part of it: where a grown RSS went.
    const heapHeld = growthOf(samples, (sample) => sample.heapTotalMb);
    const external = growthOf(samples, (sample) => sample.externalMb);
    const grew = rss.growth > options.maxGrowth || heap.growth > options.maxGrowth;
    const passed = !grew && unexpected === 0 && samples.length >= 3;
    const summary = {
      generatedAt: new Date().toISOString(), options, messages: report.sent,
      perSecond: report.perSecond, latencyMs: report.latencyMs, unexpected, examples,
      mallocArenaMax: process.env['MALLOC_ARENA_MAX'] ?? null,
      rss, heap, heapHeld, external, passed, samples,
    };
    mkdirSync(dirname(options.out), { recursive: true });
    writeFileSync(options.out, `${JSON.stringify(summary, null, 2)}\n`);

    process.stdout.write([
      '',
      `Moat soak, ${options.minutes} min, ${report.sent} messages (${report.perSecond} msg/s), `
        + `${unexpected} unexpected replies`,
      `RSS:  first third ${rss.firstMb} MB, last third ${rss.lastMb} MB, growth `
        + `${(rss.growth * 100).toFixed(1)} %, slope ${rss.slopeMbPerHour} MB/h`,
      `heap: first third ${heap.firstMb} MB, last third ${heap.lastMb} MB, growth `
        + `${(heap.growth * 100).toFixed(1)} %, slope ${heap.slopeMbPerHour} MB/h`,
      `  beside them: heap held ${heapHeld.firstMb} -> ${heapHeld.lastMb} MB, `
        + `external ${external.firstMb} -> ${external.lastMb} MB`,
      `verdict: ${passed ? 'no growth'
        : grew ? 'MEMORY GREW' : 'FAILED (replies or too few samples)'}`
        + ` (limit ${(options.maxGrowth * 100).toFixed(0)} %)`,
      ...examples.map((example) => `  unexpected: ${example}`),
      `written ${options.out}`,
      '',
    ].join('\n'));
    return passed;
  } finally {
    await gateway?.stop();
    await services.stop();
  }
}

function say(message: string): void {
  process.stderr.write(`soak: ${message}\n`);
}

if (require.main === module) {
  soak().then((passed) => process.exit(passed ? 0 : 1), (error: unknown) => {
    process.stderr.write(`soak: failed: ${error instanceof Error ? error.stack : String(error)}\n`);
    process.exit(1);
  });
}
