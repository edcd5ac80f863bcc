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
import type { Runtime } from './context';

const CHECK_DEADLINE_MS = 1500;

export async function readiness(runtime: Runtime): Promise<Readiness> {
  const checks: Record<string, () => Promise<{ ok: boolean; detail: string }>> = {
    draining: async () => ({ ok: !runtime.draining, detail: runtime.draining ? 'draining' : 'serving' }),
  };

  if (runtime.forwarder) {
    const forwarder = runtime.forwarder;
    checks['downstream'] = () => forwarder.probe();
  } else {
    const stateDir = runtime.config.stateDir;
    checks['maildir'] = async () => {
      try {
        await access(join(stateDir), constants.W_OK);
        return { ok: true, detail: `${stateDir} writable` };
      } catch (error) {
        return { ok: false, detail: `${stateDir} not writable: ${String(error)}` };
      }
    };
  }
  return readinessFromChecks(checks, CHECK_DEADLINE_MS)();
}
