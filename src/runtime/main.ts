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
 */

import cluster from 'node:cluster';
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { ConfigError } from '../config/errors';
import { loadConfig } from '../config/load';
import type { MoatConfig } from '../config/types';
import { formatHostPort, RunAsUserError, writeHarakaHome } from './haraka-home';

export const PROJECT_ROOT = resolve(__dirname, '..', '..', '..');
const DIST_DIR = resolve(__dirname, '..', '..');

export function startGateway(): void {
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
  installSignalMapping();
  runHaraka();
}

function announce(config: MoatConfig): void {
  const say = (level: string, msg: string, fields: Record<string, unknown> = {}): void => {
    process.stdout.write(`${JSON.stringify({
      ts: new Date().toISOString(), level, component: 'start', msg, ...fields,
    })}\n`);
  };
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

if (require.main === module) startGateway();
