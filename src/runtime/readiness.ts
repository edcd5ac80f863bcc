/*
 * /readyz: is this node able to take mail right now?
 *
 * Ready means: not draining, and the internal server answers (connect, greeting, EHLO, STARTTLS
 * when required). With the local Maildir instead of a server, the Maildir must be writable.
 * Later dependencies (clamd, spamd, Redis) add their checks here. Each check has its own
 * deadline in readinessFromChecks, so the endpoint never hangs on a stuck dependency.
 */

import { access, constants } from 'node:fs/promises';
import { join } from 'node:path';
import { readinessFromChecks, type Readiness } from '../observability/http';
import { PROBE_DEADLINE_MS, type DependencyProbes } from '../observability/metrics-health';
import { rateLimits } from '../ratelimit/service';
import { Deadline } from '../scan/errors';
import { scanRuntime } from '../scan/runtime';
import type { Runtime } from './context';

const CHECK_DEADLINE_MS = 1500;

export async function readiness(runtime: Runtime): Promise<Readiness> {
  const checks: Record<string, () => Promise<{ ok: boolean; detail: string }>> = {
    draining: async () => ({
      ok: !runtime.draining, detail: runtime.draining ? 'draining' : 'serving',
    }),
  };

  if (runtime.forwarder) {
    const forwarder = runtime.forwarder;
    checks['downstream'] = () => forwarder.probe();
  } else {
    checks['maildir'] = () => maildirWritable(runtime.config.stateDir);
  }
  return readinessFromChecks(checks, CHECK_DEADLINE_MS)();
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

async function maildirWritable(stateDir: string): Promise<{ ok: boolean; detail: string }> {
  try {
    await access(join(stateDir), constants.W_OK);
    return { ok: true, detail: `${stateDir} writable` };
  } catch (error) {
    return { ok: false, detail: `${stateDir} not writable: ${String(error)}` };
  }
}
