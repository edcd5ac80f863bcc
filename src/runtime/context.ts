/*
 * The per-process runtime shared by Moat's Haraka plugins.
 *
 * Each Haraka process (the single process, or each cluster worker) builds one Runtime the
 * first time a plugin asks for it: the validated configuration, the delivery (forwarder to the
 * internal server, or the local Maildir), the recipient checker, and the set of open
 * connections used for limits and draining. Plugins stay thin: they read the Haraka objects,
 * call these modules, and record the result.
 */

import { loadConfig } from '../config/load';
import type { MoatConfig } from '../config/types';
import { Forwarder } from '../delivery/forwarder';
import { MaildirDelivery } from '../delivery/maildir';
import type { Delivery } from '../delivery/types';
import { RecipientChecker } from '../envelope/recipients';
import { initLogging, log } from '../observability/decision-log';
import {
  countDownstreamConnection, countHookError, countMemoryCollection, observeDownstream,
} from '../observability/metrics';
import { setHookErrorReporter } from './hook';
import { describeConnection, type HarakaConnection } from './haraka-types';
import { trimAllocator, trimUnavailableReason } from './allocator-trim';
import { BusyCollector } from './busy-collection';
import { IdleCollector } from './idle-collection';
import { HighWaterCollector } from './memory-high-water';
import { collectGarbage } from './node-flags';

export interface Runtime {
  config: MoatConfig;
  delivery: Delivery;
  forwarder: Forwarder | null;
  recipients: RecipientChecker;
  connections: ConnectionRegistry;
  /** Collects garbage once the process has gone quiet after traffic (smtp.idle_collect). */
  idle: IdleCollector;
  /** Collects garbage and trims every smtp.busy_collect while there is traffic. */
  busy: BusyCollector;
  /** Collects garbage when a busy process passes smtp.memory_high. */
  highWater: HighWaterCollector;
  /** Set when the process is draining for shutdown. */
  draining: boolean;
  /**
   * Fault injection for testing the safety net (MOAT_FAULT_INJECT=hook:data_post or
   * hook:data_post@2 for the first two times only): point → remaining count (Infinity = always).
   */
  faults: Map<string, number>;
}

/** Told of every connection coming and going: the collections and the periodic trim. */
export interface ConnectionWatcher {
  connectionOpened(): void;
  /** `stillOpen`: the connections left in this process. */
  connectionClosed?(stillOpen: number): void;
}

export class ConnectionRegistry {
  readonly open = new Set<HarakaConnection>();
  private readonly perIp = new Map<string, number>();
  private readonly watchers: readonly ConnectionWatcher[];

  constructor(...watchers: ConnectionWatcher[]) {
    this.watchers = watchers;
  }

  add(connection: HarakaConnection, ip: string): number {
    this.open.add(connection);
    for (const watcher of this.watchers) watcher.connectionOpened();
    const count = (this.perIp.get(ip) ?? 0) + 1;
    this.perIp.set(ip, count);
    return count;
  }

  remove(connection: HarakaConnection, ip: string): void {
    if (!this.open.delete(connection)) return;
    const count = (this.perIp.get(ip) ?? 1) - 1;
    if (count <= 0) this.perIp.delete(ip);
    else this.perIp.set(ip, count);
    for (const watcher of this.watchers) watcher.connectionClosed?.(this.open.size);
  }
}

let runtime: Runtime | null = null;

export function getRuntime(): Runtime {
  if (runtime) return runtime;

  const config = loadConfig({
    root: process.env['MOAT_ROOT'] ?? process.cwd(),
    configDir: process.env['MOAT_CONFIG_DIR'],
  });
  initLogging({ level: config.log.level, debug: config.log.debug });

  // Delivery: the internal server when configured, else the local Maildir.
  const forwarder = config.downstream.address
    ? new Forwarder(config.downstream, {
      observer: (event, outcome, seconds) => {
        if (event === 'reuse') countDownstreamConnection('reused');
        if (event === 'connect') countDownstreamConnection('new');
        const operation = event === 'reuse' ? 'connect' : event;
        observeDownstream(operation, downstreamOutcome(outcome), seconds);
      },
    })
    : null;
  const delivery: Delivery = forwarder ?? new MaildirDelivery(config.stateDir);

  const recipients = new RecipientChecker({
    verify: forwarder ? (address) => forwarder.verifyRecipient(address) : null,
    positiveTtlMs: config.downstream.verifyCachePositiveMs,
    negativeTtlMs: config.downstream.verifyCacheNegativeMs,
  });

  setHookErrorReporter(({ hook, error, connection }) => {
    countHookError(hook);
    log('error', 'hook', `hook ${hook} failed; answered 451 4.3.0`, {
      hook,
      error: error instanceof Error ? `${error.name}: ${error.message}` : String(error),
      stack: error instanceof Error ? error.stack?.split('\n').slice(0, 6).join(' | ') : undefined,
      connection: connection ? describeConnection(connection as HarakaConnection) : undefined,
    });
  });

  const idle = new IdleCollector(() => collectAndTrim('idle'), config.smtp.idleCollectMs);
  const busy = new BusyCollector(() => collectAndTrim('busy'), config.smtp.busyCollectMs);
  const highWater = new HighWaterCollector(() => collectAndTrim('high_water'),
    () => process.memoryUsage.rss(), config.smtp.memoryHighBytes);
  const trimUnavailable = trimUnavailableReason();
  if (trimUnavailable) {
    log('warn', 'runtime', 'memory: the allocator cannot be trimmed; memory freed after large '
      + 'messages stays resident (build dist/native with scripts/build-native.sh)',
    { reason: trimUnavailable });
  }
  runtime = {
    config, delivery, forwarder, recipients,
    connections: new ConnectionRegistry(idle, busy, highWater),
    idle, busy, highWater,
    draining: false,
    faults: parseFaults(process.env['MOAT_FAULT_INJECT'] ?? ''),
  };
  return runtime;
}

const megabytes = (bytes: number): number => Math.round(bytes / 104857.6) / 10;

/**
 * A collection, then a trim of what it freed, with what they gave back (debug component
 * `runtime`): when the process goes quiet, every smtp.busy_collect under traffic, and when a
 * busy process passes smtp.memory_high.
 */
function collectAndTrim(trigger: 'idle' | 'busy' | 'high_water'): void {
  const before = process.memoryUsage();
  const started = performance.now();
  const collected = collectGarbage();
  const trimmed = trimAllocator();
  if (!collected && trimmed === 'unavailable') return;
  if (collected) countMemoryCollection(trigger);
  const after = process.memoryUsage();
  log('debug', 'runtime', COLLECTION_MESSAGES[trigger], {
    ms: Math.round(performance.now() - started),
    collected, trimmed,
    rss_mb: [megabytes(before.rss), megabytes(after.rss)],
    heap_used_mb: [megabytes(before.heapUsed), megabytes(after.heapUsed)],
    external_mb: [megabytes(before.external), megabytes(after.external)],
  });
}

const COLLECTION_MESSAGES = {
  idle: 'idle: garbage collected',
  busy: 'memory: periodic collection',
  high_water: 'memory: above smtp.memory_high, garbage collected',
} as const;

function downstreamOutcome(outcome: string): 'ok' | 'tempfail' | 'permfail' | 'timeout' | 'error' {
  switch (outcome) {
    case 'ok': case 'delivered': case 'partial': case 'accept': return 'ok';
    case 'tempfail': return 'tempfail';
    case 'rejected': case 'reject': return 'permfail';
    case 'timeout': return 'timeout';
    default: return 'error';
  }
}

function parseFaults(text: string): Map<string, number> {
  const faults = new Map<string, number>();
  for (const entry of text.split(',').map((item) => item.trim()).filter(Boolean)) {
    const [point = '', times] = entry.split('@');
    faults.set(point, times === undefined ? Infinity : Math.max(0, Number(times) || 0));
  }
  return faults;
}

export class InjectedFault extends Error {
  constructor(readonly point: string) {
    super(`fault injected at ${point} (MOAT_FAULT_INJECT)`);
    this.name = 'InjectedFault';
  }
}

/** Throws when a test asked for a fault at this point (MOAT_FAULT_INJECT=hook:<name>[@N]). */
export function injectFault(point: string): void {
  const remaining = runtime?.faults.get(point);
  if (remaining === undefined || remaining <= 0) return;
  runtime?.faults.set(point, remaining - 1);
  throw new InjectedFault(point);
}
