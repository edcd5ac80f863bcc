/*
 * /readyz: is this node able to take mail right now?
 *
 * The rule: the node's own state, and every configured dependency whose failure would make
 * this node refuse mail, are required checks: any one failing makes /readyz 503, so a load
 * balancer sends the mail to another node. A configured dependency Moat does without when it
 * fails (fail-open) is an advisory check: shown in the JSON with its state and
 * `advisory: true`, never a 503.
 *
 *   draining     required  SIGTERM/SIGINT received: the node is going away
 *   workers      required  with smtp.workers > 0: every worker is running. The master that
 *                          serves /readyz drains only after its workers are gone, and Haraka
 *                          drops each worker from the cluster the moment it tells it to
 *                          leave, so this is what turns /readyz 503 when a cluster drains.
 *                          A crashed worker fails it too, until Haraka has replaced it.
 *   downstream   required  the internal server answers (connect, greeting, EHLO, STARTTLS
 *                          when required)
 *   maildir      required  instead of downstream when no internal server is set: the state
 *                          folder is writable
 *   clamd, spamd required  when configured with on_failure = tempfail (mail gets 451 while
 *                          they are down); advisory with on_failure = deliver (mail passes,
 *                          marked X-Moat-Unscanned)
 *   redis        advisory  when redis.url is set: the rate limits fail open without it
 *
 * DNS has no check here: resolvers fail per lookup, and each caller has its own rule
 * (docs/operations.md, "Failure modes"). Each check has its own deadline in
 * readinessFromChecks, so the endpoint never hangs on a stuck dependency.
 */

import cluster from 'node:cluster';
import { access, constants } from 'node:fs/promises';
import { join } from 'node:path';
import { readinessFromChecks, type CheckResult, type Readiness } from '../observability/http';
import { PROBE_DEADLINE_MS, type DependencyProbes } from '../observability/metrics-health';
import { rateLimits } from '../ratelimit/service';
import { Deadline } from '../scan/errors';
import { scanRuntime } from '../scan/runtime';
import type { Runtime } from './context';

const CHECK_DEADLINE_MS = 1500;

export async function readiness(runtime: Runtime): Promise<Readiness> {
  const checks: Record<string, () => Promise<CheckResult>> = {
    draining: async () => ({
      ok: !runtime.draining, detail: runtime.draining ? 'draining' : 'serving',
    }),
  };
  const configuredWorkers = runtime.config.smtp.workers;
  if (configuredWorkers > 0 && cluster.isPrimary) {
    checks['workers'] = async () => workersRunning(configuredWorkers);
  }
  const advisory: string[] = [];

  // The internal server, or the Maildir standing in for it.
  if (runtime.forwarder) {
    const forwarder = runtime.forwarder;
    checks['downstream'] = () => forwarder.probe();
  } else {
    checks['maildir'] = () => maildirWritable(runtime.config.stateDir);
  }

  // Scanners: required only when their outage refuses mail.
  const { clamd, spamd } = scanRuntime(runtime.config);
  const scan = runtime.config.scan;
  if (clamd) {
    checks['clamd'] = () => clamd.ping(new Deadline(CHECK_DEADLINE_MS));
    if (scan.clamd.onFailure !== 'tempfail') advisory.push('clamd');
  }
  if (spamd) {
    checks['spamd'] = () => spamd.ping(new Deadline(CHECK_DEADLINE_MS));
    if (scan.spamd.onFailure !== 'tempfail') advisory.push('spamd');
  }

  // Rate limits fail open: Redis is reported, never a reason to take the node out.
  if (runtime.config.redisUrl) {
    checks['redis'] = () => rateLimits(runtime.config).probe();
    advisory.push('redis');
  }
  return readinessFromChecks(checks, CHECK_DEADLINE_MS, { advisory })();
}

/**
 * The probes behind moat_dependency_up (src/observability/metrics-health.ts): the mail path's
 * dependencies, as configured. Run by the process serving /metrics when it is scraped.
 */
export function dependencyProbes(runtime: Runtime): DependencyProbes {
  const probes: DependencyProbes = {};
  const forwarder = runtime.forwarder;
  if (forwarder) probes.downstream = () => forwarder.probe();
  else probes.maildir = () => maildirWritable(runtime.config.stateDir);

  const { clamd, spamd } = scanRuntime(runtime.config);
  if (clamd) probes.clamd = () => clamd.ping(new Deadline(PROBE_DEADLINE_MS));
  if (spamd) probes.spamd = () => spamd.ping(new Deadline(PROBE_DEADLINE_MS));
  if (runtime.config.redisUrl) probes.redis = () => rateLimits(runtime.config).probe();
  return probes;
}

/** In the cluster master: are all configured workers there and connected? */
function workersRunning(configured: number): CheckResult {
  const running = Object.values(cluster.workers ?? {})
    .filter((worker) => worker?.isConnected() && !worker.exitedAfterDisconnect).length;
  return { ok: running >= configured, detail: `${running} of ${configured} workers running` };
}

async function maildirWritable(stateDir: string): Promise<CheckResult> {
  try {
    await access(join(stateDir), constants.W_OK);
    return { ok: true, detail: `${stateDir} writable` };
  } catch (error) {
    return { ok: false, detail: `${stateDir} not writable: ${String(error)}` };
  }
}
