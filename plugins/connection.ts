/*
 * Haraka plugin `moat-connection`: the first step a client meets.
 *
 * Decides: refuse a connection with 421 when the client address already holds too many
 * connections, when the process is full, or when the gateway is draining; refuse with 554 a
 * client that talked before the greeting. The client address is the one the PROXY protocol
 * presented (Haraka applies PROXY v1 itself; proxy-v2.ts translates v2 to v1 for it).
 *
 * Also owns the process-wide parts: the /metrics, /healthz and /readyz endpoint (started in the
 * master), and draining on shutdown.
 *
 * LIMITATION: the per-address connection count is kept per process; with cluster workers each
 * worker counts its own connections. Shared limits come with the Redis rate limiter.
 */

import { setTimeout as sleep } from 'node:timers/promises';
import { installProxyV2Translation } from '../src/connection/proxy-v2';
import { logDecision, log } from '../src/observability/decision-log';
import { startMetricsServer, type MetricsServer } from '../src/observability/http';
import { setDependencyProbes } from '../src/observability/metrics-health';
import {
  connectionClosed, connectionOpened, countConnection, countMemoryCollection,
} from '../src/observability/metrics';
import { getRuntime, injectFault } from '../src/runtime/context';
import { CONTINUE, hook, refuse } from '../src/runtime/hook';
import type { HarakaConnection } from '../src/runtime/haraka-types';
import { clientOf, connectionState } from '../src/runtime/state';
import { REASONS } from '../src/verdict/reasons';
import { dependencyProbes, readiness } from '../src/runtime/readiness';
import { startDrain } from '../src/runtime/drain';
import { closeRateLimits } from '../src/ratelimit/service';
import { collectStartUpGarbage } from '../src/runtime/node-flags';

interface HarakaPlugin {
  register_hook(hook: string, method: string): void;
}

interface HarakaServer {
  listeners?: Array<{ on: unknown; listeners: unknown }>;
}

let metricsServer: MetricsServer | null = null;

export function register(this: HarakaPlugin): void {
  getRuntime();
}

export const hook_init_master = hook('init_master', async (server: HarakaServer) => {
  const runtime = getRuntime();
  installProxyV2Translation(server.listeners ?? [], runtime.config.smtp.proxyHosts);
  if (runtime.config.metricsListen && !metricsServer) {
    const { host, port } = runtime.config.metricsListen;
    metricsServer = await startMetricsServer({ host, port, readiness: () => readiness(runtime) });
    setDependencyProbes(dependencyProbes(runtime));
    log('info', 'metrics', 'metrics endpoint listening', { host, port });
  }
  collectStartUpGarbage(() => countMemoryCollection('startup'));
  return CONTINUE;
});

export const hook_init_child = hook('init_child', async (server: HarakaServer) => {
  const runtime = getRuntime();
  installProxyV2Translation(server.listeners ?? [], runtime.config.smtp.proxyHosts);
  collectStartUpGarbage(() => countMemoryCollection('startup'));
  return CONTINUE;
});

export const hook_connect = hook('connect', async (connection: HarakaConnection) => {
  const runtime = getRuntime();
  const state = connectionState(connection);
  injectFault('hook:connect');

  // Refuse while draining: another node (or this one after restart) will take the mail.
  if (runtime.draining) return refuseConnection(connection, 'draining', 'refused_draining');

  // Limits: the whole process, then the client address.
  if (runtime.connections.open.size >= runtime.config.smtp.maxConnections) {
    return refuseConnection(connection, 'too-many-connections', 'refused_limit');
  }
  const count = runtime.connections.add(connection, state.clientIp);
  state.registered = true;
  connectionOpened();
  if (count > runtime.config.smtp.maxConnectionsPerIp) {
    return refuseConnection(connection, 'too-many-connections-from-ip', 'refused_limit', {
      connections_from_ip: count, limit: runtime.config.smtp.maxConnectionsPerIp,
    });
  }

  // Hold the greeting back: whatever arrives meanwhile marks the client an early talker.
  if (runtime.config.smtp.greetingDelayMs > 0) await sleep(runtime.config.smtp.greetingDelayMs);
  if (connection.early_talker) {
    logDecision({
      event: 'connection', phase: 'connect', action: 'reject', reason: 'early-talker',
      message_id: connection.uuid, client: clientOf(connection),
      evidence: { greeting_delay_ms: runtime.config.smtp.greetingDelayMs },
    });
    countConnection('refused_early_talker');
    return refuse('early-talker', undefined, true);
  }

  // Counted `accepted` by moat-verdict, once every connect-time check has let it through.
  return CONTINUE;
});

export const hook_disconnect = hook('disconnect', async (connection: HarakaConnection) => {
  const state = connectionState(connection);
  if (state.registered) {
    state.registered = false;
    getRuntime().connections.remove(connection, state.clientIp);
    connectionClosed();
  }
  return CONTINUE;
});

/** Haraka's own size check is off (Moat answers 552 itself), so SIZE is advertised here. */
export const hook_capabilities = hook('capabilities',
  async (connection: HarakaConnection & { capabilities?: string[] }) => {
    const size = `SIZE ${getRuntime().config.smtp.maxMessageBytes}`;
    const capabilities = connection.capabilities ?? [];
    const index = capabilities.findIndex((entry) => /^SIZE\b/i.test(entry));
    if (index >= 0) capabilities[index] = size;
    else capabilities.push(size);
    return CONTINUE;
  });

/** Talking before the greeting is how spam cannons and smuggling attempts behave. */
export const hook_helo = hook('helo', async (connection: HarakaConnection) =>
  refuseEarlyTalker(connection));
export const hook_ehlo = hook('ehlo', async (connection: HarakaConnection) =>
  refuseEarlyTalker(connection));

export function shutdown(): void {
  const runtime = getRuntime();
  startDrain(runtime, async () => {
    // Everything that holds a socket open, so the process then ends by itself.
    await Promise.allSettled([metricsServer?.close(), closeRateLimits()]);
    metricsServer = null;
  });
}

function refuseEarlyTalker(connection: HarakaConnection) {
  if (!connection.early_talker) return CONTINUE;
  logDecision({
    event: 'connection', phase: 'helo', action: 'reject', reason: 'early-talker',
    message_id: connection.uuid, client: clientOf(connection),
  });
  countConnection('refused_early_talker');
  return refuse('early-talker', undefined, true);
}

function refuseConnection(
  connection: HarakaConnection,
  reason: 'draining' | 'too-many-connections' | 'too-many-connections-from-ip',
  outcome: 'refused_limit' | 'refused_draining',
  evidence: Record<string, unknown> = {},
) {
  logDecision({
    event: 'connection', phase: 'connect', action: REASONS[reason].action, reason,
    message_id: connection.uuid, client: clientOf(connection), evidence,
  });
  countConnection(outcome);
  return refuse(reason, undefined, true);
}
