/*
 * A real spamd (SpamAssassin 4) for integration tests, on a free 127.0.0.1 port.
 *
 * Runs in the foreground with local tests only (-L: no DNS blocklists, no Razor/Pyzor, which
 * could only add latency offline), no per-user configuration (-x), connections allowed from
 * 127.0.0.1 only, and a temporary helper home and pid file. It uses the rules the Debian
 * package ships (/usr/share/spamassassin, plus compiled rules under /var/lib/spamassassin
 * when sa-compile has run); no sa-update state is needed. Start-up takes about two seconds
 * here; start() allows 60 s for slow machines.
 *
 * Also here, for tests only: spamdCheck() sends one SYMBOLS SPAMC/1.5 request and parses
 * the verdict, so a test can check the daemon without Moat's own client.
 *
 * When run as root spamd drops to the user `nobody`, so the temporary directory is made
 * world-readable. Needs the Debian packages spamd and spamassassin (scripts/ensure-deps.sh).
 */

import { chmodSync } from 'node:fs';
import { join } from 'node:path';

import { freePort, LOOPBACK, tcpExchange } from './ports';
import {
  makeTempDir,
  removeTempDir,
  requireExecutable,
  spawnDaemon,
  waitUntilReady,
  type Daemon,
} from './process';

const START_TIMEOUT_MS = 60_000;

export interface SpamdServer {
  /** 127.0.0.1:<port> */
  readonly address: string;
  readonly port: number;
  /** SIGSTOP to the parent and its children: the port accepts, nothing is answered. */
  pause(): void;
  resume(): void;
  /** SIGKILL: the port refuses until start(). */
  kill(): Promise<void>;
  /** Start again on the same port after kill() or stop(). */
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** One parsed spamd reply. */
export interface SpamdReply {
  /** First line, e.g. `SPAMD/1.1 0 EX_OK`. */
  statusLine: string;
  headers: Map<string, string>;
  body: string;
}

export interface SpamdVerdict {
  isSpam: boolean;
  score: number;
  threshold: number;
  symbols: string[];
}

/** Send one raw SPAMC/1.5 request and parse the reply. */
export async function spamcRequest(
  address: string,
  command: string,
  message = '',
  timeoutMs = 30_000,
): Promise<SpamdReply> {
  const body = Buffer.from(message, 'utf8');
  const head = message
    ? `${command} SPAMC/1.5\r\nContent-length: ${body.length}\r\n\r\n`
    : `${command} SPAMC/1.5\r\n\r\n`;
  // Half-close after sending, as spamc does: spamd 4.0.1 reads a message that does not end in
  // a newline until end of input, whatever Content-length says, and would otherwise hang.
  const reply = await tcpExchange(address, [head, body], { timeoutMs, endAfterWrite: true });
  const raw = reply.toString('utf8');

  const headEnd = raw.indexOf('\r\n\r\n');
  const headText = headEnd === -1 ? raw : raw.slice(0, headEnd);
  const [statusLine = '', ...headerLines] = headText.split('\r\n');
  const headers = new Map<string, string>();
  for (const line of headerLines) {
    const colon = line.indexOf(':');
    if (colon > 0) headers.set(line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim());
  }
  return { statusLine, headers, body: headEnd === -1 ? '' : raw.slice(headEnd + 4) };
}

/** SYMBOLS request: the verdict, score and rule names spamd gives message. */
export async function spamdCheck(address: string, message: string): Promise<SpamdVerdict> {
  const reply = await spamcRequest(address, 'SYMBOLS', message);
  const spam = /^(True|False|Yes|No)\s*;\s*(-?[\d.]+)\s*\/\s*(-?[\d.]+)/i.exec(
    reply.headers.get('spam') ?? '',
  );
  if (!spam) throw new Error(`spamd ${address}: unexpected reply ${reply.statusLine}`);
  return {
    isSpam: /^(true|yes)$/i.test(spam[1] as string),
    score: Number(spam[2]),
    threshold: Number(spam[3]),
    symbols: reply.body.trim().split(',').filter(Boolean),
  };
}

async function answersPong(address: string): Promise<boolean> {
  const reply = await spamcRequest(address, 'PING', '', 1000);
  return /^SPAMD\/[\d.]+ 0 PONG/.test(reply.statusLine);
}

export async function startSpamd(): Promise<SpamdServer> {
  const executable = requireExecutable('spamd');
  const workDir = makeTempDir('spamd');
  chmodSync(workDir, 0o755);
  const port = await freePort();
  const address = `${LOOPBACK}:${port}`;
  let daemon: Daemon | undefined;

  const launch = async (): Promise<void> => {
    daemon = spawnDaemon('spamd', executable, [
      '--local',
      '--nouser-config',
      `--listen=${address}`,
      `--allowed-ips=${LOOPBACK}`,
      `--pidfile=${join(workDir, 'spamd.pid')}`,
      `--helper-home-dir=${workDir}`,
      '--syslog=stderr',
      '--max-children=2',
      '--min-children=1',
      '--min-spare=1',
      '--max-spare=1',
    ], { cwd: workDir, env: { ...process.env, HOME: workDir } });
    await waitUntilReady(daemon, () => answersPong(address), START_TIMEOUT_MS);
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
