/*
 * A real redis-server for integration tests, on a free 127.0.0.1 port.
 *
 * Runs in the foreground with a temporary working directory and no persistence (no RDB, no
 * AOF), so each test file starts from an empty database. For outage tests the same server can
 * be frozen (pause/resume: the port stays open and nothing answers, like a hung server),
 * killed (kill: connections are reset, the port refuses) and started again on the same port
 * (start), empty again.
 *
 * Needs the Debian package redis-server (scripts/ensure-deps.sh).
 */

import { freePort, LOOPBACK, tcpExchange } from './ports';
import {
  makeTempDir,
  removeTempDir,
  requireExecutable,
  spawnDaemon,
  waitUntilReady,
  type Daemon,
} from './process';

const START_TIMEOUT_MS = 15_000;

export interface RedisServer {
  readonly host: string;
  readonly port: number;
  /** redis://127.0.0.1:<port> */
  readonly url: string;
  /** Its temporary working directory, removed by stop() or when the test process ends. */
  readonly workDir: string;
  /** SIGSTOP: connections stay open, nothing is answered. */
  pause(): void;
  /** SIGCONT after pause(). */
  resume(): void;
  /** SIGKILL, as a crash: the port refuses connections until start(). */
  kill(): Promise<void>;
  /** Start again on the same port after kill() or stop(); the data is gone. */
  start(): Promise<void>;
  /** Stop for good and remove the temporary directory. */
  stop(): Promise<void>;
}

/** True when the server at port answers PING with PONG. */
export async function redisAnswersPing(port: number, timeoutMs = 1000): Promise<boolean> {
  const reply = await tcpExchange(`${LOOPBACK}:${port}`, 'PING\r\n', {
    timeoutMs,
    complete: (bytes) => bytes.includes('\r\n'),
  });
  return reply.toString('latin1').startsWith('+PONG');
}

export async function startRedis(): Promise<RedisServer> {
  const executable = requireExecutable('redis-server');
  const workDir = makeTempDir('redis');
  const port = await freePort();
  let daemon: Daemon | undefined;

  const launch = async (): Promise<void> => {
    daemon = spawnDaemon('redis-server', executable, [
      '--port', String(port),
      '--bind', LOOPBACK,
      '--dir', workDir,
      '--save', '',
      '--appendonly', 'no',
      '--daemonize', 'no',
      '--protected-mode', 'yes',
      '--loglevel', 'warning',
    ], { cwd: workDir });
    await waitUntilReady(daemon, () => redisAnswersPing(port), START_TIMEOUT_MS);
  };

  await launch();

  return {
    host: LOOPBACK,
    port,
    url: `redis://${LOOPBACK}:${port}`,
    workDir,
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
