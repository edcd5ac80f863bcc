/*
 * The scanner clients of this process, created on first use from the configuration, and the
 * start-up notice saying what is and is not scanned.
 *
 * With no clamd.address (and clamd.required = false) mail passes without a malware scan: that
 * is said at start-up as a warning, on every message as `X-Moat-Unscanned: malware (clamd not
 * configured)`, in the log line and in moat_unscanned_total. Likewise for spamd. Set
 * clamd.required = true in production so that a missing address stops start-up.
 */

import type { MoatConfig } from '../config/types';
import { log } from '../observability/decision-log';
import { ClamdClient } from './clamd';
import { Deadline } from './errors';
import { SpamdClient } from './spamd';

export interface ScanRuntime {
  clamd: ClamdClient | null;
  spamd: SpamdClient | null;
}

let current: ScanRuntime | null = null;

export function scanRuntime(config: MoatConfig): ScanRuntime {
  if (current) return current;
  const scan = config.scan;
  current = {
    clamd: config.clamd.length > 0
      ? new ClamdClient({
        addresses: config.clamd, connectTimeoutMs: scan.clamd.connectTimeoutMs,
        maxParallel: scan.clamd.maxParallel,
      })
      : null,
    spamd: config.spamd.length > 0
      ? new SpamdClient({
        addresses: config.spamd, connectTimeoutMs: scan.spamd.connectTimeoutMs,
        user: scan.spamd.user, maxParallel: scan.spamd.maxParallel,
      })
      : null,
  };
  announce(config);
  return current;
}

function announce(config: MoatConfig): void {
  const scan = config.scan;
  if (config.clamd.length === 0) {
    log('warn', 'scan', '*** NO CLAMD CONFIGURED: mail is delivered WITHOUT a malware scan, marked '
      + 'X-Moat-Unscanned. Set MOAT_CLAMD=host:port (and clamd.required = true). ***');
  } else {
    log('info', 'scan', 'clamd configured', {
      clamd: config.clamd, on_failure: scan.clamd.onFailure, action: scan.clamd.action,
      heuristics_action: scan.clamd.heuristicsAction, stream_max_length: scan.clamd.streamMaxLength,
      max_message_size: config.smtp.maxMessageBytes, mime_strictness: scan.mimeStrictness,
    });
  }
  if (config.spamd.length === 0) {
    log('warn', 'scan', '*** NO SPAMD CONFIGURED: mail is delivered WITHOUT a spam score, marked '
      + 'X-Moat-Unscanned. Set MOAT_SPAMD=host:port. ***');
  } else {
    log('info', 'scan', 'spamd configured', {
      spamd: config.spamd, on_failure: scan.spamd.onFailure, max_size: scan.spamd.maxSize,
      thresholds: scan.spamd.thresholds,
    });
  }
}

/** Checks for /readyz: each configured scanner answers PING within `deadlineMs`. */
export function scanReadinessChecks(
  config: MoatConfig, deadlineMs = 1000,
): Record<string, () => Promise<{ ok: boolean; detail: string }>> {
  const runtime = scanRuntime(config);
  const checks: Record<string, () => Promise<{ ok: boolean; detail: string }>> = {};
  const { clamd, spamd } = runtime;
  checks['clamd'] = clamd ? () => clamd.ping(new Deadline(deadlineMs))
    : async () => ({
      ok: !config.scan.clamd.required, detail: 'not configured: mail is NOT scanned',
    });
  checks['spamd'] = spamd ? () => spamd.ping(new Deadline(deadlineMs))
    : async () => ({ ok: true, detail: 'not configured: mail is NOT scored' });
  return checks;
}
