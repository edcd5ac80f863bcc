import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { SETTINGS } from './defaults';
import { ConfigError } from './errors';
import { loadConfig } from './load';

const REPO = resolve(__dirname, '..', '..', '..');

function tempConfig(ini: string, files: Record<string, string> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'moat-config-'));
  writeFileSync(join(dir, 'moat.ini'), ini);
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

function problemOf(run: () => unknown): ConfigError {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected ConfigError, got ${String(error)}`);
    return error;
  }
  assert.fail('expected a ConfigError');
}

test('the shipped config/moat.ini documents every setting with its default', () => {
  const shipped = readFileSync(join(REPO, 'config', 'moat.ini'), 'utf8');
  for (const spec of SETTINGS) {
    assert.ok(shipped.includes(`;${spec.key} = ${spec.default}`),
      `config/moat.ini lacks ;${spec.key} = ${spec.default} in [${spec.section}]`);
  }
});

test('the shipped configuration loads with its defaults', () => {
  const config = loadConfig({ root: REPO, env: {} });
  assert.deepEqual(config.smtp.listen, [{ host: '127.0.0.1', port: 2525 }]);
  assert.equal(config.downstream.address, null);
  assert.equal(config.smtp.maxMessageBytes, 25 * 1024 * 1024);
  assert.ok(config.domains.has('example.com'));
});

test('environment variables override the file', () => {
  const dir = tempConfig('[smtp]\nlisten = 127.0.0.1:2000\n');
  const config = loadConfig({ root: REPO, configDir: dir, env: {
    MOAT_LISTEN: '127.0.0.1:3000,[::1]:3001', MOAT_DOWNSTREAM: 'mail.internal:2525',
    MOAT_DOMAINS: 'Example.ORG, example.net', MOAT_PROXY_HOSTS: '192.0.2.10, 10.0.0.0/8',
  } });
  assert.deepEqual(config.smtp.listen,
    [{ host: '127.0.0.1', port: 3000 }, { host: '::1', port: 3001 }]);
  assert.deepEqual(config.downstream.address, { host: 'mail.internal', port: 2525 });
  assert.deepEqual([...config.domains.keys()], ['example.org', 'example.net']);
  assert.deepEqual(config.smtp.proxyHosts, ['192.0.2.10', '10.0.0.0/8']);
  assert.equal(config.sources['smtp.listen'], 'MOAT_LISTEN');
});

test('a bad variable names the variable, key, value and expectation', () => {
  const error = problemOf(() => loadConfig({ root: REPO, env: { MOAT_DOWNSTREAM: 'mail:99999' } }));
  assert.equal(error.problem.source, 'MOAT_DOWNSTREAM');
  assert.equal(error.problem.key, 'downstream.address');
  assert.match(error.message,
    /^MOAT_DOWNSTREAM: downstream.address = "mail:99999": expected .*port 1-65535/);
});

test('a bad file value names the file and line', () => {
  const dir = tempConfig('; comment\n[smtp]\nmax_message_size = lots\n');
  const error = problemOf(() => loadConfig({ root: REPO, configDir: dir, env: {} }));
  assert.match(error.problem.source, /moat\.ini:3$/);
  assert.equal(error.problem.key, 'smtp.max_message_size');
});

test('unknown keys, unknown sections and syntax errors are refused', () => {
  const unknownKey = problemOf(() => loadConfig({
    root: REPO, configDir: tempConfig('[smtp]\nmax_mesage_size = 10M\n'), env: {} }));
  assert.match(unknownKey.message, /moat\.ini:2: smtp\.max_mesage_size/);
  assert.match(unknownKey.message, /max_message_size/);

  const syntax = problemOf(() => loadConfig({
    root: REPO, configDir: tempConfig('[smtp\n'), env: {} }));
  assert.match(syntax.message, /moat\.ini:1/);

  const duplicate = problemOf(() => loadConfig({
    root: REPO, configDir: tempConfig('[smtp]\nworkers = 1\nworkers = 2\n'), env: {} }));
  assert.match(duplicate.message, /moat\.ini:3.*already set on line 2/);
});

test('per-domain recipient modes, the recipient list, and their cross-checks', () => {
  const dir = tempConfig('[domains]\naccepted = example.com, example.org\nrecipients = list\n'
    + 'recipient_list = RECIPIENTS\n[domain example.org]\nrecipients = any\n',
  { 'list.txt': 'alice@example.com\n# comment\n@example.org\n' });
  const ini = readFileSync(join(dir, 'moat.ini'), 'utf8')
    .replace('RECIPIENTS', join(dir, 'list.txt'));
  writeFileSync(join(dir, 'moat.ini'), ini);
  const config = loadConfig({ root: REPO, configDir: dir, env: {} });
  assert.equal(config.domains.get('example.com')?.recipientMode, 'list');
  assert.equal(config.domains.get('example.org')?.recipientMode, 'any');
  assert.deepEqual([...config.domains.get('example.com')?.recipients ?? []], ['alice@example.com']);

  const verifyWithoutServer = problemOf(() => loadConfig({ root: REPO,
    configDir: tempConfig('[domains]\nrecipients = verify\n'), env: {} }));
  assert.match(verifyWithoutServer.message, /downstream\.address.*verifies recipients/);

  const strayDomain = problemOf(() => loadConfig({ root: REPO,
    configDir: tempConfig('[domain other.example]\nrecipients = any\n'), env: {} }));
  assert.match(strayDomain.message, /domains\.accepted/);

  const badList = tempConfig('[domains]\nrecipient_list = LIST\n', { 'r.txt': 'not an address\n' });
  writeFileSync(join(badList, 'moat.ini'),
    `[domains]\nrecipient_list = ${join(badList, 'r.txt')}\n`);
  const listError = problemOf(() => loadConfig({ root: REPO, configDir: badList, env: {} }));
  assert.match(listError.message, /r\.txt:1: recipient = "not an address"/);
});

test('TLS settings must come in pairs and point at files', () => {
  const half = problemOf(() => loadConfig({ root: REPO, env: { MOAT_TLS_CERT: '/etc/hostname' } }));
  assert.match(half.message, /smtp\.tls_key/);
  const missing = problemOf(() => loadConfig({ root: REPO,
    env: { MOAT_TLS_CERT: '/nonexistent/cert.pem', MOAT_TLS_KEY: '/nonexistent/key.pem' } }));
  assert.match(missing.message, /does not exist/);
});

test('a message limit above what clamd reads stops start-up; equal or lower loads', () => {
  const dir = tempConfig('[smtp]\nmax_message_size = 30M\n[clamd]\nstream_max_length = 25M\n');
  const error = problemOf(() => loadConfig({
    root: REPO, configDir: dir, env: { MOAT_CLAMD: '127.0.0.1:3310' },
  }));
  assert.equal(error.problem.key, 'clamd.stream_max_length');
  assert.match(error.message,
    /expected at least smtp\.max_message_size \(31457280 bytes\): clamd would refuse/);

  const fits = tempConfig('[smtp]\nmax_message_size = 20M\n[clamd]\nstream_max_length = 25M\n');
  const config = loadConfig({ root: REPO, configDir: fits, env: { MOAT_CLAMD: '127.0.0.1:3310' } });
  assert.equal(config.smtp.maxMessageBytes, 20 * 1024 * 1024);
});
