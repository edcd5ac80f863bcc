/*
 * Decision lines and operational lines, captured through the pluggable sink.
 */

import assert from 'node:assert/strict';
import { afterEach, beforeEach, test } from 'node:test';

import {
  MAX_LOGGED_RECIPIENTS, flushLog, initLogging, isDebugEnabled, log, logDecision, setLogSink,
  turnBufferedSink,
} from './decision-log';

let lines: string[] = [];

beforeEach(() => {
  lines = [];
  setLogSink((line) => lines.push(line));
  initLogging({ level: 'info', debug: [] });
});

afterEach(() => {
  setLogSink(null);
});

function onlyLine(): Record<string, any> {
  assert.equal(lines.length, 1, `expected one line, got ${lines.length}`);
  assert.doesNotMatch(lines[0]!, /[\r\n]/);
  return JSON.parse(lines[0]!);
}

test('a decision is one JSON line with its fields in a fixed order', () => {
  logDecision({
    ts: '2026-12-01T10:00:00.000Z',
    event: 'recipient',
    phase: 'rcpt',
    action: 'reject',
    reason: 'recipient.unknown',
    message_id: 'M1A2B3',
    client: { ip: '192.0.2.7', port: 40123, proxied_by: '10.0.0.2', helo: 'mx.example.net',
      tls: true },
    envelope: { from: 'alice@example.net', to: ['nobody@example.com'] },
    downstream: { code: 550, text: '5.1.1 User unknown' },
    evidence: { verify: 'cache' },
    duration_ms: 12.7,
  });

  const entry = onlyLine();
  assert.deepEqual(Object.keys(entry), ['ts', 'event', 'phase', 'action', 'reason', 'message_id',
    'client', 'envelope', 'downstream', 'evidence', 'duration_ms']);
  assert.equal(entry.client.proxied_by, '10.0.0.2');
  assert.deepEqual(entry.envelope, { from: 'alice@example.net', to: ['nobody@example.com'],
    to_count: 1 });
  assert.deepEqual(entry.downstream, { code: 550, text: '5.1.1 User unknown' });
  assert.equal(entry.duration_ms, 13);
});

test('a missing timestamp is filled in as ISO 8601', () => {
  logDecision({ event: 'connection', action: 'accept', reason: 'ok' });
  assert.match(onlyLine().ts, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
});

test('CR/LF in HELO, addresses and downstream text cannot start a second line', () => {
  const forged = 'x\r\n{"event":"message","action":"deliver"}';
  logDecision({
    event: 'message', phase: 'data', action: 'reject', reason: 'virus.found',
    client: { ip: '192.0.2.1', helo: forged },
    envelope: { from: forged, to: [forged] },
    downstream: { code: 250, text: forged },
    evidence: { header: forged },
  });

  const entry = onlyLine();
  assert.equal(entry.action, 'reject');
  assert.equal(entry.client.helo, 'x\\x0d\\x0a{"event":"message","action":"deliver"}');
  assert.equal(entry.envelope.from, entry.client.helo);
  assert.equal(entry.envelope.to[0], entry.client.helo);
  assert.equal(entry.downstream.text, entry.client.helo);
  assert.equal(entry.evidence.header, entry.client.helo);
});

test('long client strings are cut, and recipients past the limit are only counted', () => {
  const to = Array.from({ length: 150 }, (_, index) => `user${index}@example.com`);
  logDecision({
    event: 'message', action: 'deliver', reason: 'clean',
    client: { ip: '192.0.2.1', helo: 'h'.repeat(5000) },
    envelope: { from: `${'a'.repeat(3000)}@example.net`, to },
  });

  const entry = onlyLine();
  assert.ok(entry.client.helo.length < 300, 'HELO was cut');
  assert.match(entry.client.helo, /\.\.\.\[\+4744\]$/);
  assert.equal(entry.envelope.to.length, MAX_LOGGED_RECIPIENTS);
  assert.equal(entry.envelope.to[99], 'user99@example.com');
  assert.equal(entry.envelope.to_count, 150);
  assert.ok(lines[0]!.length < 20_000);
});

test('non-ASCII client text is escaped, so every line is pure ASCII', () => {
  logDecision({
    event: 'recipient', action: 'reject', reason: 'recipient.unknown',
    envelope: { from: 'jörg@exämple.de', to: ['用户@例子.中国'] },
  });

  assert.match(lines[0]!, /^[\x20-\x7e]+$/);
  const entry = onlyLine();
  assert.equal(entry.envelope.from, 'j\\xf6rg@ex\\xe4mple.de');
  assert.equal(entry.envelope.to[0], '\\u{7528}\\u{6237}@\\u{4f8b}\\u{5b50}.\\u{4e2d}\\u{56fd}');
});

test('a sink that throws does not reach the caller', () => {
  setLogSink(() => { throw new Error('EPIPE'); });
  assert.doesNotThrow(() => logDecision({ event: 'connection', action: 'accept', reason: 'ok' }));
  assert.doesNotThrow(() => log('error', 'delivery', 'down'));
});

test('log writes level, component and message, and sanitizes fields', () => {
  log('warn', 'clamd', 'scanner down\r\n', { socket: '/run/clamd.sock', error: new Error('boom') });

  const entry = onlyLine();
  assert.deepEqual(Object.keys(entry).slice(0, 4), ['ts', 'level', 'component', 'msg']);
  assert.equal(entry.level, 'warn');
  assert.equal(entry.component, 'clamd');
  assert.equal(entry.msg, 'scanner down\\x0d\\x0a');
  assert.equal(entry.socket, '/run/clamd.sock');
  assert.deepEqual(entry.error, { name: 'Error', message: 'boom' });
});

test('fields cannot overwrite level, component, msg or ts', () => {
  log('info', 'relay', 'started', { level: 'error', msg: 'forged' });

  const entry = onlyLine();
  assert.equal(entry.level, 'info');
  assert.equal(entry.msg, 'started');
  assert.equal(entry._level, 'error');
  assert.equal(entry._msg, 'forged');
});

test('lines below the configured level are dropped', () => {
  initLogging({ level: 'warn', debug: [] });
  log('info', 'relay', 'dropped');
  log('notice', 'relay', 'dropped');
  log('error', 'relay', 'kept');
  assert.equal(onlyLine().msg, 'kept');
});

test('debug lines are written only for switched-on components', () => {
  initLogging({ level: 'info', debug: ['Delivery'] });
  log('debug', 'relay', 'dropped');
  log('debug', 'delivery', 'kept');
  assert.equal(onlyLine().component, 'delivery');
  assert.equal(isDebugEnabled('relay'), false);
  assert.equal(isDebugEnabled('delivery'), true);
});

test('MOAT_DEBUG is read when no set is given; * switches on every component', () => {
  const saved = process.env.MOAT_DEBUG;
  try {
    process.env.MOAT_DEBUG = ' delivery, relay ,';
    initLogging({ level: 'info' });
    assert.equal(isDebugEnabled('relay'), true);
    assert.equal(isDebugEnabled('delivery'), true);
    assert.equal(isDebugEnabled('clamd'), false);

    process.env.MOAT_DEBUG = '*';
    initLogging({ level: 'info' });
    assert.equal(isDebugEnabled('clamd'), true);
  } finally {
    if (saved === undefined) delete process.env.MOAT_DEBUG;
    else process.env.MOAT_DEBUG = saved;
  }
});

test('level debug switches on debug lines for every component', () => {
  initLogging({ level: 'debug', debug: [] });
  log('debug', 'anything', 'kept');
  assert.equal(onlyLine().level, 'debug');
});

test('the default sink writes to process.stdout, the lines of a turn in one write', () => {
  setLogSink(null);
  const written: string[] = [];
  const original = process.stdout.write;
  // Replaced only while nothing else can run: the test runner reports through stdout too.
  process.stdout.write = ((chunk: string) => { written.push(chunk); return true; }) as any;
  try {
    log('info', 'test', 'to stdout');
    log('info', 'test', 'and again');
    assert.equal(written.length, 0, 'gathered until the end of the turn');
    flushLog();
  } finally {
    process.stdout.write = original;
  }
  assert.equal(written.length, 1);
  assert.match(written[0]!, /^\{.*"msg":"to stdout"\}\n\{.*"msg":"and again"\}\n$/);
});

test('a turn-buffered sink hands the lines of each turn over in one piece when the turn ends',
  async () => {
    const pieces: string[] = [];
    const { sink, flush } = turnBufferedSink((text) => pieces.push(text));
    sink('one');
    sink('two');
    assert.deepEqual(pieces, []);
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(pieces, ['one\ntwo\n']);
    sink('three');
    flush();
    flush();
    assert.deepEqual(pieces, ['one\ntwo\n', 'three\n']);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(pieces.length, 2, 'nothing left for the queued flush');
  });
