/*
 * The HTTP endpoint for monitoring: /metrics for Prometheus, /healthz and /readyz for probes.
 *
 * It runs in the Haraka master (start it from `init_master`, or in the single process when
 * smtp.ini has nodes=0). When cluster workers exist, /metrics asks each of them for its
 * registry over the cluster IPC channel and serves the sums (see ./metrics.ts for how
 * prom-client does this); otherwise it serves this process's registry. Either way the
 * dependency probes of this process (./metrics-health.ts) are added, once per node.
 *
 *   GET /metrics  200 Prometheus text; 503 when a worker did not answer in time
 *   GET /healthz  200 "ok" for as long as the process can answer at all
 *   GET /readyz   200 or 503, JSON { ready, checks: { name: { ok, detail, advisory? } } };
 *                 a check marked advisory is reported but never makes the answer 503
 *   anything else 404; a known path with a method other than GET or HEAD gets 405
 *
 * Listen on loopback or a management network only: the endpoint has no authentication, and
 * /readyz details name Moat's dependencies.
 */

import cluster from 'node:cluster';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

import { log } from './decision-log';
import { registry } from './metrics';
import { healthRegistry } from './metrics-health';

export interface CheckResult {
  ok: boolean;
  detail: string;
  /** Reported only: its failure does not make the node unready (see readinessFromChecks). */
  advisory?: boolean;
}

export interface Readiness {
  ready: boolean;
  checks: Record<string, CheckResult>;
}

export interface MetricsServerOptions {
  host: string;
  port: number;
  readiness: () => Promise<Readiness>;
  /** How long /readyz waits for `readiness` before answering 503. Default 2000 ms. */
  readinessDeadlineMs?: number;
}

export interface MetricsServer {
  address: AddressInfo;
  close(): Promise<void>;
}

/** Raised when the monitoring endpoint cannot listen on its address. */
export class MetricsServerError extends Error {
  readonly host: string;
  readonly port: number;

  constructor(host: string, port: number, options: { cause: unknown }) {
    const reason = options.cause instanceof Error ? options.cause.message : String(options.cause);
    super(`metrics endpoint cannot listen on ${host}:${port}: ${reason}`, options);
    this.name = 'MetricsServerError';
    this.host = host;
    this.port = port;
  }
}

const DEFAULT_READINESS_DEADLINE_MS = 2000;

/** Starts the endpoint; resolves once it listens. */
export async function startMetricsServer(options: MetricsServerOptions): Promise<MetricsServer> {
  const deadlineMs = options.readinessDeadlineMs ?? DEFAULT_READINESS_DEADLINE_MS;

  const server = createServer((request, response) => {
    route(request, response, options.readiness, deadlineMs).catch((error: unknown) => {
      log('error', 'metrics', 'request failed', { path: request.url, error });
      if (!response.headersSent) send(response, 500, 'text/plain', 'internal error\n');
      else response.destroy();
    });
  });

  // A scraper that stalls must not hold sockets for long.
  server.headersTimeout = 10_000;
  server.requestTimeout = 15_000;
  server.keepAliveTimeout = 5_000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', (cause) => reject(new MetricsServerError(options.host, options.port,
      { cause })));
    server.listen(options.port, options.host, () => resolve());
  });
  server.on('error', (error) => log('error', 'metrics', 'server error', { error }));

  return {
    address: server.address() as AddressInfo,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}

/**
 * Builds a `readiness` function from named checks, each given its own deadline: a check that
 * throws or does not finish in time counts as not ok, and the others still report. Checks
 * named in `advisory` are reported with `advisory: true` and left out of `ready`: they watch a
 * dependency the mail path does without (fail-open), so its outage must not take the node out
 * of a load balancer.
 */
export function readinessFromChecks(
  checks: Record<string, () => Promise<CheckResult>>, deadlineMs: number,
  options: { advisory?: readonly string[] } = {},
): () => Promise<Readiness> {
  const advisory = new Set(options.advisory ?? []);
  return async () => {
    const names = Object.keys(checks);
    const results = await Promise.all(
      names.map((name) => withinDeadline(checks[name]!, deadlineMs,
        (why): CheckResult => ({ ok: false, detail: why }))),
    );

    const described: Record<string, CheckResult> = {};
    names.forEach((name, index) => {
      const { ok, detail } = results[index]!;
      described[name] = advisory.has(name) ? { ok, detail, advisory: true } : { ok, detail };
    });
    const ready = names.every((name, index) => advisory.has(name) || results[index]!.ok);
    return { ready, checks: described };
  };
}

async function route(
  request: IncomingMessage, response: ServerResponse,
  readiness: () => Promise<Readiness>, deadlineMs: number,
): Promise<void> {
  const path = (request.url ?? '/').split('?')[0];
  const known = path === '/metrics' || path === '/healthz' || path === '/readyz';

  // Refuse what we do not serve.
  if (!known) return send(response, 404, 'text/plain', 'not found\n');
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    response.setHeader('Allow', 'GET, HEAD');
    return send(response, 405, 'text/plain', 'method not allowed\n');
  }

  if (path === '/healthz') return send(response, 200, 'text/plain', 'ok\n');
  if (path === '/metrics') return serveMetrics(response);

  const state = await withinDeadline(readiness, deadlineMs, (why): Readiness => ({
    ready: false, checks: { readiness: { ok: false, detail: why } },
  }));
  send(response, state.ready ? 200 : 503, 'application/json', `${JSON.stringify(state)}\n`);
}

async function serveMetrics(response: ServerResponse): Promise<void> {
  const workers = Object.values(cluster.workers ?? {});
  if (!cluster.isPrimary || workers.length === 0) {
    const [own, health] = await Promise.all([registry.metrics(), healthRegistry.metrics()]);
    return send(response, 200, registry.contentType, joinExpositions(own, health));
  }

  // Cluster: the sum over every worker; prom-client fails the whole request after 5 s.
  try {
    const [summed, health] = await Promise.all([registry.clusterMetrics(),
      healthRegistry.metrics()]);
    send(response, 200, registry.contentType, joinExpositions(summed, health));
  } catch (error) {
    log('warn', 'metrics', 'cluster workers did not all answer',
      { workers: workers.length, error });
    send(response, 503, 'text/plain', 'metrics unavailable: a worker did not answer\n');
  }
}

/** Two expositions with distinct metric names, one after the other. */
function joinExpositions(first: string, second: string): string {
  if (second === '') return first;
  return first.endsWith('\n') || first === '' ? `${first}${second}` : `${first}\n${second}`;
}

/**
 * Runs `work` and returns its result, or `fallback(why)` if it throws or is still running
 * after `deadlineMs`. The work is not cancelled; its late result is ignored.
 */
async function withinDeadline<T>(
  work: () => Promise<T>, deadlineMs: number, fallback: (why: string) => T,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<T>((resolve) => {
    timer = setTimeout(() => resolve(fallback(`no answer within ${deadlineMs} ms`)), deadlineMs);
  });

  try {
    return await Promise.race([work(), late]);
  } catch (error) {
    return fallback(`failed: ${error instanceof Error ? error.message : String(error)}`);
  } finally {
    clearTimeout(timer);
  }
}

function send(response: ServerResponse, status: number, type: string, body: string): void {
  response.writeHead(status, {
    'Content-Type': type,
    'Content-Length': Buffer.byteLength(body),
    'Cache-Control': 'no-store',
  });
  response.end(response.req.method === 'HEAD' ? undefined : body);
}
