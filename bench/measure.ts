/*
 * One measured run: CPU of each process tree of interest before and after, Moat's resident
 * memory sampled during it, and (for a gateway) its Prometheus histograms before and after, so
 * the time spent in each check per message comes from Moat's own clocks.
 */

import { cpuBetween, cpuSnapshot, sampleResident } from './proc';

export interface Subjects {
  /** Named process trees whose CPU is counted, e.g. moat, clamd, spamd, redis, sink. */
  trees: Record<string, number>;
  /** The tree whose memory is sampled (Moat's), if any. */
  memoryOf?: number;
}

export interface Measured<T> {
  result: T;
  /** CPU milliseconds per tree over the run. */
  cpuMs: Record<string, number>;
  /**
   * Trees that lost a process during the run: counted through its parent's reaped-children
   * times, exact when the parent reaped it before the second snapshot.
   */
  lostProcess: string[];
  /** Highest summed RSS of the memory tree seen (sampled every 100 ms). */
  peakRssBytes: number;
  wallMs: number;
}

export async function measure<T>(subjects: Subjects, run: () => Promise<T>): Promise<Measured<T>> {
  const roots = Object.entries(subjects.trees).filter(([, pid]) => pid > 0);
  const before = new Map(roots.map(([name, pid]) => [name, cpuSnapshot([pid])]));
  const sampler = subjects.memoryOf ? sampleResident(subjects.memoryOf) : null;
  const started = performance.now();

  const result = await run();

  const wallMs = performance.now() - started;
  const peak = sampler?.stop().peak ?? 0;
  const cpuMs: Record<string, number> = {};
  const lostProcess: string[] = [];
  for (const [name, pid] of roots) {
    const start = before.get(name) as ReturnType<typeof cpuSnapshot>;
    const spent = cpuBetween(start, cpuSnapshot([pid]));
    cpuMs[name] = spent.ms;
    if (spent.lost) lostProcess.push(name);
  }
  return { result, cpuMs, lostProcess, peakRssBytes: peak, wallMs };
}

/** Histogram sums and counts from a Prometheus text exposition, keyed `name{labels}`. */
export type HistogramTotals = Map<string, { sum: number; count: number }>;

export async function histograms(metricsPort: number, names: string[]): Promise<HistogramTotals> {
  const totals: HistogramTotals = new Map();
  let text = '';
  try {
    const response = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
    text = await response.text();
  } catch {
    return totals;
  }
  for (const line of text.split('\n')) {
    const match = /^([a-z_]+)_(sum|count)(\{[^}]*\})? ([0-9.e+-]+)$/.exec(line);
    if (!match || !names.includes(match[1] as string)) continue;
    const key = `${match[1]}${match[3] ?? ''}`;
    const entry = totals.get(key) ?? { sum: 0, count: 0 };
    if (match[2] === 'sum') entry.sum = Number(match[4]);
    else entry.count = Number(match[4]);
    totals.set(key, entry);
  }
  return totals;
}

/** Mean milliseconds per observation between two readings, per series that moved. */
export function meanMsBetween(
  before: HistogramTotals, after: HistogramTotals,
): Record<string, { ms: number; count: number }> {
  const means: Record<string, { ms: number; count: number }> = {};
  for (const [key, now] of after) {
    const then = before.get(key) ?? { sum: 0, count: 0 };
    const count = now.count - then.count;
    if (count <= 0) continue;
    means[key] = { ms: Math.round(((now.sum - then.sum) / count) * 1e6) / 1e3, count };
  }
  return means;
}
