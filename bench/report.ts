/*
 * Turns the benchmark's runs into one summary: a row per concurrency level, mode and client
 * (medians over the repeats), each throughput also as a ratio to the floor measured in the same
 * repeat, the targets of the issue checked, and one table printed on stdout. The summary is
 * also what bench/results/latest.json holds.
 */

import { cpus } from 'node:os';

import type { BenchGateway, ScanTotals } from './gateways';
import type { MemoryReport } from './memory';
import type { MicroRow } from './micro';
import { mebibytes, median, round as roundTo } from './stats';
import type { BenchOptions } from './run';

export interface RunRecord {
  /**
   * relay-workers: the relay with smtp.workers = --relay-workers (smtp-source only).
   * full-stand-in: the full gateway while the spamd front answers at once (bench/spamd-front.ts;
   * smtp-source only; a diagnostic, judged by no target).
   */
  mode: 'floor' | 'relay' | 'relay-workers' | 'full' | 'full-stand-in';
  tool: 'smtp-source' | 'client';
  level: number;
  repeat: number;
  sent: number;
  delivered: number;
  perSecond: number;
  wallMs: number;
  latencyMs?: { p50: number; p95: number; p99: number; max: number; count: number };
  cpuMs: Record<string, number>;
  lostProcess: string[];
  peakRssBytes: number;
  checks: Record<string, { ms: number; count: number }>;
  mismatches: number;
  codes?: Record<string, number>;
  examples?: string[];
  scans?: ScanTotals;
}

const MODE_ORDER: Array<RunRecord['mode']> = [
  'floor', 'relay', 'relay-workers', 'full', 'full-stand-in',
];

export interface Row {
  level: number;
  mode: RunRecord['mode'];
  tool: RunRecord['tool'];
  perSecond: number;
  /** Median over repeats of this run's throughput divided by the floor's in the same repeat. */
  ofFloor: number | null;
  /** Lowest and highest of those ratios: the noise between repeats. */
  ofFloorRange: [number, number] | null;
  latencyMs: { p50: number; p95: number; p99: number } | null;
  cpuMsPerMessage: { moat: number; clamd: number; spamd: number; redis: number; sink: number };
  peakRssMb: number;
  mismatches: number;
}

interface SummaryInput {
  runs: RunRecord[];
  idle: { relay: number; full: number };
  /** Resident size right after the warm-up's last message (shown, not judged). */
  justAfterWarmUp: { relay: number; full: number };
  /** After the warm-up and IDLE_QUIET_MS without traffic. */
  idleAfterWarmUp: { relay: number; full: number };
  memory: MemoryReport | null;
  micro: MicroRow[];
  full: BenchGateway;
  loadAverage: { start: number[]; end: number[] };
  options: BenchOptions;
  corpusMix: Record<string, number>;
  /** Messages the spamd front answered itself; null when the stand-in runs were skipped. */
  standInAnswered: number | null;
}

export type Summary = ReturnType<typeof summarise>;

const round = (value: number, digits = 2): number => roundTo(value, digits);
const mb = (bytes: number): number => roundTo(mebibytes(bytes), 1);

export function summarise(input: SummaryInput) {
  const rows: Row[] = [];
  const keys = new Set(input.runs.map((run) => `${run.level}|${run.mode}|${run.tool}`));
  for (const key of keys) {
    const [level, mode, tool] = key.split('|') as [string, RunRecord['mode'], RunRecord['tool']];
    const runs = input.runs.filter((run) => `${run.level}|${run.mode}|${run.tool}` === key);
    const ratios = runs.map((run) => {
      const floor = input.runs.find((other) => other.mode === 'floor' && other.tool === run.tool
        && other.level === run.level && other.repeat === run.repeat);
      return floor ? run.perSecond / floor.perSecond : NaN;
    }).filter(Number.isFinite);
    const perMessage = (name: string): number =>
      round(median(runs.map((run) => (run.cpuMs[name] ?? 0) / run.sent)), 3);
    const latency = runs.every((run) => run.latencyMs) ? {
      p50: round(median(runs.map((run) => run.latencyMs?.p50 ?? 0))),
      p95: round(median(runs.map((run) => run.latencyMs?.p95 ?? 0))),
      p99: round(median(runs.map((run) => run.latencyMs?.p99 ?? 0))),
    } : null;
    rows.push({
      level: Number(level), mode, tool,
      perSecond: round(median(runs.map((run) => run.perSecond)), 1),
      ofFloor: mode === 'floor' || ratios.length === 0 ? null : round(median(ratios), 3),
      ofFloorRange: mode === 'floor' || ratios.length === 0 ? null
        : [round(Math.min(...ratios), 3), round(Math.max(...ratios), 3)],
      latencyMs: latency,
      cpuMsPerMessage: {
        moat: perMessage('moat'), clamd: perMessage('clamd'), spamd: perMessage('spamd'),
        redis: perMessage('redis'), sink: perMessage('sink'),
      },
      peakRssMb: mb(Math.max(...runs.map((run) => run.peakRssBytes))),
      mismatches: runs.reduce((sum, run) => sum + run.mismatches, 0),
    });
  }
  rows.sort((a, b) => a.tool.localeCompare(b.tool) || a.level - b.level
    || MODE_ORDER.indexOf(a.mode) - MODE_ORDER.indexOf(b.mode));

  return {
    generatedAt: new Date().toISOString(),
    machine: { cpus: cpus().length, model: cpus()[0]?.model ?? '', loadAverage: input.loadAverage },
    options: { ...input.options, skip: [...input.options.skip] },
    corpusMix: input.corpusMix,
    rows,
    targets: targets(rows, input),
    withoutSpamdContention: standInDiagnostic(rows, input.standInAnswered),
    scanStep: scanStep(input.runs),
    checksPerMessage: checksOf(input.runs),
    memory: {
      idleRssMbPerWorker: { relay: mb(input.idle.relay), full: mb(input.idle.full) },
      justAfterWarmUpRssMbPerWorker: {
        relay: mb(input.justAfterWarmUp.relay), full: mb(input.justAfterWarmUp.full),
      },
      afterWarmUpRssMbPerWorker: {
        relay: mb(input.idleAfterWarmUp.relay), full: mb(input.idleAfterWarmUp.full),
      },
      ...(input.memory ? { large: input.memory } : {}),
    },
    micro: input.micro,
    decisions: Object.fromEntries(input.full.decisions),
    runs: input.runs,
  };
}

/** The targets, each with the figures it was judged on. */
function targets(rows: Row[], input: SummaryInput) {
  const of = (mode: Row['mode'], tool: Row['tool']) =>
    rows.filter((row) => row.mode === mode && row.tool === tool);
  const ratiosOf = (mode: Row['mode']) => of(mode, 'smtp-source')
    .map((row) => ({ level: row.level, ofFloor: row.ofFloor }));
  const worstOf = (ratios: Array<{ ofFloor: number | null }>): number =>
    Math.min(...ratios.map((entry) => entry.ofFloor ?? 0));
  const relayRatios = ratiosOf('relay');
  const workerRatios = ratiosOf('relay-workers');
  const cpuRatio = of('full', 'smtp-source').map((row) => {
    const relay = of('relay', 'smtp-source').find((other) => other.level === row.level);
    return {
      level: row.level, full: row.cpuMsPerMessage.moat, relay: relay?.cpuMsPerMessage.moat ?? 0,
      ratio: relay && relay.cpuMsPerMessage.moat > 0
        ? round(row.cpuMsPerMessage.moat / relay.cpuMsPerMessage.moat) : null };
  });
  const scan = scanStep(input.runs);
  const idle = Math.max(input.idle.relay, input.idle.full, input.idleAfterWarmUp.relay,
    input.idleAfterWarmUp.full);
  const worstRelay = worstOf(relayRatios);
  const worstWorkers = workerRatios.length > 0 ? worstOf(workerRatios) : null;
  const worstCpu = Math.max(...cpuRatio.map((entry) => entry.ratio ?? Infinity));
  return {
    // Judged for each configuration: one process, and smtp.workers = the core count.
    relayAtLeast015OfFloor: {
      oneProcess: { met: worstRelay >= 0.15, worst: worstRelay, byLevel: relayRatios },
      workers: worstWorkers === null ? null : {
        count: input.options.relayWorkers, met: worstWorkers >= 0.15, worst: worstWorkers,
        byLevel: workerRatios,
      },
    },
    fullCpuAtMostTwiceRelay: { met: worstCpu <= 2, worst: worstCpu, byLevel: cpuRatio },
    scanStepNearSlowerScanner: scan ? {
      met: scan.stepOverSlower <= 1.2, stepOverSlower: scan.stepOverSlower,
      stepOverSum: scan.stepOverSum,
    } : null,
    idleRssPerWorkerAtMost150Mb: { met: idle <= 150 * 1024 * 1024, worstMb: mb(idle) },
    // Under 400 MB counts only when every message was taken: refusing them all is cheap.
    fiftyTwentyMbUnder400Mb: input.memory ? {
      met: input.memory.runs.every((run) => run.peakMb < 400 && run.accepted === run.concurrency),
      peakMb: Math.max(...input.memory.runs.map((run) => run.peakMb)),
      accepted: input.memory.runs.map((run) => `${run.mode} ${run.accepted}/${run.concurrency}`),
    } : null,
  };
}

/**
 * The full pipeline's Moat CPU per message while spamd answers at once, next to the relay's
 * and to the full pipeline's with the real spamd, at each level: how much of the full
 * pipeline's figure is Moat's code and how much the pace the real spamd sets.
 */
function standInDiagnostic(rows: Row[], answered: number | null) {
  if (answered === null) return null;
  const source = rows.filter((row) => row.tool === 'smtp-source');
  const byLevel = source.filter((row) => row.mode === 'full-stand-in').map((row) => {
    const cpuOf = (mode: Row['mode']): number | null =>
      source.find((other) => other.mode === mode && other.level === row.level)
        ?.cpuMsPerMessage.moat ?? null;
    const relay = cpuOf('relay');
    return {
      level: row.level, perSecond: row.perSecond, standIn: row.cpuMsPerMessage.moat,
      realSpamd: cpuOf('full'), relay,
      ratioToRelay: relay ? round(row.cpuMsPerMessage.moat / relay) : null,
    };
  });
  return { standInAnswered: answered, byLevel };
}

/** Per message of the full runs with the client: the scan step against its two scanners. */
function scanStep(runs: RunRecord[]) {
  const totals = runs.filter((run) => run.scans).reduce((sum, run) => {
    const scans = run.scans as ScanTotals;
    return { messages: sum.messages + scans.messages, step: sum.step + scans.step,
      clamd: sum.clamd + scans.clamd, spamd: sum.spamd + scans.spamd,
      slower: sum.slower + scans.slower, added: sum.added + scans.added };
  }, { messages: 0, step: 0, clamd: 0, spamd: 0, slower: 0, added: 0 });
  if (totals.messages === 0) return null;
  const ms = (seconds: number): number => round((seconds / totals.messages) * 1000, 1);
  return {
    messages: totals.messages, stepMs: ms(totals.step), clamdMs: ms(totals.clamd),
    spamdMs: ms(totals.spamd), slowerMs: ms(totals.slower), sumMs: ms(totals.added),
    stepOverSlower: round(totals.step / totals.slower),
    stepOverSum: round(totals.step / totals.added),
  };
}

/** Mean time per observation of each histogram series over the full-pipeline runs. */
function checksOf(runs: RunRecord[]) {
  const merged: Record<string, { totalMs: number; count: number }> = {};
  for (const run of runs.filter((entry) => entry.mode === 'full')) {
    for (const [series, { ms, count }] of Object.entries(run.checks)) {
      const entry = merged[series] ?? { totalMs: 0, count: 0 };
      entry.totalMs += ms * count;
      entry.count += count;
      merged[series] = entry;
    }
  }
  return Object.fromEntries(Object.entries(merged).map(([series, { totalMs, count }]) =>
    [series, { meanMs: round(totalMs / count, 3), count }]));
}

/** The table's columns: title, width, the cell of a row, and whether it is left-aligned. */
const COLUMNS: Array<[string, number, (row: Row) => string | number, boolean?]> = [
  ['client', 12, (row) => row.tool, true],
  ['conc', 5, (row) => row.level],
  [' mode', 15, (row) => ` ${row.mode}`, true],
  ['msg/s', 9, (row) => row.perSecond],
  ['x floor', 9, (row) => row.ofFloor ?? '1'],
  ['range', 14, (row) => (row.ofFloorRange ? row.ofFloorRange.join('-') : '')],
  ['p50 ms', 9, (row) => row.latencyMs?.p50 ?? ''],
  ['p95 ms', 9, (row) => row.latencyMs?.p95 ?? ''],
  ['p99 ms', 9, (row) => row.latencyMs?.p99 ?? ''],
  ['moat CPU', 10, (row) => row.cpuMsPerMessage.moat],
  ['clamd', 8, (row) => row.cpuMsPerMessage.clamd],
  ['spamd', 8, (row) => row.cpuMsPerMessage.spamd],
  ['redis', 7, (row) => row.cpuMsPerMessage.redis],
  ['peak MB', 9, (row) => (row.mode === 'floor' ? '' : row.peakRssMb)],
  ['bad', 5, (row) => row.mismatches],
];

export function printReport(summary: Summary): void {
  const out: string[] = [];
  const pad = (text: string | number, width: number): string => String(text).padStart(width);
  out.push('');
  out.push(`Moat benchmark, ${summary.generatedAt}, ${summary.machine.cpus} cores, load average `
    + `${summary.machine.loadAverage.start.map((value) => value.toFixed(2)).join('/')} at start, `
    + `${summary.machine.loadAverage.end.map((value) => value.toFixed(2)).join('/')} at end`);
  out.push('');
  const cell = (text: string | number, width: number, left = false): string =>
    (left ? String(text).padEnd(width) : pad(text, width));
  out.push(COLUMNS.map(([title, width, , left]) => cell(title, width, left)).join(''));
  for (const row of summary.rows) {
    out.push(COLUMNS.map(([, width, value, left]) => cell(value(row), width, left)).join(''));
  }
  out.push('(CPU columns: milliseconds of CPU per message; "bad": replies other than expected)');
  out.push('');
  const t = summary.targets;
  const verdict = (met: boolean): string => (met ? 'MET' : 'NOT MET');
  const relayTarget = t.relayAtLeast015OfFloor;
  out.push(`target relay >= 0.15 x floor (smtp-source), one process: `
    + `${verdict(relayTarget.oneProcess.met)}, worst ${relayTarget.oneProcess.worst}`);
  if (relayTarget.workers) {
    out.push(`target relay >= 0.15 x floor (smtp-source), ${relayTarget.workers.count} workers: `
      + `${verdict(relayTarget.workers.met)}, worst ${relayTarget.workers.worst}`);
  }
  out.push(`target full Moat CPU/msg <= 2 x relay: `
    + `${verdict(t.fullCpuAtMostTwiceRelay.met)}, worst ${t.fullCpuAtMostTwiceRelay.worst}`);
  if (summary.withoutSpamdContention) {
    const levels = summary.withoutSpamdContention.byLevel.map((entry) => `c=${entry.level} `
      + `${entry.standIn} ms (${entry.ratioToRelay} x relay; real spamd ${entry.realSpamd} ms)`);
    out.push(`  diagnostic, not a target: full Moat CPU/msg with spamd replaced by a stand-in `
      + `that answers at once: ${levels.join(', ')}; `
      + `${summary.withoutSpamdContention.standInAnswered} requests answered`);
  }
  if (summary.scanStep) {
    const scan = summary.scanStep;
    out.push(`target scan step close to the slower scanner (step/slower <= 1.2): `
      + `${t.scanStepNearSlowerScanner ? verdict(t.scanStepNearSlowerScanner.met) : 'n/a'}; `
      + `step ${scan.stepMs} ms per message; clamd ${scan.clamdMs}, spamd ${scan.spamdMs}; `
      + `slower ${scan.slowerMs}, sum ${scan.sumMs} `
      + `(step/slower ${scan.stepOverSlower}, step/sum ${scan.stepOverSum})`);
  }
  const {
    idleRssMbPerWorker: idle, afterWarmUpRssMbPerWorker: warm,
    justAfterWarmUpRssMbPerWorker: loaded,
  } = summary.memory;
  out.push(`target idle RSS <= 150 MB per worker, at start and idle after warm-up: `
    + `${verdict(t.idleRssPerWorkerAtMost150Mb.met)}; relay ${idle.relay} MB, full ${idle.full} `
    + `MB (idle after warm-up ${warm.relay} / ${warm.full} MB; right after its last message `
    + `${loaded.relay} / ${loaded.full} MB)`);
  if (summary.memory.large && t.fiftyTwentyMbUnder400Mb) {
    out.push(`target 50 x 20 MB at once under 400 MB, every message accepted: `
      + verdict(t.fiftyTwentyMbUnder400Mb.met));
    for (const run of summary.memory.large.runs) {
      out.push(`  ${run.concurrency} x ${run.messageMb} MB at once, ${run.mode}: `
        + `peak ${run.peakMb} MB for Moat (${run.accepted}/${run.concurrency} accepted, `
        + `${run.seconds} s)`);
    }
  }
  for (const [series, { meanMs, count }] of Object.entries(summary.checksPerMessage)) {
    out.push(`in pipeline: ${series} ${meanMs} ms mean over ${count}`);
  }
  for (const row of summary.micro) {
    out.push(`micro: ${row.name}: ${row.value} ${row.unit} (${row.detail})`);
  }
  process.stdout.write(`${out.join('\n')}\n`);
}
