/*
 * CPU time and memory of process trees, read from /proc (Linux only).
 *
 * CPU: utime + stime of every live process in the tree (the root and all its descendants, so a
 * Haraka master with its cluster workers, or spamd with its preforked children, count whole).
 * A run's CPU is the difference between two snapshots, each process counted with the children
 * it has reaped (cutime/cstime), so a spamd child that ends during a run still counts.
 *
 * Memory: resident set (VmRSS) of each process, summed per tree, sampled on a timer (the tree's
 * peak at one moment; the kernel's per-process peaks summed would overstate it).
 *
 * LIMITATION: clock ticks are 10 ms (CLK_TCK 100); over a run of thousands of messages that is
 * far below the noise of a shared two-core machine, over a handful it is not.
 */

import { readdirSync, readFileSync } from 'node:fs';

/** clock ticks per second; getconf CLK_TCK is 100 on every Linux we run on. */
const TICKS_PER_SECOND = 100;

interface ProcStat {
  pid: number;
  ppid: number;
  cpuTicks: number;
}

function readStat(pid: number): ProcStat | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return null;
  }
  // pid (comm) state ppid ... utime(14) stime(15) cutime(16) cstime(17): comm may hold spaces
  // and parentheses. cutime/cstime are the children it has reaped: spamd's children come and
  // go during a run, and their CPU lands there when they end.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const ticks = [11, 12, 13, 14].reduce((sum, index) => sum + Number(fields[index]), 0);
  return { pid, ppid: Number(fields[1]), cpuTicks: ticks };
}

/** The parent pid, or 0 when the process is gone. */
export function parentOf(pid: number): number {
  return readStat(pid)?.ppid ?? 0;
}

function allStats(): ProcStat[] {
  const stats: ProcStat[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readStat(Number(entry));
    if (stat) stats.push(stat);
  }
  return stats;
}

/** The pids of root and every descendant alive now. */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const stat of allStats()) {
    const siblings = children.get(stat.ppid) ?? [];
    siblings.push(stat.pid);
    children.set(stat.ppid, siblings);
  }
  const tree: number[] = [];
  const pending = [root];
  while (pending.length > 0) {
    const pid = pending.pop() as number;
    tree.push(pid);
    pending.push(...(children.get(pid) ?? []));
  }
  return tree;
}

export interface CpuSnapshot {
  /** CPU milliseconds per pid. */
  byPid: Map<number, number>;
}

/** CPU used so far by every process of the trees rooted at roots. */
export function cpuSnapshot(roots: number[]): CpuSnapshot {
  const byPid = new Map<number, number>();
  for (const root of roots) {
    for (const pid of processTree(root)) {
      const stat = readStat(pid);
      if (stat) byPid.set(pid, (stat.cpuTicks * 1000) / TICKS_PER_SECOND);
    }
  }
  return { byPid };
}

/**
 * CPU milliseconds spent between two snapshots, and whether a process left meanwhile. A process
 * that left was reaped by its parent in the tree, whose children's times now hold all of its
 * CPU: what it had used before the first snapshot is taken off again.
 */
export function cpuBetween(before: CpuSnapshot, after: CpuSnapshot): { ms: number; lost: boolean } {
  let ms = 0;
  let lost = false;
  for (const [pid, now] of after.byPid) ms += now - (before.byPid.get(pid) ?? 0);
  for (const [pid, then] of before.byPid) {
    if (after.byPid.has(pid)) continue;
    lost = true;
    ms -= then;
  }
  return { ms, lost };
}

function statusField(pid: number, field: 'VmRSS'): number {
  try {
    const text = readFileSync(`/proc/${pid}/status`, 'latin1');
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
    return match ? Number(match[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Resident bytes of each tree, now. */
export function residentBytes(root: number): number {
  return processTree(root).reduce((sum, pid) => sum + statusField(pid, 'VmRSS'), 0);
}

/** The largest resident size of any one process of the tree, now (the per-worker figure). */
export function largestResident(root: number): number {
  return Math.max(0, ...processTree(root).map((pid) => statusField(pid, 'VmRSS')));
}

/**
 * Samples the summed RSS of a tree every intervalMs until stop(); returns the highest sum seen
 * (the tree's peak at one moment, which VmHWM summed per process overstates when processes
 * peak at different times) and the samples.
 */
export function sampleResident(root: number, intervalMs = 100): {
  stop(): { peak: number; samples: Array<{ at: number; bytes: number }> };
} {
  const samples: Array<{ at: number; bytes: number }> = [];
  let peak = 0;
  const take = (): void => {
    const bytes = residentBytes(root);
    peak = Math.max(peak, bytes);
    samples.push({ at: Date.now(), bytes });
  };
  take();
  const timer = setInterval(take, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      take();
      return { peak, samples };
    },
  };
}
