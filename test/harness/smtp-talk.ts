/*
 * A raw-socket SMTP client for tests that need control of every byte: smuggling attempts
 * (bare CR or LF, odd dot lines), pipelining, PROXY headers, early talking, abrupt hang-ups.
 *
 * It sends exactly what it is given, nothing more (no dot-stuffing, no line-end repair), and
 * reads replies as the server sends them: a reply is complete at a line `ddd ` or `ddd`, after
 * any number of `ddd-` continuation lines. sendMail() is the convenience for an ordinary
 * transaction; it returns every reply in order.
 */

import { connect as connectTcp, type Socket } from 'node:net';
import { connect as connectTls, type ConnectionOptions } from 'node:tls';

export { proxyV1Header, proxyV2Header } from './proxy-header';

export interface SmtpTalkReply {
  code: number;
  /** The text of each line, without the code and separator. */
  lines: string[];
  /** The reply as received, line ends included. */
  raw: string;
}

/** The conversation did not go as the test expected. */
export class SmtpTalkError extends Error {
  constructor(
    message: string,
    readonly reply?: SmtpTalkReply,
    options?: { cause?: unknown },
  ) {
    super(reply ? `${message}; got: ${reply.raw.trimEnd()}` : message, options);
    this.name = 'SmtpTalkError';
  }
}

const DEFAULT_TIMEOUT_MS = 10_000;

export class SmtpTalk {
  private buffered = '';
  private readonly replies: SmtpTalkReply[] = [];
  private waiter: (() => void) | undefined;
  private ended = false;
  private socket: Socket;

  private constructor(socket: Socket) {
    this.socket = socket;
    this.listen(socket);
  }

  /** Connect, and send the PROXY header first if given. The greeting is not read. */
  static connect(
    host: string,
    port: number,
    options: { proxy?: Buffer | string; timeoutMs?: number } = {},
  ): Promise<SmtpTalk> {
    return new Promise((resolve, reject) => {
      const socket = connectTcp({ host, port });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new SmtpTalkError(`connect to ${host}:${port} timed out`));
      }, options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
      socket.once('error', (cause) => {
        clearTimeout(timer);
        const message = `connect to ${host}:${port}: ${cause.message}`;
        reject(new SmtpTalkError(message, undefined, { cause }));
      });
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        if (options.proxy !== undefined) socket.write(options.proxy);
        resolve(new SmtpTalk(socket));
      });
    });
  }

  /** True once the server closed the connection (or we did). */
  get closed(): boolean {
    return this.ended;
  }

  /** Write bytes exactly as given. */
  send(bytes: Buffer | string): void {
    this.socket.write(bytes);
  }

  /** The next complete reply; rejects if none arrives in time or the connection closes. */
  async readReply(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<SmtpTalkReply> {
    const deadline = Date.now() + timeoutMs;
    while (this.replies.length === 0) {
      if (this.ended) throw new SmtpTalkError(`connection closed; pending: ${this.buffered}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new SmtpTalkError(`no reply within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiter = undefined;
    }
    return this.replies.shift() as SmtpTalkReply;
  }

  /** Read a reply and insist on its code. */
  async expect(code: number, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<SmtpTalkReply> {
    const reply = await this.readReply(timeoutMs);
    if (reply.code !== code) throw new SmtpTalkError(`expected ${code}`, reply);
    return reply;
  }

  /** Send one command line (CRLF added) and read its reply. */
  async command(line: string, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<SmtpTalkReply> {
    this.send(`${line}\r\n`);
    return this.readReply(timeoutMs);
  }

  /**
   * STARTTLS, expect 220, then run TLS over the same socket. `pipelined` is sent in the same
   * write right after the STARTTLS line, as a command-injection attacker would.
   */
  async startTls(options: ConnectionOptions = {}, pipelined = ''): Promise<void> {
    this.send(`STARTTLS\r\n${pipelined}`);
    await this.readReply().then((reply) => {
      if (reply.code !== 220) throw new SmtpTalkError('STARTTLS refused', reply);
    });
    const plain = this.socket;
    plain.removeAllListeners('data');
    plain.removeAllListeners('close');
    const secure = connectTls({ servername: 'localhost', ...options, socket: plain });
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', resolve);
      secure.once('error', (cause) => {
        reject(new SmtpTalkError('TLS handshake failed', undefined, { cause }));
      });
    });
    this.socket = secure;
    this.listen(secure);
  }

  /** Resolve true when the server closes the connection within timeoutMs, else false. */
  async waitForClose(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.ended && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, deadline - Date.now());
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiter = undefined;
    }
    return this.ended;
  }

  /** Hang up at once, without QUIT. */
  close(): void {
    this.socket.destroy();
    this.ended = true;
  }

  private listen(socket: Socket): void {
    socket.on('data', (chunk: Buffer) => {
      this.buffered += chunk.toString('latin1');
      this.parseReplies();
      this.waiter?.();
    });
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      this.ended = true;
      this.waiter?.();
    });
  }

  private parseReplies(): void {
    for (;;) {
      const lines: string[] = [];
      let offset = 0;
      let complete = false;
      while (!complete) {
        const end = this.buffered.indexOf('\n', offset);
        if (end === -1) return;
        const line = this.buffered.slice(offset, end).replace(/\r$/, '');
        offset = end + 1;
        lines.push(line);
        complete = !/^\d{3}-/.test(line);
      }
      const raw = this.buffered.slice(0, offset);
      this.buffered = this.buffered.slice(offset);
      this.replies.push({
        code: Number(lines[lines.length - 1]?.slice(0, 3)),
        lines: lines.map((line) => line.slice(4)),
        raw,
      });
    }
  }
}

export interface SendMailOptions {
  host: string;
  port: number;
  helo?: string;
  from: string;
  to: string[];
  /**
   * The message. Lines starting with "." are dot-stuffed and the final ".\r\n" added, unless
   * rawData is set: then data goes out exactly as given and must carry its own terminator.
   */
  data: Buffer | string;
  rawData?: boolean;
  /** A PROXY header (see proxyV1Header/proxyV2Header) sent before anything else. */
  proxy?: Buffer | string;
  timeoutMs?: number;
}

export interface SendMailStep {
  /** 'greeting', 'EHLO', 'MAIL', 'RCPT <address>', 'DATA', 'message', 'QUIT' */
  step: string;
  reply: SmtpTalkReply;
}

/** Dot-stuff a message and add the final dot line. */
export function dotStuff(data: Buffer | string): Buffer {
  let text = Buffer.isBuffer(data) ? data.toString('latin1') : Buffer.from(data).toString('latin1');
  if (!text.endsWith('\r\n')) text += '\r\n';
  const stuffed = text.replace(/(^|\r\n)\./g, '$1..');
  return Buffer.from(`${stuffed}.\r\n`, 'latin1');
}

/**
 * One ordinary transaction: greeting, EHLO, MAIL, each RCPT, DATA, the message, QUIT. Stops
 * (with QUIT) at the first reply that refuses the transaction; returns every reply in order.
 * A connection the server closes ends the list early rather than throwing.
 */
export async function sendMail(options: SendMailOptions): Promise<SendMailStep[]> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const connectOptions = { timeoutMs, ...(options.proxy ? { proxy: options.proxy } : {}) };
  const talk = await SmtpTalk.connect(options.host, options.port, connectOptions);
  const steps: SendMailStep[] = [];
  const record = async (step: string, line?: Buffer | string): Promise<number> => {
    if (line !== undefined) talk.send(line);
    const reply = await talk.readReply(timeoutMs);
    steps.push({ step, reply });
    return reply.code;
  };

  try {
    if ((await record('greeting')) !== 220) return steps;
    if ((await record('EHLO', `EHLO ${options.helo ?? 'client.example.org'}\r\n`)) !== 250) {
      return steps;
    }
    if ((await record('MAIL', `MAIL FROM:<${options.from}>\r\n`)) !== 250) {
      await record('QUIT', 'QUIT\r\n');
      return steps;
    }
    let accepted = 0;
    for (const recipient of options.to) {
      const code = await record(`RCPT ${recipient}`, `RCPT TO:<${recipient}>\r\n`);
      if (code >= 200 && code < 300) accepted += 1;
    }
    if (accepted === 0 || (await record('DATA', 'DATA\r\n')) !== 354) {
      await record('QUIT', 'QUIT\r\n');
      return steps;
    }
    await record('message', options.rawData ? options.data : dotStuff(options.data));
    await record('QUIT', 'QUIT\r\n');
    return steps;
  } catch (error) {
    if (talk.closed) return steps;
    throw error;
  } finally {
    talk.close();
  }
}
