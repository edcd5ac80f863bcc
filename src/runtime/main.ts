/*
 * `moat start`: validates the configuration, prepares Haraka's home and runs Haraka in this
 * process.
 *
 * Order matters: nothing listens until the whole configuration has been read and checked, so
 * a bad value stops start-up with one line (file or variable, key, value, what was expected)
 * and exit code 2, and nothing is half-applied. Haraka then loads Moat's plugins, which read
 * the same configuration again in every cluster worker (cheap, and the same inputs give the
 * same result).
 *
 * Signals: Haraka drains on SIGINT (graceful_shutdown); SIGTERM is mapped to the same path,
 * since Haraka only listens for SIGTERM when it is PID 1. A second signal exits at once.
 *
 * Scanners: when clamd or spamd has no address (MOAT_CLAMD, MOAT_SPAMD) and `[scanners] local`
 * is `auto`, the master starts them locally (./scanners.ts) and waits until they answer before
 * Haraka loads the plugins; their addresses go into MOAT_CLAMD / MOAT_SPAMD, which the plugins
 * and cluster workers read. They are stopped when this process exits, however it exits.
 */

import cluster from 'node:cluster';
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { ConfigError } from '../config/errors';
import { loadConfig } from '../config/load';
import type { MoatConfig } from '../config/types';
import { formatHostPort, RunAsUserError, writeHarakaHome } from './haraka-home';
import {
  localScannersNeeded, ScannerSupervisor, type ScannerLog, type ScannerName,
} from './scanners';

export const PROJECT_ROOT = resolve(__dirname, '..', '..', '..');
const DIST_DIR = resolve(__dirname, '..', '..');

export async function startGateway(): Promise<void> {
  // A cluster worker re-runs this file: the master has already validated and written the home.
  if (cluster.isWorker && process.env['HARAKA']) {
    runHaraka();
    return;
  }

  // Read and validate everything before anything listens.
  let config: MoatConfig;
  try {
    config = loadConfig({
      root: process.env['MOAT_ROOT'] ?? PROJECT_ROOT,
      configDir: process.env['MOAT_CONFIG_DIR'],
    });
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`moat: configuration error: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }

  // Prepare the state folder and Haraka's home from the validated configuration.
  mkdirSync(config.stateDir, { recursive: true });
  let home: string;
  try {
    home = writeHarakaHome(config, DIST_DIR).home;
  } catch (error) {
    if (error instanceof RunAsUserError) {
      process.stderr.write(`moat: configuration error: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  process.env['HARAKA'] = home;
  process.env['MOAT_ROOT'] = process.env['MOAT_ROOT'] ?? PROJECT_ROOT;

  announce(config);
  await startLocalScanners(config);
  installSignalMapping();
  workersAcceptThemselves();
  runHaraka();
}

/*
 * With smtp.workers > 0, each worker accepts its connections from the shared socket itself
 * (cluster.SCHED_NONE) instead of Node's default of the master accepting every connection and
 * passing it to a worker over IPC. That hand-over cost the master CPU for every connection, on
 * the cores the workers need: on two cores with two workers, relay throughput went from
 * 803 to 911 messages a second (bench/README.md). The kernel's spread is less even than the
 * master's turns, but a busy worker accepts less often, so an idle one takes the next
 * connection. NODE_CLUSTER_SCHED_POLICY=rr in the environment keeps Node's default.
 */
function workersAcceptThemselves(): void {
  if (process.env['NODE_CLUSTER_SCHED_POLICY']) return;
  cluster.schedulingPolicy = cluster.SCHED_NONE;
}

const say = (level: string, msg: string, fields: Record<string, unknown> = {}): void => {
  process.stdout.write(`${JSON.stringify({
    ts: new Date().toISOString(), level, component: 'start', msg, ...fields,
  })}\n`);
};

/** Runs clamd/spamd locally where no address is configured; exits 1 if they cannot start. */
async function startLocalScanners(config: MoatConfig): Promise<void> {
  const needed = localScannersNeeded(config.clamd, config.spamd, config.quarantine.localScanners);
  const configured: Array<[ScannerName, string[]]> = [
    ['clamd', config.clamd], ['spamd', config.spamd],
  ];
  for (const [name, addresses] of configured) {
    if (addresses.length > 0) say('info', `${name} configured`, { scanner: name, addresses });
    else if (!needed.includes(name)) {
      say('warn', `*** NO ${name.toUpperCase()}: no address set and [scanners] local = off ***`);
    }
  }
  if (needed.length === 0) return;

  say('info', `starting local ${needed.join(' and ')} (no address configured; production sets `
    + `${needed.map((name) => `MOAT_${name.toUpperCase()}`).join(' and ')})`, {
    scanners: needed, folder: `${config.stateDir}/scanners`,
  });
  const scannerLog: ScannerLog = (level, msg, fields = {}) => {
    process.stdout.write(`${JSON.stringify({
      ts: new Date().toISOString(), level, component: 'scanners', msg, ...fields,
    })}\n`);
  };
  const supervisor = new ScannerSupervisor(needed, {
    stateDir: config.stateDir,
    signatureDir: resolve(PROJECT_ROOT, 'clamav'),
    maxMessageBytes: config.smtp.maxMessageBytes,
    log: scannerLog,
  });

  // Stopped on every way out: normal exit, a signal during start-up.
  process.on('exit', () => supervisor.stopNow());
  const abort = (signal: NodeJS.Signals): void => {
    supervisor.stopNow();
    process.kill(process.pid, signal);
  };
  const onSigint = (): void => abort('SIGINT');
  const onSigterm = (): void => abort('SIGTERM');
  process.once('SIGINT', onSigint);
  process.once('SIGTERM', onSigterm);
  try {
    const addresses = await supervisor.start();
    if (addresses.clamd) process.env['MOAT_CLAMD'] = addresses.clamd;
    if (addresses.spamd) process.env['MOAT_SPAMD'] = addresses.spamd;
    for (const scanner of supervisor.scanners) {
      say('info', `local ${scanner.name} ready`, {
        scanner: scanner.name, address: scanner.address, pid: scanner.pid,
        log: `${scanner.workDir}/${scanner.name}.log`,
      });
    }
  } catch (error) {
    process.stderr.write(`moat: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  } finally {
    process.removeListener('SIGINT', onSigint);
    process.removeListener('SIGTERM', onSigterm);
  }
}

function announce(config: MoatConfig): void {
  say('info', 'Moat starting', {
    listen: config.smtp.listen.map(formatHostPort),
    domains: [...config.domains.keys()],
    workers: config.smtp.workers,
    node: process.version,
  });
  if (config.downstream.address === null) {
    say('warn', '*** NO DOWNSTREAM SERVER CONFIGURED: accepted mail is written to the local '
      + `Maildir ${config.stateDir}/maildir and NOT forwarded. Set MOAT_DOWNSTREAM=host:port `
      + 'to forward to your mailbox server. ***');
  } else {
    say('info', 'forwarding to the internal server', {
      downstream: formatHostPort(config.downstream.address), tls: config.downstream.tls,
    });
  }
  if (!config.smtp.tlsCert) {
    say('warn', '*** NO TLS CERTIFICATE: STARTTLS is not offered, so mail arrives in clear text. '
      + 'Set MOAT_TLS_CERT and MOAT_TLS_KEY. ***');
  }
}

function installSignalMapping(): void {
  let stopping = false;
  process.on('SIGTERM', () => {
    if (stopping) process.exit(1);
    stopping = true;
    process.kill(process.pid, 'SIGINT');
  });
}

function runHaraka(): void {
  // Haraka starts itself when its entry module is loaded.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  require('Haraka/haraka.js');
}

if (require.main === module) void startGateway();
