/*
 * Postfix's smtp-source as the load generator: the same C client for the floor, relay-only
 * and full runs, so the comparison is fair. It sends `count` copies of one file (-F) over
 * `sessions` parallel connections, one message per connection (a new TCP connection, greeting
 * and EHLO each time, as inbound mail from many senders arrives), and exits.
 *
 * Throughput is count / wall time of the process. smtp-source reports no per-message
 * latency; bench/load.ts measures that.
 *
 * Needs: smtp-source (Debian package postfix: `sh scripts/ensure-deps.sh --bench`). A server
 * reply it did not expect makes smtp-source print it and stop: such a run fails loudly.
 */

import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { findExecutable, makeTempDir } from '../test/harness/process';

export interface SourceRun {
  host: string;
  port: number;
  sessions: number;
  count: number;
  /** Message text, LF line ends (smtp-source writes CRLF). */
  file: string;
  from: string;
  to: string;
}

export interface SourceReport {
  sent: number;
  wallMs: number;
  perSecond: number;
}

/** smtp-source failed or said something other than nothing. */
export class SmtpSourceError extends Error {
  constructor(message: string, readonly output: string) {
    super(`smtp-source: ${message}${output ? `\n${output.slice(0, 2000)}` : ''}`);
    this.name = 'SmtpSourceError';
  }
}

let messageFiles = new Map<string, string>();

export function smtpSourcePath(): string {
  const path = findExecutable('smtp-source');
  if (!path) {
    throw new SmtpSourceError('not installed: run `sh scripts/ensure-deps.sh --bench` as root '
      + '(Debian package postfix; no Postfix daemon is configured or started)', '');
  }
  return path;
}

function fileFor(text: string): string {
  let path = messageFiles.get(text);
  if (path) return path;
  path = join(makeTempDir('bench-source'), 'message.txt');
  writeFileSync(path, text);
  messageFiles = new Map([[text, path]]);
  return path;
}

export async function runSmtpSource(run: SourceRun): Promise<SourceReport> {
  const args = [
    '-s', String(run.sessions), '-m', String(run.count), '-F', fileFor(run.file),
    '-f', run.from, '-t', run.to, '-M', 'source.bench.test', `${run.host}:${run.port}`,
  ];
  const started = performance.now();
  const child = spawn(smtpSourcePath(), args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString('utf8'); });
  child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString('utf8'); });
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  const wallMs = performance.now() - started;

  if (code !== 0 || /fatal|error|warning/i.test(output)) {
    throw new SmtpSourceError(`exit code ${code}`, output);
  }
  return {
    sent: run.count, wallMs: Math.round(wallMs),
    perSecond: Math.round((run.count / (wallMs / 1000)) * 100) / 100,
  };
}
