/*
 * Test-only: a real SMTP server on 127.0.0.1 (port chosen by the OS) standing in for the
 * downstream mail server, built on the `smtp-server` package.
 *
 * It records each message's envelope and the bytes it received (after SMTP un-stuffing, i.e.
 * what a mailbox server would store), and can be told to refuse chosen recipients, to answer
 * the final dot with an error, to delay that answer, and to offer STARTTLS with a given
 * certificate. A message is recorded only when the server actually sends its 250: if the
 * client went away during a delay, the message is not recorded, as a compliant server would
 * discard it. Never used outside tests.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SMTPServer, type SMTPServerOptions, type SMTPServerSession } from 'smtp-server';

import { Readable } from 'node:stream';

import type { DownstreamConfig, HostPort } from '../config/types';

export interface RecordedMessage {
  sender: string;
  recipients: string[];
  bytes: Buffer;
  /** MAIL FROM parameters as the server parsed them, e.g. { SIZE: '123', BODY: '8BITMIME' }. */
  mailParameters: Record<string, string>;
  /** Index of the TCP connection (0 = first) that carried the message. */
  connection: number;
}

export interface ServerReply {
  code: number;
  message: string;
}

export interface RecordingServerOptions {
  /** Offer STARTTLS with this key and certificate. */
  tls?: { key: Buffer; cert: Buffer };
  /** Announce SIZE with this limit. */
  size?: number;
  /** Close connections idle this long (smtp-server sends 421 first). */
  idleTimeoutMs?: number;
}

export class RecordingServer {
  readonly messages: RecordedMessage[] = [];
  connections = 0;
  /** Recipients to refuse at RCPT, by lower-case address. */
  readonly refuse = new Map<string, ServerReply>();
  /** Reply to the final dot instead of 250, when set. */
  finalReply: ServerReply | null = null;
  /** Wait this long before answering the final dot. */
  finalDelayMs = 0;
  /** Sessions whose TCP connection has closed. */
  private closedSessions = new Set<string>();
  private connectionIndex = new Map<string, number>();
  private server: SMTPServer;
  private port = 0;

  private constructor(options: RecordingServerOptions) {
    const serverOptions: SMTPServerOptions = {
      logger: false,
      disableReverseLookup: true,
      authOptional: true,
      disabledCommands: ['AUTH'],
      hideSTARTTLS: options.tls === undefined,
      hideENHANCEDSTATUSCODES: false,
      size: options.size ?? 0,
      socketTimeout: options.idleTimeoutMs ?? 60_000,
      onConnect: (session, callback) => {
        this.connectionIndex.set(session.id, this.connections++);
        callback();
      },
      onClose: (session) => {
        this.closedSessions.add(session.id);
      },
      onRcptTo: (address, _session, callback) => {
        const refusal = this.refuse.get(address.address.toLowerCase());
        if (!refusal) return callback();
        callback(replyError(refusal));
      },
      onData: (stream, session, callback) => {
        const chunks: Buffer[] = [];
        stream.on('data', (chunk: Buffer) => chunks.push(chunk));
        stream.on('end', () => {
          setTimeout(() => this.answerData(session, Buffer.concat(chunks), callback),
            this.finalDelayMs);
        });
      },
    };
    if (options.tls) {
      serverOptions.key = options.tls.key;
      serverOptions.cert = options.tls.cert;
    }
    this.server = new SMTPServer(serverOptions);
    this.server.on('error', () => undefined);
  }

  static async start(options: RecordingServerOptions = {}): Promise<RecordingServer> {
    const recorder = new RecordingServer(options);
    await new Promise<void>((resolve) => recorder.server.listen(0, '127.0.0.1', resolve));
    recorder.port = (recorder.server.server.address() as AddressInfo).port;
    return recorder;
  }

  get address(): HostPort {
    return { host: '127.0.0.1', port: this.port };
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private answerData(
    session: SMTPServerSession,
    bytes: Buffer,
    callback: (error?: Error | null) => void,
  ): void {
    if (this.closedSessions.has(session.id)) return callback(new Error('client gone'));
    if (this.finalReply) return callback(replyError(this.finalReply));
    const { mailFrom, rcptTo } = session.envelope;
    this.messages.push({
      sender: mailFrom ? mailFrom.address : '',
      mailParameters: Object.fromEntries(Object.entries(mailFrom ? mailFrom.args || {} : {})
        .map(([name, value]) => [name, String(value)])),
      recipients: rcptTo.map((recipient) => recipient.address),
      bytes,
      connection: this.connectionIndex.get(session.id) ?? -1,
    });
    callback();
  }
}

function replyError(reply: ServerReply): Error {
  const error = new Error(reply.message) as Error & { responseCode: number };
  error.responseCode = reply.code;
  return error;
}

/** A fresh self-signed certificate for `localhost` and 127.0.0.1, made with the openssl CLI. */
export function makeSelfSignedCertificate(): { key: Buffer; cert: Buffer; certPath: string } {
  const directory = mkdtempSync(path.join(tmpdir(), 'moat-delivery-tls-'));
  const keyPath = path.join(directory, 'key.pem');
  const certPath = path.join(directory, 'cert.pem');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2',
    '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
    '-keyout', keyPath, '-out', certPath,
  ], { stdio: 'ignore' });
  return { key: readFileSync(keyPath), cert: readFileSync(certPath), certPath };
}

/** A downstream configuration with small deadlines, for tests. */
export function testDownstreamConfig(
  address: HostPort | null,
  overrides: Partial<DownstreamConfig> = {},
): DownstreamConfig {
  return {
    address,
    tls: 'off',
    caFile: null,
    tlsName: null,
    heloName: 'moat.test.example',
    connectTimeoutMs: 1000,
    commandTimeoutMs: 1000,
    dataTimeoutMs: 1000,
    poolSize: 2,
    poolIdleMs: 5000,
    maxMessagesPerConnection: 100,
    verifyCachePositiveMs: 0,
    verifyCacheNegativeMs: 0,
    ...overrides,
  };
}

/** A message source that hands out `raw` in pieces of `chunkSize` bytes. */
export function messageSource(raw: string | Buffer, chunkSize = 64 * 1024): () => Readable {
  const bytes = Buffer.isBuffer(raw) ? raw : Buffer.from(raw, 'latin1');
  return () => {
    const chunks: Buffer[] = [];
    for (let start = 0; start < bytes.length; start += chunkSize) {
      chunks.push(bytes.subarray(start, start + chunkSize));
    }
    return Readable.from(chunks);
  };
}

/** A loopback port on which nothing listens (bound by the OS, then released). */
export async function closedPort(): Promise<HostPort> {
  const { createServer } = await import('node:net');
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return { host: '127.0.0.1', port };
}
