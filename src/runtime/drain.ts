/*
 * Draining on SIGTERM or SIGINT.
 *
 * Haraka stops its listeners; this step then (1) answers 421 4.3.2 and closes every connection
 * that is idle between transactions, (2) lets transactions in flight finish (a client that then
 * starts another transaction gets 421 at MAIL), checking again every second, and (3) when
 * smtp.drain_timeout has passed, answers 421 to whoever is left and closes them. Once the last
 * connection has gone, the downstream pool and the metrics endpoint close and the process ends
 * by itself; Haraka's force timer (drain_timeout + 5 s) is the backstop.
 */

import { logDecision, log } from '../observability/decision-log';
import type { Runtime } from './context';
import type { HarakaConnection } from './haraka-types';
import { clientOf } from './state';
import { reasonReply } from '../verdict/reasons';

const STATE_CMD = 1;
/** Haraka waits for a hook (e.g. delivery in progress): never interrupt that with a 421. */
const STATE_PAUSE_DATA = 6;
const STATE_DISCONNECTING = 99;
const SWEEP_INTERVAL_MS = 1000;

export function startDrain(runtime: Runtime, closeResources: () => Promise<void>): void {
  if (runtime.draining) return;
  runtime.draining = true;
  runtime.idle.stop();
  runtime.busy.stop();
  runtime.highWater.stop();
  const started = Date.now();
  log('notice', 'drain', 'draining: no new connections; transactions in flight may finish', {
    open_connections: runtime.connections.open.size,
    drain_timeout_ms: runtime.config.smtp.drainTimeoutMs,
  });

  const sweep = (): void => {
    const forced = Date.now() - started >= runtime.config.smtp.drainTimeoutMs;
    for (const connection of runtime.connections.open) {
      const idle = connection.state === STATE_CMD && !connection.transaction;
      const delivering = connection.state === STATE_PAUSE_DATA;
      if (idle || (forced && !delivering)) closeWith421(connection, forced);
    }
    if (runtime.connections.open.size === 0 || forced) {
      clearInterval(timer);
      finish();
    }
  };

  let finished = false;
  const finish = (): void => {
    if (finished) return;
    finished = true;
    Promise.allSettled([runtime.delivery.close(), closeResources()]).then(() => {
      log('notice', 'drain', 'drained', { seconds: Math.round((Date.now() - started) / 1000) });
    }, () => undefined);
  };

  const timer = setInterval(sweep, SWEEP_INTERVAL_MS);
  sweep();
}

function closeWith421(connection: HarakaConnection, forced: boolean): void {
  if (connection.state >= STATE_DISCONNECTING) return;
  const reply = reasonReply('draining');
  logDecision({
    event: 'shutdown', action: 'tempfail', reason: 'draining',
    message_id: connection.transaction?.uuid ?? connection.uuid, client: clientOf(connection),
    evidence: { forced, in_transaction: connection.transaction !== null },
  });
  connection.respond(reply.code, `${reply.enhanced} ${reply.text}`, () => connection.disconnect());
}
