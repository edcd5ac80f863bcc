/*
 * The benchmark's internal mail server: Postfix's smtp-sink, a real SMTP server in C that
 * accepts every message and keeps nothing, on a free loopback port.
 *
 * Why not the test harness's sink (test/harness/downstream.ts, built on the smtp-server
 * package): smtp-server holds every greeting back 100 ms to catch early talkers, with no way
 * to turn that off, so one message per connection could never pass 10 per second per
 * connection and the "floor" would measure that timer. smtp-sink greets at once; it comes with
 * smtp-source in the Debian package postfix (no Postfix daemon is configured or started).
 *
 * It runs as the harness's daemons do (test/harness/process.ts: its own process group, killed
 * with the benchmark). `-c` makes it print running counters (`sess=N quit=N mesg=N`), from
 * which counts() reads the messages accepted so far. It offers no STARTTLS, so the leg from
 * Moat to it is plain TCP (bench/README.md).
 */

import { freePort, LOOPBACK } from '../test/harness/ports';
import {
  requireExecutable, spawnDaemon, waitUntilReady, type Daemon,
} from '../test/harness/process';
import { connect } from 'node:net';

export interface Sink {
  address: string;
  pid: number;
  /** Messages accepted since start. */
  accepted(): number;
  stop(): Promise<void>;
}

export async function startSink(): Promise<Sink> {
  const executable = requireExecutable('smtp-sink');
  const port = await freePort();
  const address = `${LOOPBACK}:${port}`;
  // As root it must drop to another user after binding.
  const asUser = process.getuid?.() === 0 ? ['-u', 'nobody'] : [];
  const daemon: Daemon = spawnDaemon('smtp-sink', executable,
    ['-c', ...asUser, '-h', 'sink.bench.test', address, '1024']);

  let accepted = 0;
  let partial = '';
  daemon.child.stdout?.on('data', (chunk: Buffer) => {
    const text = partial + chunk.toString('latin1');
    const updates = text.split('\r');
    partial = updates.pop() ?? '';
    const last = updates.at(-1);
    const match = last ? /mesg=(\d+)/.exec(last) : null;
    if (match) accepted = Number(match[1]);
  });

  await waitUntilReady(daemon, () => greets(port), 10_000);
  return {
    address,
    pid: daemon.child.pid as number,
    accepted: () => accepted,
    stop: () => daemon.stop(),
  };
}

function greets(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: LOOPBACK, port });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('error', () => done(false));
    socket.once('data', (data: Buffer) => done(data.toString('latin1').startsWith('220')));
  });
}
