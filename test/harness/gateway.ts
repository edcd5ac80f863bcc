/*
 * Starts the real Moat gateway (dist/src/runtime/main.js) as a child process for end-to-end
 * tests, on free loopback ports, with a temporary state folder and, optionally, its own
 * moat.ini. Collects every JSON line it prints so tests can assert on decision lines.
 *
 * The gateway runs exactly as `npm start` runs it; only MOAT_* variables and the config folder
 * differ. Stopping sends SIGTERM (the drain path); kill() sends SIGKILL, as a crash would.
 */

import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, LOOPBACK } from './ports';
import { GATEWAY_ENV, GATEWAY_NODE_FLAGS } from '../../src/runtime/node-flags';
import { makeTempDir, spawnDaemon, waitUntilReady, type Daemon } from './process';
import { connect } from 'node:net';

export const REPO_ROOT = resolve(__dirname, '..', '..', '..');
const MAIN = join(REPO_ROOT, 'dist', 'src', 'runtime', 'main.js');

export interface GatewayOptions {
  /** MOAT_* variables (and others) for the gateway; MOAT_LISTEN etc. are filled in. */
  env?: Record<string, string>;
  /** Text of moat.ini; when given, a temporary config folder holds it (and `files`). */
  ini?: string;
  /** Extra files for the config folder, by name. */
  files?: Record<string, string>;
  /** How long to wait for the greeting. */
  startTimeoutMs?: number;
}

export interface Gateway {
  host: string;
  port: number;
  metricsPort: number;
  stateDir: string;
  daemon: Daemon;
  /** Every JSON line printed so far, parsed. */
  lines(): Array<Record<string, unknown>>;
  /** Decision lines (those with an `event`). */
  decisions(): Array<Record<string, unknown>>;
  /** Waits until a decision line matching `predicate` appears. */
  waitForDecision(
    predicate: (line: Record<string, unknown>) => boolean, timeoutMs?: number,
  ): Promise<Record<string, unknown>>;
  /** Waits until any JSON line (a warning, say) matching `predicate` appears. */
  waitForLine(
    predicate: (line: Record<string, unknown>) => boolean, timeoutMs?: number,
  ): Promise<Record<string, unknown>>;
  /** GET /metrics: the exposition text (throws unless 200, within 5 s). */
  metrics(): Promise<string>;
  /** GET /readyz: its status and JSON body (within 5 s). */
  readyz(): Promise<{ status: number; body: Record<string, unknown> }>;
  stop(graceMs?: number): Promise<void>;
  kill(): Promise<void>;
}

/** The discard port on loopback: a DNS query sent there is refused at once. */
export const NO_DNS = '127.0.0.1:9';

export async function startGateway(options: GatewayOptions = {}): Promise<Gateway> {
  const port = await freePort();
  const metricsPort = await freePort();
  const stateDir = makeTempDir('moat-gw-state-');

  const env: Record<string, string> = {
    ...process.env as Record<string, string>,
    ...GATEWAY_ENV,
    MOAT_ROOT: REPO_ROOT,
    MOAT_LISTEN: `${LOOPBACK}:${port}`,
    MOAT_METRICS_LISTEN: `${LOOPBACK}:${metricsPort}`,
    MOAT_STATE_DIR: stateDir,
    MOAT_DOMAINS: 'example.com',
    // A test that wants scanners passes their addresses (or, for the quickstart, sets this
    // back to auto); the others must not pay for a local clamd and spamd per gateway.
    MOAT_LOCAL_SCANNERS: 'off',
    // Tests talk to loopback only: a test that wants DNS answers passes its test DNS server;
    // the others get a port where nothing listens (refused at once), never the machine's
    // resolver.
    MOAT_DNS_SERVERS: NO_DNS,
    ...options.env,
  };
  if (options.ini !== undefined) {
    const configDir = makeTempDir('moat-gw-config-');
    writeFileSync(join(configDir, 'moat.ini'), options.ini);
    for (const [name, text] of Object.entries(options.files ?? {})) {
      writeFileSync(join(configDir, name), text);
    }
    env['MOAT_CONFIG_DIR'] = configDir;
  } else {
    env['MOAT_CONFIG_DIR'] ??= makeTempDir('moat-gw-config-');
  }

  const daemon = spawnDaemon('moat', process.execPath, [...GATEWAY_NODE_FLAGS, MAIN],
    { cwd: REPO_ROOT, env });
  const parsed: Array<Record<string, unknown>> = [];
  let partial = '';
  daemon.child.stdout?.on('data', (chunk: Buffer) => {
    partial += chunk.toString('utf8');
    const complete = partial.split('\n');
    partial = complete.pop() ?? '';
    for (const line of complete) {
      if (!line.startsWith('{')) continue;
      try {
        parsed.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // Not one of ours.
      }
    }
  });

  await waitUntilReady(daemon, () => greets(port), options.startTimeoutMs ?? 20_000);

  const decisions = (): Array<Record<string, unknown>> =>
    parsed.filter((line) => typeof line['event'] === 'string');
  const waitFor = async (
    kind: string, among: () => Array<Record<string, unknown>>,
    predicate: (line: Record<string, unknown>) => boolean, timeoutMs: number,
  ): Promise<Record<string, unknown>> => {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const found = among().find(predicate);
      if (found) return found;
      await sleep(50);
    }
    throw new Error(`no matching ${kind} within ${timeoutMs} ms; saw:\n${
      among().map((line) => JSON.stringify(line)).join('\n')}`);
  };
  return {
    host: LOOPBACK, port, metricsPort, stateDir, daemon,
    lines: () => [...parsed],
    decisions,
    waitForDecision: (predicate, timeoutMs = 10_000) =>
      waitFor('decision line', decisions, predicate, timeoutMs),
    waitForLine: (predicate, timeoutMs = 10_000) =>
      waitFor('log line', () => [...parsed], predicate, timeoutMs),
    async metrics() {
      const response = await fetch(`http://${LOOPBACK}:${metricsPort}/metrics`,
        { signal: AbortSignal.timeout(5000) });
      if (response.status !== 200) throw new Error(`/metrics answered ${response.status}`);
      return response.text();
    },
    async readyz() {
      const response = await fetch(`http://${LOOPBACK}:${metricsPort}/readyz`,
        { signal: AbortSignal.timeout(5000) });
      return { status: response.status, body: await response.json() as Record<string, unknown> };
    },
    stop: (graceMs = 15_000) => daemon.stop(graceMs),
    kill: () => daemon.kill(),
  };
}

/** True once something on the port sends an SMTP greeting. */
function greets(port: number): Promise<boolean> {
  return new Promise((resolvePromise) => {
    // From 127.0.0.3, so a gateway that lists 127.0.0.1 as a PROXY host still greets the probe.
    const socket = connect({ host: LOOPBACK, port, localAddress: '127.0.0.3' });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolvePromise(ok);
    };
    socket.setTimeout(2000, () => done(false));
    socket.once('error', () => done(false));
    socket.once('data', (data: Buffer) => {
      socket.end('QUIT\r\n');
      done(data.toString('latin1').startsWith('220'));
    });
  });
}
