/*
 * Tests for haraka-home.ts: a MoatConfig loaded from a real moat.ini and MOAT_* variables is
 * written out as Haraka's home folder, and the files are read back both as text and with
 * Haraka's own ini reader, so what is checked is what Haraka will see. The TLS case uses a
 * self-signed certificate made with the openssl command line tool.
 */

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, describe, it } from 'node:test';

import { loadConfig } from '../config/load';
import type { MoatConfig } from '../config/types';
import { formatHostPort, MOAT_PLUGINS, pluginTimeoutMs, writeHarakaHome } from './haraka-home';

// Compiled to dist/src/runtime/: the repository is three folders up, dist two.
const REPO = resolve(__dirname, '..', '..', '..');
const DIST = resolve(__dirname, '..', '..');

// Haraka's ini reader, used directly so no file watcher or cache is involved.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const harakaReader = require('haraka-config/lib/reader') as {
  load_config(file: string, type: string, options?: object): IniSections;
};

const scratch = mkdtempSync(join(tmpdir(), 'moat-haraka-home-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

let configCount = 0;

/** Loads a MoatConfig from a moat.ini in a fresh folder, with its state under `stateDir`. */
function configFrom(ini: string, env: NodeJS.ProcessEnv, stateDir: string): MoatConfig {
  configCount += 1;
  const configDir = join(scratch, `config-${configCount}`);
  mkdirSync(configDir, { recursive: true });
  writeFileSync(join(configDir, 'moat.ini'), `${ini}\n[state]\ndir = ${stateDir}\n`);
  return loadConfig({ root: REPO, configDir, env });
}

function readConfigFile(home: { configDir: string }, name: string): string {
  return readFileSync(join(home.configDir, name), 'utf8');
}

type IniSections = Record<string, Record<string, unknown> | undefined>;

/** The boolean keys Haraka 3.3.4 declares when it reads these files (connection.js, server.js). */
const HARAKA_BOOLEANS = [
  '+haproxy.enabled', '-main.strict_rfc1869', '-main.postel', '+main.smtputf8',
  '+headers.add_received', '+headers.show_version', '+headers.clean_auth_results',
  '-main.daemonize', '+main.graceful_shutdown',
];

function harakaIni(home: { configDir: string }, name: string): IniSections {
  return harakaReader.load_config(join(home.configDir, name), 'ini', { booleans: HARAKA_BOOLEANS });
}

/** A throwaway self-signed certificate and key, made by openssl. */
function selfSignedCertificate(): { cert: string; key: string } {
  const dir = mkdtempSync(join(scratch, 'tls-'));
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=mx.example.com',
  ], { stdio: 'ignore' });
  return { cert, key };
}

const FULL_INI = [
  '[smtp]',
  'hostname = mx.example.com',
  'workers = 2',
  'max_line_length = 600',
  'max_data_line_length = 1002',
  'max_header_lines = 300',
  'run_as_user = nobody',
  'run_as_group = nogroup',
].join('\n');

const FULL_ENV = {
  MOAT_LISTEN: '127.0.0.1:2525,[::1]:2526',
  MOAT_PROXY_HOSTS: '192.0.2.10, 10.0.0.0/8',
};

describe('writeHarakaHome', () => {
  const state = join(scratch, 'state-full');
  const config = configFrom(FULL_INI, FULL_ENV, state);
  const home = writeHarakaHome(config, DIST);

  it('writes into <state>/haraka', () => {
    assert.equal(home.home, join(state, 'haraka'));
    assert.equal(home.configDir, join(state, 'haraka', 'config'));
  });

  it('smtp.ini: listen list with IPv6 in brackets, nodes, user and group', () => {
    const text = readConfigFile(home, 'smtp.ini');
    assert.match(text, /^listen=127\.0\.0\.1:2525,\[::1\]:2526$/m);
    assert.match(text, /^nodes=2$/m);
    assert.match(text, /^user=nobody$/m);
    assert.match(text, /^group=nogroup$/m);

    const parsed = harakaIni(home, 'smtp.ini');
    assert.equal(parsed['main']?.listen, '127.0.0.1:2525,[::1]:2526');
    assert.equal(parsed['main']?.nodes, 2);
    assert.equal(parsed['main']?.daemonize, false);
    assert.equal(parsed['main']?.graceful_shutdown, true);
    // 5 minutes by default (RFC 5321 4.5.3.2.7), in seconds for Haraka.
    assert.equal(parsed['main']?.inactivity_timeout, 300);
  });

  it('smtp.ini leaves user and group out when they are not set', () => {
    const plain = writeHarakaHome(configFrom('', {}, join(scratch, 'state-plain')), DIST);
    const text = readConfigFile(plain, 'smtp.ini');
    assert.doesNotMatch(text, /^user=/m);
    assert.doesNotMatch(text, /^group=/m);
    assert.match(text, /^listen=127\.0\.0\.1:2525$/m);
    assert.match(text, /^nodes=0$/m);
  });

  it('connection.ini: proxy hosts, size check off, line lengths, greeting', () => {
    const parsed = harakaIni(home, 'connection.ini');
    assert.deepEqual(parsed['haproxy']?.hosts, ['192.0.2.10', '10.0.0.0/8']);
    assert.equal(parsed['haproxy']?.enabled, true);
    assert.equal(parsed['max']?.bytes, 0);
    assert.equal(parsed['max']?.line_length, 600);
    assert.equal(parsed['max']?.data_line_length, 1002);
    assert.equal(parsed['headers']?.max_lines, 300);
    assert.equal(parsed['headers']?.clean_auth_results, false);
    assert.deepEqual(parsed['message']?.greeting, ['Moat']);
    assert.equal(parsed['message']?.helo, 'mx.example.com ESMTP Moat');
    assert.equal(parsed['uuid']?.banner_chars, 0);

    const text = readConfigFile(home, 'connection.ini');
    assert.match(text, /^hosts\[\]=192\.0\.2\.10$/m);
    assert.match(text, /^hosts\[\]=10\.0\.0\.0\/8$/m);
    assert.match(text, /^bytes=0$/m);
  });

  it('connection.ini lists no proxy host when none is configured', () => {
    const plain = writeHarakaHome(configFrom('', {}, join(scratch, 'state-noproxy')), DIST);
    assert.doesNotMatch(readConfigFile(plain, 'connection.ini'), /hosts\[\]/);
  });

  it('plugins: Moat plugins in pipeline order, no tls without a certificate', () => {
    assert.deepEqual(readConfigFile(home, 'plugins').trim().split('\n'), MOAT_PLUGINS);
    assert.deepEqual(MOAT_PLUGINS,
      ['moat-connection', 'moat-reputation', 'moat-envelope', 'moat-ratelimit', 'moat-content',
        'moat-auth', 'moat-scan', 'moat-rules', 'moat-verdict', 'moat-deliver']);
    assert.equal(existsSync(join(home.configDir, 'tls.ini')), false);
    assert.equal(existsSync(join(home.configDir, 'tls_key.pem')), false);
  });

  it('me, log.ini, outbound.ini and plugin_timeout', () => {
    assert.equal(readConfigFile(home, 'me'), 'mx.example.com\n');
    assert.equal(harakaIni(home, 'log.ini')['main']?.format, 'json');
    assert.equal(harakaIni(home, 'outbound.ini')['main']?.disabled, 'true');
    // Present (and empty of settings), so Haraka does not look for it on disk per connection.
    assert.doesNotMatch(readConfigFile(home, 'results.ini'), /^\s*[^;\s]/m);
    const timeoutSeconds = Number(readConfigFile(home, 'plugin_timeout').trim());
    assert.equal(timeoutSeconds, Math.ceil(pluginTimeoutMs(config) / 1000));
    // Haraka's timeout must only be the last resort, after Moat's own downstream deadlines.
    assert.ok(timeoutSeconds * 1000 > config.downstream.dataTimeoutMs
      + config.downstream.connectTimeoutMs);
  });

  it('each plugin package.json points at dist/plugins/<name>.js, which exists', () => {
    for (const plugin of MOAT_PLUGINS) {
      const file = join(home.home, 'plugins', plugin, 'package.json');
      const manifest = JSON.parse(readFileSync(file, 'utf8')) as { name: string; main: string };
      const stage = plugin.replace(/^moat-/, '');
      assert.equal(manifest.main, join(DIST, 'plugins', `${stage}.js`));
      assert.equal(manifest.name, `haraka-plugin-${plugin}`);
      assert.ok(existsSync(manifest.main), `${manifest.main} is built`);
    }
  });

  it('resolves a relative dist folder to an absolute plugin path', () => {
    const other = writeHarakaHome(configFrom('', {}, join(scratch, 'state-relative')), 'dist');
    const file = join(other.home, 'plugins', 'moat-deliver', 'package.json');
    const manifest = JSON.parse(readFileSync(file, 'utf8')) as { main: string };
    assert.equal(manifest.main, resolve('dist', 'plugins', 'deliver.js'));
  });
});

describe('writeHarakaHome with TLS', () => {
  const { cert, key } = selfSignedCertificate();
  const state = join(scratch, 'state-tls');
  const tlsEnv = { ...FULL_ENV, MOAT_TLS_CERT: cert, MOAT_TLS_KEY: key };

  it('copies the certificate, the key with mode 0600, and lists tls first', () => {
    const home = writeHarakaHome(configFrom(FULL_INI, tlsEnv, state), DIST);
    assert.deepEqual(readConfigFile(home, 'plugins').trim().split('\n'), ['tls', ...MOAT_PLUGINS]);
    assert.equal(readConfigFile(home, 'tls_cert.pem'), readFileSync(cert, 'utf8'));
    assert.equal(readConfigFile(home, 'tls_key.pem'), readFileSync(key, 'utf8'));
    assert.equal(statSync(join(home.configDir, 'tls_key.pem')).mode & 0o777, 0o600);
    const tls = harakaIni(home, 'tls.ini');
    assert.equal(tls['main']?.key, 'tls_key.pem');
    assert.equal(tls['main']?.cert, 'tls_cert.pem');
  });

  it('a second run without TLS removes the files of the first', () => {
    const withTls = writeHarakaHome(configFrom(FULL_INI, tlsEnv, state), DIST);
    assert.ok(existsSync(join(withTls.configDir, 'tls.ini')));
    // A file that is none of Moat's, left in the generated folder, goes too.
    writeFileSync(join(withTls.configDir, 'stale.ini'), '[main]\n');

    const without = writeHarakaHome(configFrom(FULL_INI, FULL_ENV, state), DIST);
    assert.equal(without.configDir, withTls.configDir);
    for (const name of ['tls.ini', 'tls_cert.pem', 'tls_key.pem', 'stale.ini']) {
      assert.equal(existsSync(join(without.configDir, name)), false, `${name} is gone`);
    }
    assert.deepEqual(readConfigFile(without, 'plugins').trim().split('\n'), MOAT_PLUGINS);
  });
});

describe('formatHostPort', () => {
  it('brackets IPv6 hosts only', () => {
    assert.equal(formatHostPort({ host: '0.0.0.0', port: 25 }), '0.0.0.0:25');
    assert.equal(formatHostPort({ host: '::', port: 25 }), '[::]:25');
    assert.equal(formatHostPort({ host: 'mx.example.com', port: 587 }), 'mx.example.com:587');
  });
});
