/*
 * A real clamd for integration tests, on a free 127.0.0.1 port, with Moat's own tiny
 * signature database (test/fixtures/clamav) instead of the ClamAV mirrors' one.
 *
 * The daemon gets its own clamd.conf in a temporary directory: TCP on loopback only, no local
 * socket, mail and archive scanning on (so signatures match inside base64 attachments and zip
 * files), AlertExceedsMax on (an over-limit file is reported as Heuristics.Limits.Exceeded
 * rather than clean), StreamMaxLength 64M. No `User` line: run as root, clamd keeps root and
 * reads only our temporary files; run as anyone else, it runs as that user.
 *
 * Also here, for tests only: clamdCommand() and clamdScan() speak the clamd protocol (PING,
 * INSTREAM) directly, so a test can check the daemon without Moat's own client.
 *
 * Needs the Debian package clamav-daemon (scripts/ensure-deps.sh). Loading even our tiny
 * database takes clamd a second or more; start() allows 60 s.
 */

import { copyFileSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

import { freePort, LOOPBACK, tcpExchange } from './ports';
import {
  DaemonStartError,
  makeTempDir,
  removeTempDir,
  requireExecutable,
  spawnDaemon,
  waitUntilReady,
  type Daemon,
} from './process';

const START_TIMEOUT_MS = 60_000;
const SIGNATURE_FILE = /\.(ndb|hdb|hsb|mdb|msb|ldb|cdb|ign2|fp|sfp)$/;
const CHUNK_BYTES = 64 * 1024;

export interface ClamdServer {
  /** 127.0.0.1:<port> */
  readonly address: string;
  readonly port: number;
  /** SIGSTOP: the port accepts, nothing is answered. */
  pause(): void;
  resume(): void;
  /** SIGKILL: the port refuses until start(). */
  kill(): Promise<void>;
  /** Start again on the same port after kill() or stop(). */
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface ClamdOptions {
  /**
   * clamd.conf settings replacing or adding to ours, e.g. `{ MaxFileSize: '1K' }`. (clamd
   * takes the FIRST line of a repeated option, so ours are merged, not appended to.)
   */
  settings?: Record<string, string>;
}

/** The repository's test/fixtures/clamav, found by walking up from this file. */
export function clamavFixtureDir(): string {
  let folder = __dirname;
  for (;;) {
    const candidate = join(folder, 'test', 'fixtures', 'clamav');
    if (existsSync(candidate)) return candidate;
    const parent = dirname(folder);
    if (parent === folder) {
      const message = `cannot find test/fixtures/clamav above ${__dirname}`;
      throw new DaemonStartError('clamd', message, '');
    }
    folder = parent;
  }
}

/** Send one clamd command (z-form, NUL terminated) and return the reply without its NUL. */
export async function clamdCommand(address: string, command: string, timeoutMs = 5000) {
  const reply = await tcpExchange(address, `z${command}\0`, {
    timeoutMs,
    complete: (bytes) => bytes.includes(0),
  });
  return reply.toString('utf8').replace(/\0$/, '');
}

/** Scan content with INSTREAM; returns clamd's reply, e.g. `stream: Moat.Test.EICAR FOUND`. */
export async function clamdScan(address: string, content: Buffer | string, timeoutMs = 30_000) {
  const bytes = typeof content === 'string' ? Buffer.from(content, 'utf8') : content;
  const parts: Buffer[] = [Buffer.from('zINSTREAM\0', 'latin1')];

  for (let start = 0; start < bytes.length; start += CHUNK_BYTES) {
    const chunk = bytes.subarray(start, start + CHUNK_BYTES);
    const length = Buffer.alloc(4);
    length.writeUInt32BE(chunk.length, 0);
    parts.push(length, chunk);
  }
  parts.push(Buffer.alloc(4));

  const reply = await tcpExchange(address, parts, {
    timeoutMs,
    complete: (received) => received.includes(0),
  });
  return reply.toString('utf8').replace(/\0$/, '');
}

function writeConfig(workDir: string, port: number, overrides: Record<string, string>): string {
  const databaseDir = join(workDir, 'db');
  const scratchDir = join(workDir, 'tmp');
  mkdirSync(databaseDir);
  mkdirSync(scratchDir);

  // Copy only signature files: clamd would complain about anything else in the folder.
  const fixtures = clamavFixtureDir();
  for (const name of readdirSync(fixtures)) {
    if (SIGNATURE_FILE.test(name)) copyFileSync(join(fixtures, name), join(databaseDir, name));
  }

  const configPath = join(workDir, 'clamd.conf');
  const settings: Record<string, string> = {
    Foreground: 'yes',
    TCPSocket: String(port),
    TCPAddr: LOOPBACK,
    DatabaseDirectory: databaseDir,
    TemporaryDirectory: scratchDir,
    LogFile: join(workDir, 'clamd.log'),
    LogTime: 'yes',
    PidFile: join(workDir, 'clamd.pid'),
    ScanMail: 'yes',
    ScanArchive: 'yes',
    AlertExceedsMax: 'yes',
    StreamMaxLength: '64M',
    MaxFileSize: '64M',
    MaxScanSize: '128M',
    MaxThreads: '4',
    ReadTimeout: '30',
    CommandReadTimeout: '10',
    Bytecode: 'no',
    SelfCheck: '3600',
    ...overrides,
  };
  const lines = Object.entries(settings).map(([name, value]) => `${name} ${value}`);
  writeFileSync(configPath, lines.join('\n') + '\n');
  return configPath;
}

export async function startClamd(options: ClamdOptions = {}): Promise<ClamdServer> {
  const executable = requireExecutable('clamd');
  const workDir = makeTempDir('clamd');
  const port = await freePort();
  const address = `${LOOPBACK}:${port}`;
  const configPath = writeConfig(workDir, port, options.settings ?? {});
  let daemon: Daemon | undefined;

  const launch = async (): Promise<void> => {
    daemon = spawnDaemon('clamd', executable, ['--config-file', configPath], {
      cwd: workDir,
      logFile: join(workDir, 'clamd.log'),
    });
    const answersPong = async () => (await clamdCommand(address, 'PING', 1000)) === 'PONG';
    await waitUntilReady(daemon, answersPong, START_TIMEOUT_MS);
  };

  await launch();

  return {
    address,
    port,
    pause: () => daemon?.pause(),
    resume: () => daemon?.resume(),
    kill: async () => {
      await daemon?.kill();
    },
    start: async () => {
      if (daemon?.running) return;
      await launch();
    },
    stop: async () => {
      await daemon?.stop();
      removeTempDir(workDir);
    },
  };
}
