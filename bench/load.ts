/*
 * The benchmark's own SMTP client: sends a corpus at a fixed concurrency and measures, per
 * message, the time from the end of DATA (the final dot handed to the kernel) to the server's
 * reply. smtp-source cannot report that, so this client measures latency; throughput is
 * measured with both (bench/README.md).
 *
 * Each of `concurrency` workers opens a connection, optionally sends a PROXY v1 header naming
 * the corpus message's client address, reads the greeting, and goes EHLO, MAIL, RCPT, DATA,
 * the message, QUIT: one message per connection, as inbound mail from many senders arrives.
 * No pipelining, as the slowest of real senders do. Every reply is checked
 * against what the corpus expects of the gateway under test; a mismatch is counted and its
 * first examples kept, so a run that "went fast" because everything was refused is caught.
 */

import { connect, type Socket } from 'node:net';

import { proxyV1Header } from '../test/harness/proxy-header';
import { percentile, round as roundTo } from './stats';

export interface LoadMessage {
  name: string;
  from: string;
  to: string[];
  /** The message, CRLF line ends, dot-stuffed, ending in CRLF (the final dot is added). */
  wire: Buffer;
  /** Client address presented with PROXY (when the run uses PROXY). */
  clientIp: string;
  /** The reply class expected at the end: 2 (accepted), 4 or 5, and where it comes. */
  expect: { code: number; at: 'connect' | 'rcpt' | 'data' };
}

export interface LoadOptions {
  host: string;
  port: number;
  concurrency: number;
  messages: LoadMessage[];
  /** Stop after this many messages (the corpus is cycled) ... */
  count?: number;
  /** ... or after this long. */
  durationMs?: number;
  /** Send a PROXY v1 header from this local address (it must be a listed PROXY host). */
  proxyFrom?: string;
  /** A reply slower than this fails the message. */
  timeoutMs?: number;
  /** What every message is expected to get, overriding the corpus (relay runs: 250). */
  expectAll?: { code: number; at: 'connect' | 'rcpt' | 'data' };
  /** Called for each message done (soak uses it to follow progress). */
  onMessage?: (result: MessageResult) => void;
}

export interface MessageResult {
  name: string;
  /** The last reply code received; 0 for a connection error or timeout. */
  code: number;
  at: 'connect' | 'mail' | 'rcpt' | 'data';
  /** End of DATA to reply, ms; null when DATA was not reached. */
  latencyMs: number | null;
  ok: boolean;
  detail?: string;
}

export interface LoadReport {
  sent: number;
  wallMs: number;
  perSecond: number;
  latencyMs: { p50: number; p95: number; p99: number; max: number; count: number };
  codes: Record<string, number>;
  mismatches: number;
  examples: string[];
}

/** Runs the load and summarises it. */
export async function runLoad(options: LoadOptions): Promise<LoadReport> {
  const results: MessageResult[] = [];
  const started = performance.now();
  const stopAt = options.durationMs === undefined ? Infinity : Date.now() + options.durationMs;
  const limit = options.count ?? Infinity;
  let next = 0;
  const take = (): LoadMessage | null => {
    if (next >= limit || Date.now() >= stopAt) return null;
    const message = options.messages[next % options.messages.length] as LoadMessage;
    next += 1;
    return message;
  };
  const record = (result: MessageResult): void => {
    results.push(result);
    options.onMessage?.(result);
  };

  await Promise.all(Array.from({ length: options.concurrency },
    () => worker(options, take, record)));
  return summarise(results, performance.now() - started);
}

async function worker(
  options: LoadOptions, take: () => LoadMessage | null, record: (result: MessageResult) => void,
): Promise<void> {
  for (let message = take(); message; message = take()) {
    const session = await Session.open(options, message);
    record(await session.send(message));
    session.close();
  }
}

function expectationOf(options: LoadOptions, message: LoadMessage) {
  return options.expectAll ?? message.expect;
}

/** One SMTP connection: a tiny reply reader and the steps of a transaction. */
class Session {
  private buffer = '';
  /** Lines of a multi-line reply read so far. */
  private pendingLines: string[] = [];
  private waiting: ((reply: { code: number; text: string }) => void) | null = null;
  private replies: Array<{ code: number; text: string }> = [];
  private closed = false;
  private greeting: Promise<{ code: number; text: string }>;

  private constructor(private readonly socket: Socket, private readonly options: LoadOptions) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', () => this.onClose());
    socket.on('close', () => this.onClose());
    this.greeting = this.reply();
  }

  static async open(options: LoadOptions, first: LoadMessage): Promise<Session> {
    const socket = connect({
      host: options.host, port: options.port,
      ...(options.proxyFrom ? { localAddress: options.proxyFrom } : {}),
    });
    const session = new Session(socket, options);
    if (options.proxyFrom) {
      socket.write(proxyV1Header({
        sourceAddress: first.clientIp, sourcePort: 40000 + Math.floor(Math.random() * 20000),
        destinationAddress: options.host, destinationPort: options.port,
      }));
    }
    return session;
  }

  async send(message: LoadMessage): Promise<MessageResult> {
    const expected = expectationOf(this.options, message);
    const done = (code: number, at: MessageResult['at'], latencyMs: number | null,
      detail?: string): MessageResult => {
      // The exact code: EICAR (554) and GTUBE (550) must each be refused for their own reason.
      const ok = code === expected.code
        && (expected.at === at || (expected.at === 'rcpt' && at === 'mail'));
      return { name: message.name, code, at, latencyMs, ok, ...(detail ? { detail } : {}) };
    };

    const greeting = await this.greeting;
    if (greeting.code !== 220) return done(greeting.code, 'connect', null, greeting.text);
    const ehlo = await this.command('EHLO load.bench.test');
    if (ehlo.code !== 250) return done(ehlo.code, 'connect', null, ehlo.text);
    const size = /^SIZE\b/im.test(ehlo.text) ? ` SIZE=${message.wire.length}` : '';

    const mail = await this.command(`MAIL FROM:<${message.from}>${size}`);
    if (mail.code !== 250) return done(mail.code, 'mail', null, mail.text);
    let accepted = 0;
    let lastRefusal = { code: 0, text: '' };
    for (const recipient of message.to) {
      const rcpt = await this.command(`RCPT TO:<${recipient}>`);
      if (rcpt.code === 250) accepted += 1;
      else lastRefusal = rcpt;
    }
    if (accepted === 0) return done(lastRefusal.code, 'rcpt', null, lastRefusal.text);
    const data = await this.command('DATA');
    if (data.code !== 354) return done(data.code, 'rcpt', null, data.text);

    // The message, then the final dot; the clock starts when the dot is with the kernel.
    this.socket.write(message.wire);
    const endOfData = await new Promise<number>((resolve) => {
      this.socket.write('.\r\n', () => resolve(performance.now()));
    });
    const final = await this.reply();
    return done(final.code, 'data', performance.now() - endOfData, final.text);
  }

  close(): void {
    if (this.closed) return;
    this.socket.end('QUIT\r\n');
    this.socket.destroySoon();
  }

  private async command(line: string): Promise<{ code: number; text: string }> {
    if (this.closed) return { code: 0, text: 'connection closed' };
    this.socket.write(`${line}\r\n`);
    return this.reply();
  }

  private reply(): Promise<{ code: number; text: string }> {
    const ready = this.replies.shift();
    if (ready) return Promise.resolve(ready);
    if (this.closed) return Promise.resolve({ code: 0, text: 'connection closed' });
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiting = null;
        this.socket.destroy();
        resolve({ code: 0, text: 'timed out waiting for a reply' });
      }, this.options.timeoutMs ?? 120_000);
      this.waiting = (reply) => {
        clearTimeout(timer);
        resolve(reply);
      };
    });
  }

  private onData(chunk: Buffer): void {
    this.buffer += chunk.toString('latin1');
    for (let end = this.buffer.indexOf('\r\n'); end !== -1; end = this.buffer.indexOf('\r\n')) {
      const line = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end + 2);
      this.pendingLines.push(line.slice(4));
      if (line[3] === '-') continue;
      this.deliver({ code: Number(line.slice(0, 3)) || 0, text: this.pendingLines.join('\n') });
      this.pendingLines = [];
    }
  }

  private deliver(reply: { code: number; text: string }): void {
    const waiting = this.waiting;
    this.waiting = null;
    if (waiting) waiting(reply);
    else this.replies.push(reply);
  }

  private onClose(): void {
    if (this.closed) return;
    this.closed = true;
    this.deliver({ code: 0, text: 'connection closed' });
  }
}

function summarise(results: MessageResult[], wallMs: number): LoadReport {
  const latencies = results.map((result) => result.latencyMs)
    .filter((value): value is number => value !== null).sort((a, b) => a - b);
  const codes: Record<string, number> = {};
  const examples: string[] = [];
  let mismatches = 0;
  for (const result of results) {
    const key = `${result.code}@${result.at}`;
    codes[key] = (codes[key] ?? 0) + 1;
    if (result.ok) continue;
    mismatches += 1;
    if (examples.length < 5) {
      examples.push(`${result.name}: ${result.code} at ${result.at} ${result.detail ?? ''}`.trim());
    }
  }
  const round = (value: number): number => roundTo(value, 2);
  return {
    sent: results.length,
    wallMs: Math.round(wallMs),
    perSecond: round(results.length / (wallMs / 1000)),
    latencyMs: {
      p50: round(percentile(latencies, 0.5)), p95: round(percentile(latencies, 0.95)),
      p99: round(percentile(latencies, 0.99)), max: round(latencies.at(-1) ?? 0),
      count: latencies.length,
    },
    codes,
    mismatches,
    examples,
  };
}
