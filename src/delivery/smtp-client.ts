/*
 * One SMTP client connection to the downstream (internal) mail server.
 *
 * Connects with a deadline, reads the greeting, says EHLO (HELO if EHLO is refused), upgrades
 * with STARTTLS according to DownstreamConfig.tls, then runs transactions: MAIL FROM (SIZE=,
 * BODY=8BITMIME when offered), RCPT TO (pipelined when PIPELINING is offered), DATA with a
 * dot-stuffed, CRLF-checked body streamed with backpressure, RSET and QUIT.
 *
 * Every wait has a deadline: connectTimeoutMs for the TCP connect and the greeting together (one
 * deadline from the connect to the 220, so a server that accepts and then says nothing counts
 * as down, not slow) and for the TLS handshake; commandTimeoutMs for each later reply and each
 * socket drain; dataTimeoutMs for the reply to the final dot. A missed deadline, a socket error
 * or an unparsable reply destroys the socket; the client is then dead for good (`usable` is
 * false) and every later call throws the same DownstreamError.
 *
 * Needs: network access to the downstream; the CA file if one is configured. The downstream is
 * trusted to be our own server, but its replies are still parsed defensively (see reply.ts).
 *
 * LIMITATION: with tls=opportunistic a STARTTLS handshake that fails leaves the connection
 * dead and the message is deferred; there is no retry in plain text (Postfix would retry).
 */
import net from 'node:net';
import tls from 'node:tls';
import type { Readable } from 'node:stream';

import type { DownstreamConfig, HostPort } from '../config/types';
import { DotStuffer } from './dot-stuff';
import {
  DownstreamError,
  MessageInputError,
  type DownstreamFailure,
  type SmtpStage,
} from './errors';
import { ReplyParser, replyClass, type SmtpReply } from './reply';
import { connectTcp, isTlsError, parseExtensions, tlsOptions } from './transport';

export type ClientConfig = Pick<
  DownstreamConfig,
  | 'tls'
  | 'caFile'
  | 'tlsName'
  | 'heloName'
  | 'connectTimeoutMs'
  | 'commandTimeoutMs'
  | 'dataTimeoutMs'
>;

/** Replies to one transaction's MAIL and RCPT commands, RCPT replies in recipient order. */
export interface EnvelopeReplies {
  mail: SmtpReply;
  /** Empty when MAIL was refused and the RCPTs were not sent (no PIPELINING). */
  rcpts: SmtpReply[];
}

type FailureHook = (error: DownstreamError) => void;

export class SmtpClient {
  readonly downstream: string;
  /** EHLO keywords (upper case) and their parameters. Empty after HELO. */
  extensions = new Map<string, string>();
  tls = false;
  /** Messages whose final dot got a reply on this connection. */
  messagesSent = 0;

  private socket: net.Socket;
  /** The TCP socket under a TLS socket after STARTTLS (the same as `socket` before). */
  private readonly tcpSocket: net.Socket;
  /** The step we are waiting on, so a socket error can say where it happened. */
  private stage: SmtpStage = 'greeting';
  private parser = new ReplyParser();
  private replies: SmtpReply[] = [];
  private failure: DownstreamError | null = null;
  private failureHooks = new Set<FailureHook>();
  private quitting = false;
  /**
   * True from our MAIL until the server has ended that transaction (its reply to the final
   * dot, or 250 to RSET). A connection without one open needs no RSET before the next MAIL.
   */
  private transactionOpen = false;

  private constructor(
    private readonly config: ClientConfig,
    private readonly address: HostPort,
    socket: net.Socket,
  ) {
    this.downstream = `${address.host}:${address.port}`;
    this.socket = socket;
    this.tcpSocket = socket;
    this.attach(socket);
  }

  /** Opens a connection ready for a transaction (greeting, EHLO, STARTTLS done). */
  static async open(config: ClientConfig, address: HostPort): Promise<SmtpClient> {
    const started = performance.now();
    const socket = await connectTcp(address, config.connectTimeoutMs);
    const client = new SmtpClient(config, address, socket);
    try {
      // What the connect left of connectTimeoutMs is the greeting's deadline.
      const greetingMs = Math.max(1, Math.round(config.connectTimeoutMs
        - (performance.now() - started)));
      await client.startSession(greetingMs);
    } catch (error) {
      client.destroy();
      throw error;
    }
    return client;
  }

  /** False once the socket is gone or the server said something we did not ask for. */
  get usable(): boolean {
    return this.failure === null && !this.quitting && this.replies.length === 0;
  }

  /** Called once when the connection dies (used by the pool to drop idle connections). */
  onFailure(hook: FailureHook): void {
    this.failureHooks.add(hook);
  }

  /** Sends MAIL FROM and one RCPT TO per recipient. Throws DownstreamError. */
  async sendEnvelope(
    sender: string,
    recipients: string[],
    sizeBytes: number | null,
  ): Promise<EnvelopeReplies> {
    const mailLine = `MAIL FROM:<${sender}>${this.mailParameters(sender, recipients, sizeBytes)}`;
    this.transactionOpen = true;
    const rcptLines = recipients.map((recipient) => `RCPT TO:<${recipient}>`);

    if (this.extensions.has('PIPELINING')) {
      // One write; the server answers in order, so read every reply to stay in step.
      this.write(Buffer.from([mailLine, ...rcptLines].map((line) => `${line}\r\n`).join('')));
      const mail = await this.readReply('mail', this.config.commandTimeoutMs);
      const rcpts: SmtpReply[] = [];
      try {
        for (let index = 0; index < rcptLines.length; index++) {
          rcpts.push(await this.readReply('rcpt', this.config.commandTimeoutMs));
        }
      } catch (error) {
        // A server refusing MAIL (often 421, then closing) need not answer the RCPTs.
        if (replyClass(mail.code) === 2) throw error;
        return { mail, rcpts: [] };
      }
      return { mail, rcpts };
    }

    const mail = await this.command(mailLine, 'mail');
    if (replyClass(mail.code) !== 2) return { mail, rcpts: [] };
    const rcpts: SmtpReply[] = [];
    for (const line of rcptLines) rcpts.push(await this.command(line, 'rcpt'));
    return { mail, rcpts };
  }

  /**
   * Sends DATA, streams the message and returns the reply to the final dot (or the refusal of
   * DATA itself, a reply other than 354). Throws DownstreamError, or MessageInputError after
   * destroying the socket so the downstream discards the partial message.
   */
  async sendData(message: Readable): Promise<SmtpReply> {
    const dataReply = await this.command('DATA', 'data');
    if (dataReply.code !== 354) {
      message.destroy();
      return dataReply;
    }

    const stuffer = new DotStuffer();
    try {
      // Each chunk is written once the next one has arrived, so that the last one and the
      // final dot leave together: a typical message is one chunk, and one write instead of two.
      let held: Buffer | null = null;
      for await (const chunk of message) {
        const bytes = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk), 'latin1');
        if (held) await this.writeWithBackpressure(held);
        held = stuffer.push(bytes);
      }
      await this.writeLast(held, stuffer.finish());
    } catch (error) {
      message.destroy();
      if (error instanceof DownstreamError) throw error;
      this.destroy();
      if (error instanceof MessageInputError) throw error;
      throw new MessageInputError('reading the message failed', -1, { cause: error });
    }

    const finalReply = await this.readReply('final-dot', this.config.dataTimeoutMs);
    // Whatever the reply, the final dot ended the transaction (RFC 5321 4.1.1.4).
    this.transactionOpen = false;
    this.messagesSent++;
    return finalReply;
  }

  /** Whether a transaction of ours is still open on this connection (see transactionOpen). */
  get needsReset(): boolean {
    return this.transactionOpen;
  }

  /** RSET; true when the server answered 250 and the connection may be reused. */
  async reset(): Promise<boolean> {
    try {
      const reply = await this.command('RSET', 'rset');
      if (reply.code === 250) this.transactionOpen = false;
      return reply.code === 250;
    } catch {
      return false;
    }
  }

  /** Polite close: QUIT, wait briefly for 221, then close the socket. Never throws. */
  async quit(): Promise<void> {
    if (this.failure !== null || this.quitting) return this.destroy();
    this.quitting = true;
    try {
      await this.command('QUIT', 'quit');
    } catch {
      // A server that does not answer QUIT is closed anyway.
    }
    this.destroy();
  }

  /** Closes the socket at once. The client is dead afterwards. */
  destroy(): void {
    if (this.failure === null) {
      this.fail(new DownstreamError('closed', 'quit', this.downstream, 'closed by Moat'));
    }
  }

  // ---- session setup ----

  private async startSession(greetingMs: number): Promise<void> {
    const greeting = await this.readReply('greeting', greetingMs);
    if (greeting.code !== 220) throw this.refusal('greeting', greeting);
    await this.hello();
    if (this.config.tls === 'off') return;

    if (!this.extensions.has('STARTTLS')) {
      if (this.config.tls === 'opportunistic') return;
      throw new DownstreamError('tls', 'starttls', this.downstream, 'STARTTLS not offered');
    }
    const reply = await this.command('STARTTLS', 'starttls');
    if (reply.code !== 220) {
      if (this.config.tls === 'opportunistic') return;
      throw this.refusal('starttls', reply);
    }
    await this.upgradeToTls();
    await this.hello();
  }

  private async hello(): Promise<void> {
    const ehlo = await this.command(`EHLO ${this.config.heloName}`, 'ehlo');
    if (ehlo.code === 250) {
      this.extensions = parseExtensions(ehlo.lines.slice(1));
      return;
    }
    if (replyClass(ehlo.code) !== 5) throw this.refusal('ehlo', ehlo);

    const helo = await this.command(`HELO ${this.config.heloName}`, 'ehlo');
    if (helo.code !== 250) throw this.refusal('ehlo', helo);
    this.extensions = new Map();
  }

  private async upgradeToTls(): Promise<void> {
    // Bytes after the 220 would have been sent in plain text by whoever is on the wire.
    if (this.replies.length > 0 || this.parser.hasPartial()) {
      throw this.fail(new DownstreamError('protocol', 'starttls', this.downstream,
        'data after the STARTTLS reply'));
    }
    let options: tls.ConnectionOptions;
    try {
      options = await tlsOptions(this.config, this.address.host);
    } catch (error) {
      throw this.fail(new DownstreamError('tls', 'starttls', this.downstream,
        `cannot read CA file ${this.config.caFile}`, { cause: error }));
    }

    const plain = this.socket;
    plain.removeAllListeners('data');
    plain.removeAllListeners('close');
    plain.on('error', () => undefined);
    const secure = tls.connect({ ...options, socket: plain });
    this.socket = secure;
    this.attach(secure);
    await this.waitFor('starttls', this.config.connectTimeoutMs, (done) => {
      secure.once('secureConnect', done);
      return () => secure.removeListener('secureConnect', done);
    });
    this.tls = true;
  }

  // ---- commands and replies ----

  private async command(line: string, stage: SmtpStage): Promise<SmtpReply> {
    this.write(Buffer.from(`${line}\r\n`));
    return this.readReply(stage, this.config.commandTimeoutMs);
  }

  private write(bytes: Buffer): void {
    if (this.failure) throw this.failure;
    this.socket.write(bytes);
  }

  /** `last` and `tail` in one writev (corked), then the same wait for drain as any write. */
  private async writeLast(last: Buffer | null, tail: Buffer): Promise<void> {
    if (!last) return this.writeWithBackpressure(tail);
    if (this.failure) throw this.failure;
    const socket = this.socket;
    socket.cork();
    socket.write(last);
    const room = socket.write(tail);
    socket.uncork();
    if (!room) await this.drained(socket);
  }

  private async writeWithBackpressure(bytes: Buffer): Promise<void> {
    if (this.failure) throw this.failure;
    if (!this.socket.write(bytes)) await this.drained(this.socket);
  }

  private async drained(socket: net.Socket): Promise<void> {
    await this.waitFor('data', this.config.commandTimeoutMs, (done) => {
      socket.once('drain', done);
      return () => socket.removeListener('drain', done);
    });
  }

  private async readReply(stage: SmtpStage, timeoutMs: number): Promise<SmtpReply> {
    let reply: SmtpReply | undefined;
    await this.waitFor(stage, timeoutMs, (done) => {
      const check = (): void => {
        reply = this.replies.shift();
        if (reply) done();
      };
      this.replyListener = check;
      check();
      return () => {
        this.replyListener = null;
      };
    });
    if (!reply) throw new DownstreamError('protocol', stage, this.downstream, 'no reply');
    return reply;
  }

  private replyListener: (() => void) | null = null;

  /**
   * Waits until `start`'s callback fires, the connection fails, or the deadline passes (which
   * destroys the socket). `start` returns its own cleanup.
   */
  private waitFor(
    stage: SmtpStage,
    timeoutMs: number,
    start: (done: () => void) => () => void,
  ): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      let cleanup = (): void => undefined;
      const finish = (error: DownstreamError | null): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.failureHooks.delete(onFailure);
        cleanup();
        if (error) reject(error);
        else resolve();
      };
      const onFailure: FailureHook = (error) => finish(error);
      const timer = setTimeout(() => {
        this.fail(new DownstreamError('timeout', stage, this.downstream,
          `no progress within ${timeoutMs} ms`));
      }, timeoutMs);
      this.failureHooks.add(onFailure);
      this.stage = stage;
      const stop = start(() => finish(null));
      if (settled) stop();
      else cleanup = stop;
    });
  }

  private attach(socket: net.Socket): void {
    socket.on('data', (chunk: Buffer) => this.onBytes(chunk));
    socket.on('error', (error) => this.onSocketGone('closed', error));
    socket.on('close', () => this.onSocketGone('closed', null));
  }

  private onBytes(chunk: Buffer): void {
    try {
      this.replies.push(...this.parser.push(chunk));
    } catch (error) {
      this.fail(new DownstreamError('protocol', this.stage, this.downstream, 'unparsable reply',
        { cause: error }));
      return;
    }
    this.replyListener?.();
  }

  private onSocketGone(failure: DownstreamFailure, cause: Error | null): void {
    const tlsProblem = cause !== null && isTlsError(cause);
    const detail = cause ? cause.message : 'connection closed by the server';
    this.fail(new DownstreamError(tlsProblem ? 'tls' : failure, this.stage, this.downstream, detail,
      { cause }));
  }

  /** Records the first failure, destroys the socket and wakes every waiter. */
  private fail(error: DownstreamError): DownstreamError {
    if (this.failure) return this.failure;
    this.failure = error;
    this.socket.destroy();
    this.tcpSocket.destroy();
    for (const hook of [...this.failureHooks]) hook(error);
    this.failureHooks.clear();
    return error;
  }

  private refusal(stage: SmtpStage, reply: SmtpReply): DownstreamError {
    return new DownstreamError('protocol', stage, this.downstream,
      `refused with ${reply.code} ${reply.text.slice(0, 120)}`);
  }

  private mailParameters(sender: string, recipients: string[], sizeBytes: number | null): string {
    const parameters: string[] = [];
    if (sizeBytes !== null && this.extensions.has('SIZE')) parameters.push(`SIZE=${sizeBytes}`);
    if (this.extensions.has('8BITMIME')) parameters.push('BODY=8BITMIME');
    const needsUtf8 = [sender, ...recipients].some((address) => /[^\x00-\x7f]/.test(address));
    if (needsUtf8 && this.extensions.has('SMTPUTF8')) parameters.push('SMTPUTF8');
    return parameters.map((parameter) => ` ${parameter}`).join('');
  }

  /** The SIZE limit the server announced, or null when it announced none. */
  get maxMessageSize(): number | null {
    const limit = Number(this.extensions.get('SIZE'));
    return Number.isSafeInteger(limit) && limit > 0 ? limit : null;
  }
}
