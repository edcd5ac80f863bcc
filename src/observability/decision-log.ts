/*
 * Moat's log lines: one JSON object per line, written to one pluggable sink.
 *
 * Two kinds of line:
 * - a decision (`logDecision`): every accept, reject, tempfail, tag or quarantine, with the
 *   message id, phase, action, stable reason code, client, envelope, downstream reply and the
 *   evidence. A mail administrator should be able to answer "why was this refused?" from one
 *   line. Decision lines carry `event`, and each is counted in
 *   moat_decisions_total{event,action,reason}, so the dashboards and the log agree.
 * - an operational line (`log`): start-up, dependency down, debug detail. These carry `level`
 *   and `component`. Debug lines are written only for components switched on with
 *   MOAT_DEBUG=delivery,relay (or `*`) or by `initLogging`, or for all when the level is debug.
 *
 * Untrusted input: every string is passed through sanitizeForLog (printable ASCII, cut to
 * MAX_FIELD_CHARS); recipient lists are cut to MAX_LOGGED_RECIPIENTS, with the full count kept.
 *
 * The default sink writes to stdout with process.stdout.write. A failing sink never throws
 * into the caller: logging must not change what Moat answers to a client.
 *
 * LIMITATION: lines are written at the end of the event-loop turn that made them (and at exit),
 * and process.stdout.write is asynchronous when stdout is a pipe on some platforms; lines
 * made just before a crash can be lost.
 */

import { countDecision } from './metrics';
import { MAX_FIELD_CHARS, sanitizeForLog, sanitizeValue } from './sanitize';

export { MAX_FIELD_CHARS, sanitizeForLog, sanitizeValue } from './sanitize';

/** Recipients written out in one line; the rest are only counted in `to_count`. */
export const MAX_LOGGED_RECIPIENTS = 100;

export type DecisionEvent =
  | 'connection' | 'recipient' | 'message' | 'delivery' | 'hook-error' | 'shutdown';
export type Phase = 'connect' | 'helo' | 'mail' | 'rcpt' | 'data' | 'queue';

export interface DecisionClient {
  ip: string;
  port?: number;
  /** The client's forward-confirmed name, or `unknown`; absent when not looked up. */
  rdns?: string;
  /** Address of the proxy that passed the connection on with the PROXY protocol. */
  proxied_by?: string;
  helo?: string;
  tls?: boolean;
}

export interface DecisionEntry {
  /** ISO 8601; filled in when absent. */
  ts?: string;
  event: DecisionEvent;
  phase?: Phase;
  /** deliver, tag, quarantine, reject, tempfail, accept, ... */
  action: string;
  /** A stable code from the reason table. */
  reason: string;
  /** Moat's transaction id. */
  message_id?: string;
  client?: DecisionClient;
  envelope?: { from?: string; to?: string[] };
  downstream?: { code?: number; text?: string };
  evidence?: Record<string, unknown>;
  duration_ms?: number;
}

export type LogSink = (line: string) => void;
export type LogLevel = 'debug' | 'info' | 'notice' | 'warn' | 'error';

const LEVEL_RANK: Record<LogLevel, number> = { debug: 0, info: 1, notice: 2, warn: 3, error: 4 };

/**
 * A sink that gathers the lines of one turn of the event loop and hands them to `write` in one
 * piece at its end (at fifty connections a turn often ends several transactions); `flush`
 * writes what is gathered now.
 */
export function turnBufferedSink(write: (text: string) => void): {
  sink: LogSink; flush: () => void;
} {
  let unwritten: string[] = [];
  let queued = false;
  const flush = (): void => {
    queued = false;
    if (unwritten.length === 0) return;
    const text = `${unwritten.join('\n')}\n`;
    unwritten = [];
    write(text);
  };
  const sink: LogSink = (line) => {
    unwritten.push(line);
    if (queued) return;
    queued = true;
    setImmediate(flush);
  };
  return { sink, flush };
}

const stdoutLines = turnBufferedSink((text) => {
  process.stdout.write(text);
});
const writeToStdout: LogSink = stdoutLines.sink;
process.on('exit', stdoutLines.flush);

/** Writes the default sink's gathered lines now (they go at the end of the turn anyway). */
export function flushLog(): void {
  stdoutLines.flush();
}

let sink: LogSink = writeToStdout;
let minimumLevel: LogLevel = 'info';
let debugComponents: Set<string> = parseDebugList(process.env.MOAT_DEBUG);

/** Replaces the sink (tests capture lines this way); returns the previous one. */
export function setLogSink(next: LogSink | null): LogSink {
  const previous = sink;
  sink = next ?? writeToStdout;
  return previous;
}

/**
 * Sets the level below which operational lines are dropped and the components whose debug
 * lines are written. Without `debug`, MOAT_DEBUG is read again.
 */
export function initLogging(options: { level?: LogLevel; debug?: Iterable<string> }): void {
  minimumLevel = options.level ?? 'info';
  debugComponents = options.debug === undefined
    ? parseDebugList(process.env.MOAT_DEBUG)
    : new Set([...options.debug].map((name) => name.trim().toLowerCase()));
}

/** True when debug lines of `component` are written; check it before building costly fields. */
export function isDebugEnabled(component: string): boolean {
  if (minimumLevel === 'debug') return true;
  return debugComponents.has('*') || debugComponents.has(component.toLowerCase());
}

/** Writes one decision line, and counts it in moat_decisions_total. */
export function logDecision(entry: DecisionEntry): void {
  countDecision(entry.event, entry.action, entry.reason);
  const line: Record<string, unknown> = {
    ts: entry.ts ?? new Date().toISOString(),
    event: entry.event,
  };

  // Fixed fields first, in a fixed order, so that lines read alike.
  if (entry.phase !== undefined) line.phase = entry.phase;
  line.action = sanitizeForLog(entry.action, 64);
  line.reason = sanitizeForLog(entry.reason, 64);
  if (entry.message_id !== undefined) line.message_id = sanitizeForLog(entry.message_id, 64);
  if (entry.client !== undefined) line.client = describeClient(entry.client);
  if (entry.envelope !== undefined) line.envelope = describeEnvelope(entry.envelope);
  if (entry.downstream !== undefined) line.downstream = describeDownstream(entry.downstream);
  if (entry.evidence !== undefined) line.evidence = sanitizeValue(entry.evidence);
  if (entry.duration_ms !== undefined) line.duration_ms = Math.round(entry.duration_ms);

  emit(line);
}

/** Writes one operational line if `level` and the debug switches allow it. */
export function log(
  level: LogLevel, component: string, msg: string, fields: Record<string, unknown> = {},
): void {
  if (level === 'debug' && !isDebugEnabled(component)) return;
  if (level !== 'debug' && LEVEL_RANK[level] < LEVEL_RANK[minimumLevel]) return;

  const line: Record<string, unknown> = {
    ts: new Date().toISOString(),
    level,
    component: sanitizeForLog(component, 64),
    msg: sanitizeForLog(msg, 1024),
  };

  // Extra fields may not overwrite the four above; a clash is kept under `_name`.
  const extra = sanitizeValue(fields) as Record<string, unknown> | null;
  for (const [key, value] of Object.entries(extra ?? {})) {
    line[key in line ? `_${key}` : key] = value;
  }
  emit(line);
}

function describeClient(client: DecisionClient): Record<string, unknown> {
  const described: Record<string, unknown> = { ip: sanitizeForLog(client.ip, 64) };
  if (client.port !== undefined) described.port = client.port;
  if (client.rdns !== undefined) described.rdns = sanitizeForLog(client.rdns, 253);
  if (client.proxied_by !== undefined) described.proxied_by = sanitizeForLog(client.proxied_by, 64);
  if (client.helo !== undefined) described.helo = sanitizeForLog(client.helo);
  if (client.tls !== undefined) described.tls = client.tls === true;
  return described;
}

function describeEnvelope(envelope: { from?: string; to?: string[] }): Record<string, unknown> {
  const described: Record<string, unknown> = {};
  if (envelope.from !== undefined) described.from = sanitizeForLog(envelope.from);
  if (envelope.to !== undefined) {
    described.to = envelope.to.slice(0, MAX_LOGGED_RECIPIENTS).map((rcpt) => sanitizeForLog(rcpt));
    described.to_count = envelope.to.length;
  }
  return described;
}

function describeDownstream(reply: { code?: number; text?: string }): Record<string, unknown> {
  const described: Record<string, unknown> = {};
  if (reply.code !== undefined) described.code = reply.code;
  if (reply.text !== undefined) described.text = sanitizeForLog(reply.text, 512);
  return described;
}

function emit(line: Record<string, unknown>): void {
  let text: string;
  try {
    text = JSON.stringify(line);
  } catch (error) {
    text = JSON.stringify({ ts: line.ts, level: 'error', component: 'log',
      msg: 'a log line could not be serialised', error: sanitizeValue(error) });
  }

  try {
    sink(text);
  } catch {
    // A broken sink must not turn into a wrong SMTP reply; there is nowhere left to report it.
  }
}

function parseDebugList(list: string | undefined): Set<string> {
  if (list === undefined) return new Set();
  return new Set(list.split(',').map((name) => name.trim().toLowerCase()).filter(Boolean));
}
