/*
 * A real Prometheus (Debian package `prometheus`) for integration tests: it scrapes the given
 * loopback targets every second as job `moat`, evaluates the given rule files every second,
 * keeps its data in a temporary folder and listens on a free 127.0.0.1 port. Tests ask it
 * PromQL through its HTTP API, exactly as Grafana would.
 *
 * Needs /usr/bin/prometheus (scripts/ensure-deps.sh installs it). It starts in a second or
 * two; start() allows 30 s.
 */

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { freePort, LOOPBACK } from './ports';
import {
  makeTempDir, requireExecutable, spawnDaemon, waitUntilReady, type Daemon,
} from './process';

const START_TIMEOUT_MS = 30_000;

export interface PrometheusOptions {
  /** host:port of each /metrics endpoint, scraped as job `moat`. */
  targets: string[];
  /** Rule files (absolute paths) to load and evaluate. */
  ruleFiles?: string[];
}

/** One sample of an instant vector: its labels and value (NaN and Inf as numbers). */
export interface PromSample {
  metric: Record<string, string>;
  value: number;
}

/** The query API refused a query or answered with an error. */
export class PrometheusQueryError extends Error {
  constructor(readonly query: string, message: string) {
    super(`${query}: ${message}`);
    this.name = 'PrometheusQueryError';
  }
}

export interface PrometheusServer {
  /** http://127.0.0.1:<port> */
  readonly url: string;
  readonly daemon: Daemon;
  /** An instant query at the current time; a scalar comes back as one sample. */
  query(expr: string): Promise<PromSample[]>;
  /** GET an API path (e.g. `/api/v1/rules`) and return its `data`. */
  api(path: string): Promise<unknown>;
  /** Polls `expr` until `done` accepts its samples; throws with the last answer otherwise. */
  waitFor(expr: string, done: (samples: PromSample[]) => boolean, timeoutMs?: number)
    : Promise<PromSample[]>;
  stop(): Promise<void>;
}

export async function startPrometheus(options: PrometheusOptions): Promise<PrometheusServer> {
  const binary = requireExecutable('prometheus');
  const folder = makeTempDir('prometheus-');
  const port = await freePort();
  const url = `http://${LOOPBACK}:${port}`;

  // The configuration: one job, 1 s scrapes and evaluations, the rule files as given.
  const config = [
    'global:',
    '  scrape_interval: 1s',
    '  scrape_timeout: 1s',
    '  evaluation_interval: 1s',
    ...(options.ruleFiles?.length
      ? ['rule_files:', ...options.ruleFiles.map((file) => `  - ${JSON.stringify(file)}`)]
      : []),
    'scrape_configs:',
    '  - job_name: moat',
    '    static_configs:',
    `      - targets: [${options.targets.map((target) => JSON.stringify(target)).join(', ')}]`,
    '',
  ].join('\n');
  const configFile = join(folder, 'prometheus.yml');
  writeFileSync(configFile, config);

  const daemon = spawnDaemon('prometheus', binary, [
    `--config.file=${configFile}`,
    `--storage.tsdb.path=${join(folder, 'data')}`,
    `--web.listen-address=${LOOPBACK}:${port}`,
    '--log.level=warn',
  ], { cwd: folder });
  await waitUntilReady(daemon, async () => {
    const response = await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(1000) });
    return response.status === 200;
  }, START_TIMEOUT_MS);

  const api = async (path: string): Promise<unknown> => {
    const response = await fetch(`${url}${path}`, { signal: AbortSignal.timeout(10_000) });
    const body = await response.json() as { status: string; data?: unknown; error?: string };
    if (body.status !== 'success') {
      throw new PrometheusQueryError(path, `${response.status} ${body.error ?? 'no error text'}`);
    }
    return body.data;
  };

  const query = async (expr: string): Promise<PromSample[]> => {
    let data: { resultType: string; result: unknown };
    try {
      data = await api(`/api/v1/query?query=${encodeURIComponent(expr)}`) as typeof data;
    } catch (error) {
      if (error instanceof PrometheusQueryError) {
        throw new PrometheusQueryError(expr, error.message);
      }
      throw error;
    }
    if (data.resultType === 'scalar') {
      const [, value] = data.result as [number, string];
      return [{ metric: {}, value: sampleValue(value) }];
    }
    if (data.resultType !== 'vector') {
      throw new PrometheusQueryError(expr, `expected an instant vector, got ${data.resultType}`);
    }
    return (data.result as Array<{ metric: Record<string, string>; value: [number, string] }>)
      .map((sample) => ({ metric: sample.metric, value: sampleValue(sample.value[1]) }));
  };

  return {
    url, daemon, query, api,
    async waitFor(expr, done, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      let last: PromSample[] = [];
      while (Date.now() < deadline) {
        last = await query(expr);
        if (done(last)) return last;
        await sleep(250);
      }
      throw new PrometheusQueryError(expr,
        `not satisfied within ${timeoutMs} ms; last answer ${JSON.stringify(last)}`);
    },
    stop: () => daemon.stop(10_000),
  };
}

/** Prometheus writes sample values as strings: a float, NaN, +Inf or -Inf. */
function sampleValue(text: string): number {
  if (text === '+Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  return Number(text);
}
