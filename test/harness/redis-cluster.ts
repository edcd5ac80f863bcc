/*
 * A real three-master Redis Cluster for integration tests, on free 127.0.0.1 ports.
 *
 * Three redis-server processes with cluster mode on, each with its cluster bus on a port of its
 * own (--cluster-port: the usual port + 10000 could fall outside the port range), no
 * persistence, joined with `redis-cli --cluster create ... --cluster-replicas 0`. Ready once
 * every node reports cluster_state:ok, so the 16384 slots are served.
 *
 * Needs the Debian packages redis-server and redis-tools (redis-cli).
 */

import { execFile } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { freePort, LOOPBACK, tcpExchange } from './ports';
import {
  DaemonStartError, makeTempDir, removeTempDir, requireExecutable, spawnDaemon, waitUntilReady,
  type Daemon,
} from './process';
import { redisAnswersPing } from './redis';

const START_TIMEOUT_MS = 20_000;
const MASTERS = 3;

export interface RedisClusterNode {
  host: string;
  port: number;
}

export interface RedisCluster {
  nodes: RedisClusterNode[];
  /** redis://127.0.0.1:<port of the first node>: a seed for createCluster. */
  url: string;
  stop(): Promise<void>;
}

/** The `cluster_state` a node reports: ok once every slot is served. */
export async function clusterState(port: number): Promise<string> {
  const command = '*2\r\n$7\r\nCLUSTER\r\n$4\r\nINFO\r\n';
  const reply = await tcpExchange(`${LOOPBACK}:${port}`, command, {
    timeoutMs: 1000, complete: (bytes) => bytes.includes('cluster_stats_messages'),
  });
  return /cluster_state:(\w+)/.exec(reply.toString('latin1'))?.[1] ?? 'unknown';
}

export async function startRedisCluster(): Promise<RedisCluster> {
  const server = requireExecutable('redis-server');
  const cli = requireExecutable('redis-cli');
  const workDir = makeTempDir('redis-cluster');
  const daemons: Daemon[] = [];
  const nodes: RedisClusterNode[] = [];

  try {
    // Three masters, each in its own folder (each writes its own nodes.conf).
    for (let index = 0; index < MASTERS; index++) {
      const port = await freePort();
      const busPort = await freePort();
      const dir = join(workDir, String(port));
      mkdirSync(dir);
      const daemon = spawnDaemon(`redis-cluster-${index}`, server, [
        '--port', String(port), '--bind', LOOPBACK, '--dir', dir,
        '--cluster-enabled', 'yes', '--cluster-port', String(busPort),
        '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '3000',
        '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--protected-mode', 'yes',
        '--loglevel', 'warning',
      ], { cwd: dir });
      daemons.push(daemon);
      await waitUntilReady(daemon, () => redisAnswersPing(port), START_TIMEOUT_MS);
      nodes.push({ host: LOOPBACK, port });
    }

    // Join them: every slot assigned, no replicas.
    await promisify(execFile)(cli, [
      '--cluster', 'create', ...nodes.map((node) => `${node.host}:${node.port}`),
      '--cluster-replicas', '0', '--cluster-yes',
    ], { timeout: START_TIMEOUT_MS });
    await waitForClusterOk(nodes);
  } catch (error) {
    for (const daemon of daemons) await daemon.kill();
    removeTempDir(workDir);
    throw error;
  }

  return {
    nodes,
    url: `redis://${LOOPBACK}:${nodes[0]?.port}`,
    stop: async () => {
      for (const daemon of daemons) await daemon.stop();
      removeTempDir(workDir);
    },
  };
}

async function waitForClusterOk(nodes: RedisClusterNode[]): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  let states: string[] = [];
  while (Date.now() < deadline) {
    states = await Promise.all(nodes.map((node) => clusterState(node.port).catch(() => 'down')));
    if (states.every((state) => state === 'ok')) return;
    await sleep(200);
  }
  throw new DaemonStartError('redis-cluster', `cluster_state not ok: ${states.join(', ')}`, '');
}
