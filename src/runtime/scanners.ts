/*
 * Local scanners for the quickstart: when no clamd or spamd address is configured
 * (MOAT_CLAMD, MOAT_SPAMD) and `[scanners] local = auto`, `moat start` runs clamd and spamd
 * itself, so a newcomer's gateway scans from the first message.
 *
 * What it does, per daemon:
 * - writes its configuration under `<state>/scanners/<name>/` on every start (clamd gets the
 *   signature files shipped in `clamav/` copied into `db/`);
 * - starts it on 127.0.0.1 and a port the OS picked free, in its own process group, under a
 *   small sh watchdog that stops it when Moat's process is gone, even after a SIGKILL;
 * - waits until it answers (clamd PING -> PONG, spamd PING -> PONG) before Haraka starts, and
 *   puts the address into MOAT_CLAMD / MOAT_SPAMD so every worker finds it;
 * - restarts it when it dies, after 1 s, doubling to at most 30 s while it keeps dying; one
 *   log line per exit and per restart;
 * - stops it when Moat exits (SIGTERM to its group; the exit handler is synchronous).
 *
 * Needs the Debian packages clamav-daemon and spamd (scripts/ensure-deps.sh installs them).
 * Production runs the scanners as services and sets MOAT_CLAMD / MOAT_SPAMD (docs/operations.md).
 *
 * LIMITATION: spamd runs with local tests only (`--local`: no DNS blocklists, Razor or Pyzor),
 * and clamd knows only the shipped test signatures (EICAR and a marker), not ClamAV's official
 * databases: the quickstart proves the pipeline, it does not protect a mailbox.
 * LIMITATION: when Moat runs as root, spamd drops to the user `nobody`; the state folder must
 * then be traversable by others (mode 755 on the way down), which start-up arranges for
 * `<state>/scanners` but not for the folders above it.
 */

import { spawn, type ChildProcess } from 'node:child_process';
import {
  chmodSync, copyFileSync, existsSync, mkdirSync, openSync, closeSync, readdirSync, rmSync,
  writeFileSync,
} from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from './free-port';

export type ScannerName = 'clamd' | 'spamd';
export type ScannerLog = (
  level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>,
) => void;

export interface LocalScannerOptions {
  /** `<state>/scanners/<name>` holds the daemon's config, log and scratch files. */
  stateDir: string;
  /** Signature files for clamd (the repository's `clamav/`). */
  signatureDir: string;
  /** Largest message Moat accepts: clamd's stream limit is set above it. */
  maxMessageBytes: number;
  log: ScannerLog;
  /** How long the first start may take before Moat gives up. Default 90 s. */
  startTimeoutMs?: number;
}

/** A local scanner did not start or did not answer in time. */
export class LocalScannerError extends Error {
  constructor(readonly scanner: ScannerName, message: string, options?: { cause?: unknown }) {
    super(`local ${scanner}: ${message}`, options);
    this.name = 'LocalScannerError';
  }
}

const LOOPBACK = '127.0.0.1';
const SIGNATURE_FILE = /\.(ndb|hdb|hsb|mdb|msb|ldb|cdb|ign2|fp|sfp|cvd|cld|cud)$/;
const FIRST_BACKOFF_MS = 1000;
const MAX_BACKOFF_MS = 30_000;
/** A daemon that ran this long before dying starts again after the first backoff. */
const STABLE_MS = 60_000;
const MEBIBYTE = 1024 * 1024;

interface Launch {
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  logFile: string;
}

/** One supervised daemon. */
export class LocalScanner {
  private child: ChildProcess | null = null;
  private stopping = false;
  private backoffMs = FIRST_BACKOFF_MS;
  private startedAt = 0;
  private restartTimer: NodeJS.Timeout | null = null;
  private exitWaiters: Array<() => void> = [];
  port = 0;
  restarts = 0;

  constructor(
    readonly name: ScannerName,
    private readonly options: LocalScannerOptions,
  ) {}

  get address(): string {
    return `${LOOPBACK}:${this.port}`;
  }

  get workDir(): string {
    return join(this.options.stateDir, 'scanners', this.name);
  }

  /** Process id of the daemon's watchdog (leader of its process group), while it runs. */
  get pid(): number | null {
    return this.child?.pid ?? null;
  }

  /** First start: pick a port, write the config, spawn, wait until it answers. */
  async start(): Promise<void> {
    this.port = await freePort(LOOPBACK);
    this.spawnDaemon();
    await this.waitUntilAnswering(this.options.startTimeoutMs ?? 90_000);
    this.options.log('info', `local ${this.name} answering`, {
      scanner: this.name, address: this.address, pid: this.pid,
    });
  }

  /** Synchronous SIGTERM to the daemon's group, for process exit handlers. */
  stopNow(): void {
    this.stopping = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    signalGroup(this.child, 'SIGCONT');
    signalGroup(this.child, 'SIGTERM');
  }

  /** SIGTERM, then SIGKILL after graceMs; resolves once the daemon exited. */
  async stop(graceMs = 5000): Promise<void> {
    this.stopNow();
    if (!this.child || this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => this.exitWaiters.push(resolve));
    const timer = setTimeout(() => signalGroup(this.child, 'SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  }

  /** True when the daemon answers its PING within timeoutMs. */
  async answers(timeoutMs = 2000): Promise<boolean> {
    try {
      return this.name === 'clamd'
        ? (await exchange(this.address, 'zPING\0', timeoutMs, true)) === 'PONG\0'
        : /^SPAMD\/[\d.]+ 0 PONG/.test(await exchange(this.address,
          'PING SPAMC/1.5\r\n\r\n', timeoutMs, false));
    } catch {
      return false;
    }
  }

  private spawnDaemon(): void {
    const launch = this.name === 'clamd' ? this.prepareClamd() : this.prepareSpamd();
    const [command, args] = underWatchdog(launch.command, launch.args);
    const logFd = openSync(launch.logFile, 'a', 0o644);
    let child: ChildProcess;
    try {
      child = spawn(command, args, {
        cwd: this.workDir, detached: true,
        env: { ...(launch.env ?? process.env), MOAT_SUPERVISOR_PID: String(process.pid) },
        stdio: ['ignore', logFd, logFd],
      });
    } finally {
      closeSync(logFd);
    }
    // The daemon must not keep Moat alive: the drain ends when the event loop empties, and
    // the exit handler then stops the daemon.
    child.unref();
    this.child = child;
    this.startedAt = Date.now();
    child.once('error', (error) => {
      this.options.log('error', `local ${this.name} could not be started`, {
        scanner: this.name, command: launch.command, error: error.message,
      });
    });
    child.once('exit', (code, signal) => this.onExit(child, code, signal, launch.logFile));
  }

  private onExit(
    child: ChildProcess, code: number | null, signal: NodeJS.Signals | null, logFile: string,
  ): void {
    // Whatever is left of its group (spamd's children) goes with it.
    signalGroup(child, 'SIGKILL');
    for (const resolve of this.exitWaiters.splice(0)) resolve();
    if (this.stopping || child !== this.child) return;

    // Crashed: restart after a backoff that grows while it keeps crashing.
    if (Date.now() - this.startedAt >= STABLE_MS) this.backoffMs = FIRST_BACKOFF_MS;
    const delayMs = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, MAX_BACKOFF_MS);
    this.options.log('warn', `local ${this.name} exited; restarting`, {
      scanner: this.name, code, signal, restart_in_ms: delayMs, log: logFile,
    });
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      if (this.stopping) return;
      this.restarts += 1;
      try {
        this.spawnDaemon();
      } catch (error) {
        this.options.log('error', `local ${this.name} restart failed`, {
          scanner: this.name, error: error instanceof Error ? error.message : String(error),
        });
        return;
      }
      void this.waitUntilAnswering(this.options.startTimeoutMs ?? 90_000).then(() => {
        this.options.log('info', `local ${this.name} answering again`, {
          scanner: this.name, address: this.address, pid: this.pid, restarts: this.restarts,
        });
      }, () => undefined);
    }, delayMs);
    this.restartTimer.unref();
  }

  private async waitUntilAnswering(timeoutMs: number): Promise<void> {
    const child = this.child;
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!child || child.exitCode !== null || child.signalCode !== null || this.child !== child) {
        throw new LocalScannerError(this.name, `exited before answering (code ${
          child?.exitCode}, signal ${child?.signalCode}); see ${this.workDir}/${this.name}.log`);
      }
      if (await this.answers(1000)) return;
      await sleep(200);
    }
    signalGroup(child, 'SIGKILL');
    throw new LocalScannerError(this.name, `did not answer within ${timeoutMs} ms; see `
      + `${this.workDir}/${this.name}.log`);
  }

  private prepareClamd(): Launch {
    const executable = requireExecutable('clamd');
    const dbDir = join(this.workDir, 'db');
    const scratch = join(this.workDir, 'tmp');
    rmSync(dbDir, { recursive: true, force: true });
    mkdirSync(dbDir, { recursive: true });
    mkdirSync(scratch, { recursive: true });

    // Only signature files: clamd refuses a database folder with anything else in it.
    const signatures = existsSync(this.options.signatureDir)
      ? readdirSync(this.options.signatureDir).filter((name) => SIGNATURE_FILE.test(name)) : [];
    if (signatures.length === 0) {
      throw new LocalScannerError('clamd', `no signature files in ${this.options.signatureDir}`);
    }
    for (const name of signatures) {
      copyFileSync(join(this.options.signatureDir, name), join(dbDir, name));
    }

    // The stream limit stays above Moat's message size, so no accepted message is too big.
    const streamMiB = Math.max(64, Math.ceil(this.options.maxMessageBytes / MEBIBYTE) + 1);
    const logFile = join(this.workDir, 'clamd.log');
    const settings: Array<[string, string]> = [
      ['Foreground', 'yes'], ['TCPAddr', LOOPBACK], ['TCPSocket', String(this.port)],
      ['DatabaseDirectory', dbDir], ['TemporaryDirectory', scratch],
      ['LogFile', logFile], ['LogTime', 'yes'], ['PidFile', join(this.workDir, 'clamd.pid')],
      ['ScanMail', 'yes'], ['ScanArchive', 'yes'], ['AlertExceedsMax', 'yes'],
      ['StreamMaxLength', `${streamMiB}M`], ['MaxFileSize', `${streamMiB}M`],
      ['MaxScanSize', `${streamMiB * 2}M`], ['MaxThreads', '4'], ['ReadTimeout', '30'],
      ['CommandReadTimeout', '10'], ['Bytecode', 'no'], ['SelfCheck', '3600'],
    ];
    const configFile = join(this.workDir, 'clamd.conf');
    writeFileSync(configFile, `# Written by Moat at every start; edits are lost.\n${
      settings.map(([key, value]) => `${key} ${value}`).join('\n')}\n`);
    return { command: executable, args: ['--config-file', configFile], logFile };
  }

  private prepareSpamd(): Launch {
    const executable = requireExecutable('spamd');
    // spamd started as root drops to `nobody`, who must reach its helper home.
    chmodSync(this.workDir, 0o755);
    return {
      command: executable,
      args: [
        '--local', '--nouser-config', `--listen=${this.address}`, `--allowed-ips=${LOOPBACK}`,
        `--pidfile=${join(this.workDir, 'spamd.pid')}`, `--helper-home-dir=${this.workDir}`,
        '--syslog=stderr', '--max-children=2', '--min-children=1', '--min-spare=1',
        '--max-spare=1',
      ],
      env: { ...process.env, HOME: this.workDir },
      logFile: join(this.workDir, 'spamd.log'),
    };
  }
}

/** The local scanners of one gateway: start together, stop together. */
export class ScannerSupervisor {
  readonly scanners: LocalScanner[];

  constructor(names: ScannerName[], options: LocalScannerOptions) {
    const root = join(options.stateDir, 'scanners');
    mkdirSync(root, { recursive: true });
    chmodSync(root, 0o755);
    this.scanners = names.map((name) => {
      mkdirSync(join(root, name), { recursive: true });
      return new LocalScanner(name, options);
    });
  }

  /** Starts every scanner; on any failure stops the others and throws. */
  async start(): Promise<Record<ScannerName, string | undefined>> {
    const started = await Promise.allSettled(this.scanners.map((scanner) => scanner.start()));
    const failed = started.find((result) => result.status === 'rejected');
    if (failed) {
      await this.stop();
      throw (failed as PromiseRejectedResult).reason;
    }
    const addresses: Record<ScannerName, string | undefined> = {
      clamd: undefined, spamd: undefined,
    };
    for (const scanner of this.scanners) addresses[scanner.name] = scanner.address;
    return addresses;
  }

  stopNow(): void {
    for (const scanner of this.scanners) scanner.stopNow();
  }

  async stop(graceMs = 5000): Promise<void> {
    await Promise.all(this.scanners.map((scanner) => scanner.stop(graceMs)));
  }
}

/** Which scanners Moat must run itself: those without an address, unless switched off. */
export function localScannersNeeded(
  clamd: string[], spamd: string[], mode: 'auto' | 'off',
): ScannerName[] {
  if (mode === 'off') return [];
  const needed: ScannerName[] = [];
  if (clamd.length === 0) needed.push('clamd');
  if (spamd.length === 0) needed.push('spamd');
  return needed;
}

function signalGroup(child: ChildProcess | null, signal: NodeJS.Signals): void {
  if (!child?.pid) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // Already gone.
  }
}

/*
 * The daemon runs under a small sh watchdog in the same process group: it passes SIGTERM on,
 * exits with the daemon's status, and stops the daemon once Moat's process is gone, even
 * after a SIGKILL that left Moat no chance to clean up. (The kernel's parent-death signal is
 * not enough: spamd survives it.)
 */
const WATCHDOG = [
  '"$@" & daemon=$!',
  'trap \'kill -TERM "$daemon" 2>/dev/null\' TERM INT',
  'while kill -0 "$MOAT_SUPERVISOR_PID" 2>/dev/null && kill -0 "$daemon" 2>/dev/null; do',
  '  sleep 1 & wait $!',
  'done',
  'kill -TERM "$daemon" 2>/dev/null',
  'wait "$daemon"',
].join('\n');

function underWatchdog(command: string, args: string[]): [string, string[]] {
  return ['/bin/sh', ['-c', WATCHDOG, 'moat-scanner-watchdog', command, ...args]];
}

function findExecutable(name: string): string | undefined {
  const folders = (process.env['PATH'] ?? '').split(':').filter(Boolean);
  for (const folder of [...folders, '/usr/sbin', '/usr/local/sbin', '/sbin', '/usr/bin']) {
    const candidate = join(folder, name);
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}

function requireExecutable(name: 'clamd' | 'spamd'): string {
  const found = findExecutable(name);
  if (found) return found;
  const pkg = name === 'clamd' ? 'clamav-daemon' : 'spamd';
  throw new LocalScannerError(name, `not installed: install the Debian package ${pkg} `
    + '(sh scripts/ensure-deps.sh as root), '
    + `or set MOAT_${name.toUpperCase()} to a running ${name}`);
}

/** One request, the reply up to a NUL (clamd) or the end of the connection (spamd). */
function exchange(address: string, request: string, timeoutMs: number, untilNul: boolean) {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')),
    Number(address.slice(address.lastIndexOf(':') + 1))];
  return new Promise<string>((resolve, reject) => {
    let reply = '';
    const socket = connect({ host, port });
    const timer = setTimeout(() => finish(new Error('timeout')), timeoutMs);
    const finish = (error?: Error): void => {
      clearTimeout(timer);
      socket.destroy();
      if (error) reject(error);
      else resolve(reply);
    };
    socket.once('connect', () => {
      socket.write(request);
      if (!untilNul) socket.end();
    });
    socket.on('data', (chunk: Buffer) => {
      reply += chunk.toString('latin1');
      if (untilNul && reply.includes('\0')) finish();
    });
    socket.once('end', () => finish());
    socket.once('error', (error) => finish(error));
  });
}
