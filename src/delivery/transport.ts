/*
 * Small transport helpers for the downstream SMTP client: the TCP connect with its deadline,
 * the STARTTLS options, recognising TLS errors, and reading EHLO keywords. The SMTP dialogue
 * itself lives in smtp-client.ts.
 */
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import type tls from 'node:tls';
import { checkServerIdentity } from 'node:tls';

import type { DownstreamConfig, HostPort } from '../config/types';
import { DownstreamError } from './errors';

/** EHLO reply lines after the first, as keyword (upper case) -> parameters. */
export function parseExtensions(lines: string[]): Map<string, string> {
  const extensions = new Map<string, string>();
  for (const line of lines) {
    const [keyword = '', ...parameters] = line.trim().split(/\s+/);
    if (keyword !== '') extensions.set(keyword.toUpperCase(), parameters.join(' '));
  }
  return extensions;
}

/** True when a socket error came from the TLS layer (handshake or certificate check). */
export function isTlsError(error: Error): boolean {
  const code = (error as NodeJS.ErrnoException).code ?? '';
  return /CERT|SSL|TLS|SELF_SIGNED|HOSTNAME|ALTNAME|ERR_TLS/.test(code);
}

/** Opens a TCP connection or fails with a 'connect' DownstreamError within `timeoutMs`. */
export function connectTcp(address: HostPort, timeoutMs: number): Promise<net.Socket> {
  const downstream = `${address.host}:${address.port}`;
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: address.host, port: address.port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new DownstreamError('connect', 'connect', downstream,
        `no connection within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      // Commands and the final dot are small writes waiting on a reply: do not let Nagle's
      // algorithm hold them back for a delayed ACK.
      socket.setNoDelay(true);
      socket.removeAllListeners('error');
      resolve(socket);
    });
    socket.once('error', (error) => {
      clearTimeout(timer);
      socket.destroy();
      reject(new DownstreamError('connect', 'connect', downstream, error.message,
        { cause: error }));
    });
  });
}

/**
 * TLS options for STARTTLS. 'required': verify the chain (against caFile if set, else the
 * system CAs) and the name (tlsName, else the configured host). 'opportunistic': no checks.
 * Throws when the CA file cannot be read.
 */
export async function tlsOptions(
  config: Pick<DownstreamConfig, 'tls' | 'caFile' | 'tlsName'>,
  host: string,
): Promise<tls.ConnectionOptions> {
  const required = config.tls === 'required';
  const expectedName = config.tlsName ?? host;
  const ca = required && config.caFile !== null ? await readFile(config.caFile) : undefined;
  return {
    ca,
    rejectUnauthorized: required,
    // SNI may not carry an IP address (RFC 6066); the identity check below still covers it.
    servername: net.isIP(expectedName) === 0 ? expectedName : undefined,
    checkServerIdentity: (_host, cert) => checkServerIdentity(expectedName, cert),
  };
}
