/*
 * Throwaway certificates for tests: a private CA and a server certificate it signed, made
 * with the openssl command line into a temporary directory that is removed at exit.
 *
 * The server certificate names localhost, 127.0.0.1 and ::1 by default, so a client that
 * trusts the CA (and checks names) accepts a loopback server presenting it. Keys are P-256,
 * which openssl makes in milliseconds.
 *
 * Needs the Debian package openssl (scripts/ensure-deps.sh).
 */

import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { makeTempDir, requireExecutable } from './process';

export interface TestCertificates {
  dir: string;
  caCertPath: string;
  serverKeyPath: string;
  serverCertPath: string;
  /** The same files read into memory, for tls options. */
  ca: Buffer;
  key: Buffer;
  cert: Buffer;
}

export interface CertificateOptions {
  dnsNames?: string[];
  ipAddresses?: string[];
  commonName?: string;
}

/** openssl failed; its stderr is in the message. */
export class CertificateError extends Error {
  constructor(step: string, options: { cause: unknown }) {
    const stderr = (options.cause as { stderr?: Buffer } | undefined)?.stderr?.toString() ?? '';
    super(`openssl ${step} failed: ${stderr.trim()}`, options);
    this.name = 'CertificateError';
  }
}

function openssl(step: string, args: string[], cwd: string): void {
  try {
    execFileSync(requireExecutable('openssl'), args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (cause) {
    throw new CertificateError(step, { cause });
  }
}

export function makeTestCertificates(options: CertificateOptions = {}): TestCertificates {
  const dir = makeTempDir('tls');
  const dnsNames = options.dnsNames ?? ['localhost'];
  const ipAddresses = options.ipAddresses ?? ['127.0.0.1', '::1'];
  const commonName = options.commonName ?? dnsNames[0] ?? 'localhost';
  const keyArgs = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

  // The CA: self-signed, allowed to sign certificates and nothing else.
  openssl('CA', [
    'req', '-x509', ...keyArgs, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '7',
    '-subj', '/O=Moat tests/CN=Moat Test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ], dir);

  // The server key and its signing request.
  openssl('server request', [
    'req', '-new', ...keyArgs, '-keyout', 'server.key', '-out', 'server.csr',
    '-subj', `/O=Moat tests/CN=${commonName}`,
  ], dir);

  // The CA signs it with the names a client will check.
  const altNames = [
    ...dnsNames.map((name) => `DNS:${name}`),
    ...ipAddresses.map((ip) => `IP:${ip}`),
  ].join(',');
  writeFileSync(join(dir, 'server.ext'), [
    'basicConstraints=CA:FALSE',
    'keyUsage=critical,digitalSignature,keyEncipherment',
    'extendedKeyUsage=serverAuth',
    `subjectAltName=${altNames}`,
  ].join('\n') + '\n');
  openssl('server certificate', [
    'x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key',
    '-CAcreateserial', '-out', 'server.crt', '-days', '7', '-extfile', 'server.ext',
  ], dir);

  const caCertPath = join(dir, 'ca.crt');
  const serverKeyPath = join(dir, 'server.key');
  const serverCertPath = join(dir, 'server.crt');
  return {
    dir,
    caCertPath,
    serverKeyPath,
    serverCertPath,
    ca: readFileSync(caCertPath),
    key: readFileSync(serverKeyPath),
    cert: readFileSync(serverCertPath),
  };
}
