/*
 * Child daemons for tests: start one, wait until it answers, pause it, stop it.
 *
 * Every daemon the harness starts (redis-server, clamd, spamd) is spawned through here so that
 * one registry knows about it. When the test process ends, for whatever reason node lets us see
 * (normal exit, uncaught exception, SIGINT/SIGTERM/SIGHUP), every daemon still alive is killed
 * with SIGKILL, so a failing test file never leaves a scanner eating the machine's two cores.
 *
 * Temporary directories made with makeTempDir() are removed at the same moment.
 *
 * LIMITATION: a test process killed with SIGKILL cannot run any handler; its daemons are then
 * orphaned until someone kills them. Each daemon listens only on a random loopback port, so an
 * orphan never collides with a later run.
 */

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** A daemon could not be started or did not answer in time. */
export class DaemonStartError extends Error {
  constructor(
    readonly daemon: string,
    message: string,
    readonly logTail: string,
    options?: { cause?: unknown },
  ) {
    super(`${daemon}: ${message}${logTail ? `\n--- last output ---\n${logTail}` : ''}`, options);
    this.name = 'DaemonStartError';
  }
}

const liveChildren = new Set<ChildProcess>();
const tempDirs = new Set<string>();
let safetyNetInstalled = false;

/*
 * Each daemon is started as the leader of its own process group, and signals go to the whole
 * group: spamd's preforked children must freeze and die with their parent, or a SIGKILLed
 * spamd would leave children still answering on its port.
 */
function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // The group is already gone.
  }
}

/*
 * True while some process of the group is still running. A killed child that nobody has reaped
 * yet (a zombie, which holds no socket) does not count; on Linux /proc tells them apart.
 */
function groupAlive(child: ChildProcess): boolean {
  if (child.pid === undefined) return false;
  if (!existsSync('/proc/self/stat')) {
    try {
      process.kill(-child.pid, 0);
      return true;
    } catch {
      return false;
    }
  }
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'latin1');
    } catch {
      continue;
    }
    // pid (comm) state ppid pgrp ...: comm may hold spaces, so split after the last ')'.
    const [state, , group] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(group) === child.pid && state !== 'Z' && state !== 'X') return true;
  }
  return false;
}

/** Wait (at most limitMs) until no process of the group is left, so its ports are closed. */
async function groupGone(child: ChildProcess, limitMs = 3000): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (groupAlive(child) && Date.now() < deadline) await sleep(20);
}

function killEverything(): void {
  for (const child of liveChildren) signalGroup(child, 'SIGKILL');
  liveChildren.clear();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}

function installSafetyNet(): void {
  if (safetyNetInstalled) return;
  safetyNetInstalled = true;

  process.on('exit', killEverything);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      killEverything();
      // Let the default action (termination by that signal) happen as if we were not here.
      process.removeListener(signal, onSignal);
      process.kill(process.pid, signal);
    };
    process.on(signal, onSignal);
  }
}

/** A fresh directory under the system temp dir, removed when the test process ends. */
export function makeTempDir(prefix: string): string {
  installSafetyNet();
  const dir = mkdtempSync(join(tmpdir(), `moat-${prefix}-`));
  tempDirs.add(dir);
  return dir;
}

/** Remove a directory made by makeTempDir() now rather than at exit. */
export function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

/** One running daemon process and the output it has printed so far. */
export class Daemon {
  private output = '';
  private readonly exited: Promise<void>;
  exitCode: number | null = null;
  exitSignal: NodeJS.Signals | null = null;

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
    /** A log file the daemon writes besides stdout/stderr, shown in start errors. */
    readonly logFile?: string,
  ) {
    const keep = (chunk: Buffer): void => {
      this.output = (this.output + chunk.toString('utf8')).slice(-8192);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exitCode = code;
        this.exitSignal = signal;
        liveChildren.delete(child);
        resolve();
      });
      child.once('error', (error) => {
        // The process never ran (no such executable, no permission).
        this.output += `\nspawn failed: ${error.message}`;
        if (this.exitCode === null) this.exitCode = -1;
        liveChildren.delete(child);
        resolve();
      });
    });
  }

  get running(): boolean {
    return this.exitCode === null && this.exitSignal === null;
  }

  /** The last few kilobytes the daemon wrote to stdout and stderr, and to its log file. */
  logTail(): string {
    if (!this.logFile || !existsSync(this.logFile)) return this.output;
    const fileTail = readFileSync(this.logFile, 'utf8').slice(-8192);
    return `${this.output}\n--- ${this.logFile} ---\n${fileTail}`;
  }

  /** Freeze the process (SIGSTOP): its port stays open but nothing is answered. */
  pause(): void {
    if (this.running) signalGroup(this.child, 'SIGSTOP');
  }

  resume(): void {
    if (this.running) signalGroup(this.child, 'SIGCONT');
  }

  /** SIGTERM, then SIGKILL if it has not exited after graceMs. Resolves once it is gone. */
  async stop(graceMs = 5000): Promise<void> {
    if (!this.running) return;

    // A stopped process only sees SIGTERM after it is continued.
    signalGroup(this.child, 'SIGCONT');
    signalGroup(this.child, 'SIGTERM');
    let graceTimer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<void>((resolve) => {
      graceTimer = setTimeout(resolve, graceMs);
    });
    await Promise.race([this.exited, graceOver]);
    clearTimeout(graceTimer);

    // Whatever of the group is still there (a hung leader, a straggling child) goes now.
    signalGroup(this.child, 'SIGKILL');
    await this.exited;
    await groupGone(this.child);
  }

  /** SIGKILL at once, as a crash would. */
  async kill(): Promise<void> {
    if (!this.running) return;
    signalGroup(this.child, 'SIGKILL');
    await this.exited;
    await groupGone(this.child);
  }
}

export function spawnDaemon(
  name: string,
  command: string,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; logFile?: string } = {},
): Daemon {
  installSafetyNet();
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  liveChildren.add(child);

  // A daemon a test forgot to stop must not keep the test process alive: the exit handler
  // kills it instead.
  child.unref();
  (child.stdout as unknown as { unref?: () => void } | null)?.unref?.();
  (child.stderr as unknown as { unref?: () => void } | null)?.unref?.();
  const daemon = new Daemon(name, child, options.logFile);
  return daemon;
}

/**
 * Call probe() until it returns true. Fails early when the daemon exits, and with the
 * daemon's last output when timeoutMs passes.
 */
export async function waitUntilReady(
  daemon: Daemon,
  probe: () => Promise<boolean>,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;

  while (Date.now() < deadline) {
    if (!daemon.running) {
      throw new DaemonStartError(
        daemon.name,
        `exited before answering (code ${daemon.exitCode}, signal ${daemon.exitSignal})`,
        daemon.logTail(),
      );
    }
    try {
      if (await probe()) return;
    } catch (error) {
      lastError = error;
    }
    await sleep(100);
  }

  await daemon.kill();
  throw new DaemonStartError(
    daemon.name,
    `did not answer within ${timeoutMs} ms`,
    daemon.logTail(),
    { cause: lastError },
  );
}

/** Find the executable in PATH or in the sbin folders where Debian puts daemons. */
export function findExecutable(name: string): string | undefined {
  const folders = (process.env['PATH'] ?? '').split(':').filter(Boolean);
  for (const folder of [...folders, '/usr/sbin', '/usr/local/sbin', '/sbin']) {
    const candidate = join(folder, name);
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}

/** The executable's path, or a DaemonStartError telling how to install it. */
export function requireExecutable(name: string): string {
  const path = findExecutable(name);
  if (path) return path;
  throw new DaemonStartError(name, 'not installed: run `sh scripts/ensure-deps.sh` as root', '');
}
