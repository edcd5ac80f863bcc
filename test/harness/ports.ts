/*
 * Loopback ports and one-shot TCP exchanges for tests.
 *
 * freePort() is the gateway's own (src/runtime/free-port.ts): a port the OS just gave for
 * port 0, never the same one twice in one process.
 *
 * tcpExchange() sends one request and collects the reply until the server closes the
 * connection (or a predicate says the reply is complete), with a hard deadline. The clamd and
 * spamd harnesses use it for PING, and tests use it to talk raw protocol.
 */

import { connect } from 'node:net';

export const LOOPBACK = '127.0.0.1';

/** A TCP exchange did not complete. */
export class TcpExchangeError extends Error {
  constructor(
    readonly address: string,
    message: string,
    readonly received: Buffer,
    options?: { cause?: unknown },
  ) {
    super(`${address}: ${message}`, options);
    this.name = 'TcpExchangeError';
  }
}

/** A TCP port on 127.0.0.1 that nothing listened on a moment ago, never handed out twice. */
export { freePort } from '../../src/runtime/free-port';

/** Split "host:port" (IPv6 in brackets allowed) into its parts. */
export function splitAddress(address: string): { host: string; port: number } {
  const match = /^\[?([^\]]+?)\]?:(\d+)$/.exec(address);
  if (!match) throw new TcpExchangeError(address, 'not a host:port address', Buffer.alloc(0));
  return { host: match[1] as string, port: Number(match[2]) };
}

export interface TcpExchangeOptions {
  timeoutMs?: number;
  /** Stop reading (and close) as soon as this returns true for the bytes so far. */
  complete?: (received: Buffer) => boolean;
  /** Half-close our side after sending, as spamc does. */
  endAfterWrite?: boolean;
}

/** Send request to address, resolve with everything received. */
export function tcpExchange(
  address: string,
  request: Buffer | string | Array<Buffer | string>,
  options: TcpExchangeOptions = {},
): Promise<Buffer> {
  const { host, port } = splitAddress(address);
  const timeoutMs = options.timeoutMs ?? 10_000;
  const parts = Array.isArray(request) ? request : [request];

  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let settled = false;
    const socket = connect({ host, port });
    const received = (): Buffer => Buffer.concat(chunks);
    const finish = (error?: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (error) reject(error);
      else resolve(received());
    };
    const timer = setTimeout(() => {
      finish(new TcpExchangeError(address, `no complete reply in ${timeoutMs} ms`, received()));
    }, timeoutMs);

    socket.on('connect', () => {
      for (const part of parts) socket.write(part);
      if (options.endAfterWrite) socket.end();
    });
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      if (options.complete?.(received())) finish();
    });
    socket.on('end', () => finish());
    socket.on('close', () => finish());
    socket.on('error', (cause) => {
      finish(new TcpExchangeError(address, cause.message, received(), { cause }));
    });
  });
}
