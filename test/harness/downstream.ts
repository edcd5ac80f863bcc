/*
 * A real SMTP server standing in for the organisation's internal mailbox server, on a free
 * 127.0.0.1 port, built on the smtp-server package.
 *
 * It records each message it accepts: envelope, the message bytes after dot-unstuffing, and
 * the bytes received on the connection up to that moment (so a test can see CRLF and
 * dot-stuffing as they crossed the wire). A message is recorded at the moment the 250 for its
 * final dot is sent, never earlier: a message refused, or whose client hung up while the reply
 * was delayed, is not recorded.
 *
 * Behaviour a test can set: refuse a sender or recipient with a chosen code and text, a
 * chosen reply to the final dot (once or always), a delay before that reply, a refused
 * greeting, refused connections (the listener closed; acceptConnections() reopens it on the
 * same port), STARTTLS offered with a given certificate.
 *
 * Replies carry the text given, exactly: smtp-server's own enhanced status codes are off, so a
 * test writes `5.1.1 No such user` itself.
 *
 * LIMITATION: after STARTTLS the wire capture holds the decrypted bytes, not the TLS records.
 */

import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';

import { SMTPServer, type SMTPServerSession } from 'smtp-server';

import { LOOPBACK } from './ports';

export interface SmtpReply {
  code: number;
  text: string;
}

export interface DownstreamMessage {
  mailFrom: string;
  rcptTo: string[];
  helo: string;
  /** The message as the client meant it: dot-unstuffed, without the final dot line. */
  data: Buffer;
  /** Every byte the connection had received when the 250 was sent (decrypted after TLS). */
  wire: Buffer;
  connectionNumber: number;
  secure: boolean;
}

export interface DownstreamOptions {
  /** Offer STARTTLS with this key and certificate (PEM). Without it STARTTLS is not offered. */
  tls?: { key: Buffer | string; cert: Buffer | string };
  /** The name in the greeting and EHLO reply. */
  hostname?: string;
}

/** waitForMessages() ran out of time. */
export class DownstreamWaitError extends Error {
  constructor(wanted: number, got: number, timeoutMs: number) {
    super(`downstream: wanted ${wanted} message(s) within ${timeoutMs} ms, got ${got}`);
    this.name = 'DownstreamWaitError';
  }
}

interface WireCapture {
  number: number;
  chunks: Buffer[];
  socket: Socket;
}

function replyError(reply: SmtpReply): Error {
  return Object.assign(new Error(reply.text), { responseCode: reply.code });
}

/*
 * Copy what a socket receives without touching its flow: every chunk that node's stream
 * machinery pushes into the readable side is recorded first. A 'data' listener would instead
 * switch the socket to flowing mode before smtp-server has piped it anywhere.
 */
function tapSocket(socket: Socket, chunks: Buffer[]): void {
  const push = socket.push.bind(socket);
  socket.push = (chunk: unknown, encoding?: BufferEncoding): boolean => {
    if (Buffer.isBuffer(chunk)) chunks.push(Buffer.from(chunk));
    return push(chunk, encoding);
  };
}

export class Downstream {
  readonly host = LOOPBACK;
  readonly messages: DownstreamMessage[] = [];
  /** Connections accepted so far. */
  connections = 0;

  private readonly events = new EventEmitter();
  private readonly captures = new Map<string, WireCapture>();
  private readonly refusedSenders = new Map<string, SmtpReply>();
  private readonly refusedRecipients = new Map<string, SmtpReply>();
  private readonly onceDataReplies: SmtpReply[] = [];
  private dataReply: SmtpReply | undefined;
  private dataDelayMs = 0;
  private greetingRefusal: SmtpReply | undefined;
  private smtp: SMTPServer | undefined;
  private readonly retired: SMTPServer[] = [];

  private listeningPort = 0;

  private constructor(private readonly options: DownstreamOptions) {}

  get port(): number {
    return this.listeningPort;
  }

  get address(): string {
    return `${LOOPBACK}:${this.listeningPort}`;
  }

  static async start(options: DownstreamOptions = {}): Promise<Downstream> {
    const downstream = new Downstream(options);
    downstream.listeningPort = await downstream.listen(0);
    return downstream;
  }

  /** Reply to MAIL FROM:<address> with reply. */
  refuseSender(address: string, reply: SmtpReply): this {
    this.refusedSenders.set(address.toLowerCase(), reply);
    return this;
  }

  /** Reply to RCPT TO:<address> with reply, e.g. { code: 550, text: '5.1.1 No such user' }. */
  refuseRecipient(address: string, reply: SmtpReply): this {
    this.refusedRecipients.set(address.toLowerCase(), reply);
    return this;
  }

  /** Reply to every final dot with reply (a 2xx reply still records the message). */
  replyToData(reply: SmtpReply | undefined): this {
    this.dataReply = reply;
    return this;
  }

  /** Reply to the next final dot with reply; queued replies are used before replyToData's. */
  replyToNextData(reply: SmtpReply): this {
    this.onceDataReplies.push(reply);
    return this;
  }

  /** Wait ms after the final dot before replying. */
  delayDataReply(ms: number): this {
    this.dataDelayMs = ms;
    return this;
  }

  /** Greet new connections with reply (e.g. 421 or 554) instead of 220. */
  refuseGreeting(reply: SmtpReply | undefined): this {
    this.greetingRefusal = reply;
    return this;
  }

  /** Forget every refusal, reply, delay and recorded message. */
  reset(): this {
    this.refusedSenders.clear();
    this.refusedRecipients.clear();
    this.onceDataReplies.length = 0;
    this.dataReply = undefined;
    this.dataDelayMs = 0;
    this.greetingRefusal = undefined;
    this.messages.length = 0;
    this.connections = 0;
    return this;
  }

  /** Close the listener: new connections are refused, open ones go on. */
  async refuseConnections(): Promise<void> {
    const smtp = this.smtp;
    if (!smtp) return;
    this.smtp = undefined;
    this.retired.push(smtp);
    await new Promise<void>((resolve) => smtp.server.close(() => resolve()));
  }

  /** Listen again on the same port after refuseConnections(). */
  async acceptConnections(): Promise<void> {
    if (this.smtp) return;
    await this.listen(this.listeningPort);
  }

  /** Resolve with the messages once at least count are recorded. */
  waitForMessages(count: number, timeoutMs = 10_000): Promise<DownstreamMessage[]> {
    if (this.messages.length >= count) return Promise.resolve(this.messages.slice());
    return new Promise((resolve, reject) => {
      const onMessage = (): void => {
        if (this.messages.length < count) return;
        clearTimeout(timer);
        this.events.off('message', onMessage);
        resolve(this.messages.slice());
      };
      const timer = setTimeout(() => {
        this.events.off('message', onMessage);
        reject(new DownstreamWaitError(count, this.messages.length, timeoutMs));
      }, timeoutMs);
      this.events.on('message', onMessage);
    });
  }

  async stop(): Promise<void> {
    for (const capture of this.captures.values()) capture.socket.destroy();
    const servers = [...this.retired, ...(this.smtp ? [this.smtp] : [])];
    this.smtp = undefined;
    await Promise.all(servers.map((smtp) => new Promise<void>((resolve) => smtp.close(resolve))));
  }

  private listen(port: number): Promise<number> {
    const smtp = new SMTPServer({
      name: this.options.hostname ?? 'mailstore.test',
      banner: 'test mailbox server',
      logger: false,
      authOptional: true,
      disabledCommands: this.options.tls ? ['AUTH'] : ['AUTH', 'STARTTLS'],
      ...(this.options.tls ? { key: this.options.tls.key, cert: this.options.tls.cert } : {}),
      closeTimeout: 200,
      onConnect: (_session, callback) => {
        callback(this.greetingRefusal ? replyError(this.greetingRefusal) : null);
      },
      onSecure: (socket, session, callback) => {
        // From here on the client's bytes arrive decrypted on the TLS socket.
        const capture = this.captureFor(session);
        if (capture) tapSocket(socket as Socket, capture.chunks);
        callback();
      },
      onMailFrom: (address, _session, callback) => {
        const refusal = this.refusedSenders.get(address.address.toLowerCase());
        callback(refusal ? replyError(refusal) : null);
      },
      onRcptTo: (address, _session, callback) => {
        const refusal = this.refusedRecipients.get(address.address.toLowerCase());
        callback(refusal ? replyError(refusal) : null);
      },
      onData: (stream, session, callback) => {
        const chunks: Buffer[] = [];
        stream.on('data', (chunk: Buffer) => chunks.push(chunk));
        stream.on('end', () => {
          void this.finishData(Buffer.concat(chunks), session, callback);
        });
      },
    });
    smtp.on('error', () => {
      // Client resets and the like; the test sees their effect on the messages recorded.
    });
    smtp.server.on('connection', (socket: Socket) => this.onSocket(socket));

    return new Promise((resolve, reject) => {
      smtp.server.once('error', reject);
      smtp.listen(port, LOOPBACK, () => {
        smtp.server.off('error', reject);
        this.smtp = smtp;
        resolve((smtp.server.address() as { port: number }).port);
      });
    });
  }

  private onSocket(socket: Socket): void {
    this.connections += 1;
    const capture: WireCapture = { number: this.connections, chunks: [], socket };
    const key = `${socket.remoteAddress}:${socket.remotePort}`;
    this.captures.set(key, capture);
    tapSocket(socket, capture.chunks);
    socket.once('close', () => this.captures.delete(key));
  }

  private captureFor(session: SMTPServerSession): WireCapture | undefined {
    return this.captures.get(`${session.remoteAddress}:${session.remotePort}`);
  }

  private async finishData(
    data: Buffer,
    session: SMTPServerSession,
    callback: (error?: Error | null, message?: string) => void,
  ): Promise<void> {
    const reply = this.onceDataReplies.shift() ?? this.dataReply ?? { code: 250, text: '' };
    if (this.dataDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.dataDelayMs));

    // A client that hung up while we waited gets no reply, so nothing was accepted.
    const capture = this.captureFor(session);
    if (!capture || capture.socket.destroyed || !capture.socket.writable) {
      return callback(replyError({ code: 451, text: 'client went away' }));
    }
    if (reply.code >= 300) return callback(replyError(reply));

    this.messages.push({
      mailFrom: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
      rcptTo: session.envelope.rcptTo.map((recipient) => recipient.address),
      helo: session.hostNameAppearsAs,
      data,
      wire: Buffer.concat(capture.chunks),
      connectionNumber: capture.number,
      secure: session.secure,
    });
    this.events.emit('message');
    callback(null, reply.text || `2.0.0 queued as test-${this.messages.length}`);
  }
}

export function startDownstream(options: DownstreamOptions = {}): Promise<Downstream> {
  return Downstream.start(options);
}
