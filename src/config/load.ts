/*
 * Loads Moat's configuration: shipped defaults, then config/moat.ini, then MOAT_* variables.
 *
 * The table in defaults.ts names every key, its default and the reason for it. This file
 * reads the operator's file, applies the environment, validates each value and builds a
 * MoatConfig. Any problem throws a ConfigError naming the file and line or the variable, the
 * key, the value and what was expected; the caller prints that one line and exits non-zero.
 * Unknown keys and sections are errors too: a typo must not silently keep a default.
 */

import { existsSync, readFileSync } from 'node:fs';
import { hostname as osHostname } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { DOMAIN_SETTINGS, SETTINGS, type SettingSpec } from './defaults';
import { buildAuthConfig } from './sections/auth';
import { buildRateLimitConfig } from './sections/ratelimit';
import { buildRulesConfig } from './sections/rules';
import { buildReputationConfig } from './sections/reputation';
import { buildScanConfig } from './sections/scan';
import { buildQuarantineConfig } from '../quarantine/config';
import { ConfigError } from './errors';
import { parseIni, qualified, type IniDocument } from './ini';
import type { DomainPolicy, MoatConfig, RecipientMode } from './types';
import { parseChoice, parseDomain, parseList, ValueProblem } from './values';

export interface LoadOptions {
  /** The folder holding moat.ini; default `<root>/config`. */
  configDir?: string;
  /** Relative paths in the configuration are resolved against this folder. */
  root?: string;
  env?: NodeJS.ProcessEnv;
}

const RECIPIENT_MODES: readonly RecipientMode[] = ['any', 'list', 'verify', 'list+verify'];

export function loadConfig(options: LoadOptions = {}): MoatConfig {
  const root = resolve(options.root ?? process.cwd());
  const configDir = resolve(root, options.configDir ?? 'config');
  const env = options.env ?? process.env;
  const iniFile = join(configDir, 'moat.ini');

  // Read the operator's file, if any; a missing file means "all defaults".
  const doc: IniDocument = existsSync(iniFile)
    ? parseIni(readFileSync(iniFile, 'utf8'), displayPath(root, iniFile))
    : new Map();

  // Resolve each known setting: default, then file, then environment.
  const values = new Map<string, unknown>();
  const sources: Record<string, string> = {};
  for (const spec of SETTINGS) {
    const name = qualified(spec.section, spec.key);
    const fromFile = doc.get(spec.section)?.get(spec.key);
    const fromEnv = spec.env !== undefined ? env[spec.env] : undefined;
    let raw = spec.default;
    let source = 'default';
    if (fromFile) {
      raw = fromFile.value;
      source = `${fromFile.file}:${fromFile.line}`;
    }
    if (fromEnv !== undefined && spec.env !== undefined) {
      raw = fromEnv;
      source = spec.env;
    }
    values.set(name, parseSetting(spec, raw, source));
    sources[name] = source;
  }

  // Per-domain sections, `[domain example.com]`, and anything unknown.
  const domainSections = new Map<string, Map<string, { value: string; where: string }>>();
  for (const [section, entries] of doc) {
    if (section.startsWith('domain ')) {
      const settings = new Map<string, { value: string; where: string }>();
      for (const [key, entry] of entries) {
        settings.set(key, { value: entry.value, where: `${entry.file}:${entry.line}` });
      }
      domainSections.set(section.slice('domain '.length), settings);
      continue;
    }
    for (const [key, entry] of entries) {
      if (!SETTINGS.some((spec) => spec.section === section && spec.key === key)) {
        throw new ConfigError({
          source: `${entry.file}:${entry.line}`, key: qualified(section, key), value: entry.value,
          expected: `a known setting (see config/moat.ini for the list${knownKeysHint(section)})`,
        });
      }
    }
  }

  const get = <T>(name: string): T => values.get(name) as T;
  const rootPath = (path: string): string => (isAbsolute(path) ? path : resolve(root, path));
  const hostname = get<string>('smtp.hostname') || osHostname();

  const config: MoatConfig = {
    sources,
    configDir,
    stateDir: rootPath(get<string>('state.dir')),
    rulesDir: rootPath(get<string>('rules.dir')),
    smtp: {
      listen: get('smtp.listen'),
      hostname,
      workers: get('smtp.workers'),
      maxMessageBytes: get('smtp.max_message_size'),
      spoolAfterBytes: get('smtp.spool_after'),
      maxLineLength: get('smtp.max_line_length'),
      maxDataLineLength: get('smtp.max_data_line_length'),
      maxHeaderLines: get('smtp.max_header_lines'),
      maxRecipients: get('smtp.max_recipients'),
      maxConnectionsPerIp: get('smtp.max_connections_per_ip'),
      maxConnections: get('smtp.max_connections'),
      idleTimeoutMs: get('smtp.idle_timeout'),
      minDataRate: get('smtp.min_data_rate'),
      minDataRateGraceMs: get('smtp.min_data_rate_grace'),
      greetingDelayMs: get('smtp.greeting_delay'),
      proxyHosts: get('smtp.proxy_hosts'),
      tlsCert: nullIfEmpty(get<string>('smtp.tls_cert'), rootPath),
      tlsKey: nullIfEmpty(get<string>('smtp.tls_key'), rootPath),
      internalNetworks: get('smtp.internal_networks'),
      runAsUser: get<string>('smtp.run_as_user') || null,
      runAsGroup: get<string>('smtp.run_as_group') || null,
      drainTimeoutMs: get('smtp.drain_timeout'),
      idleCollectMs: get('smtp.idle_collect'),
      busyCollectMs: get('smtp.busy_collect'),
      memoryHighBytes: get('smtp.memory_high'),
    },
    domains: new Map(),
    downstream: {
      address: get('downstream.address'),
      tls: get('downstream.tls'),
      caFile: nullIfEmpty(get<string>('downstream.ca_file'), rootPath),
      tlsName: get<string>('downstream.tls_name') || null,
      heloName: get<string>('downstream.helo') || hostname,
      connectTimeoutMs: get('downstream.connect_timeout'),
      commandTimeoutMs: get('downstream.command_timeout'),
      dataTimeoutMs: get('downstream.data_timeout'),
      poolSize: get('downstream.pool_size'),
      poolIdleMs: get('downstream.pool_idle'),
      maxMessagesPerConnection: get('downstream.max_messages_per_connection'),
      verifyCachePositiveMs: get('downstream.verify_cache_positive'),
      verifyCacheNegativeMs: get('downstream.verify_cache_negative'),
    },
    metricsListen: get('metrics.listen'),
    dnsServers: get('dns.servers'),
    redisUrl: get<string>('redis.url') || null,
    reputation: buildReputationConfig(get),
    rateLimit: buildRateLimitConfig(get),
    auth: buildAuthConfig(get),
    scan: buildScanConfig(get),
    quarantine: buildQuarantineConfig(get),
    rules: buildRulesConfig(get),
    clamd: get('clamd.address'),
    spamd: get('spamd.address'),
    log: {
      level: get('log.level'),
      debug: new Set(get<string[]>('log.debug')),
      harakaLevel: get('log.haraka_level'),
    },
  };

  // Cross-checks between settings.
  checkTls(config);
  buildDomains(config, get<string[]>('domains.accepted'), get<RecipientMode>('domains.recipients'),
    resolve(configDir, get<string>('domains.recipient_list')), sources, domainSections);
  return config;
}

function parseSetting(spec: SettingSpec, raw: string, source: string): unknown {
  try {
    return spec.parse(raw);
  } catch (error) {
    if (!(error instanceof ValueProblem)) throw error;
    throw new ConfigError({
      source, key: qualified(spec.section, spec.key), value: raw, expected: error.expected,
    }, { cause: error });
  }
}

function nullIfEmpty(path: string, rootPath: (path: string) => string): string | null {
  return path === '' ? null : rootPath(path);
}

function checkTls(config: MoatConfig): void {
  const { tlsCert, tlsKey } = config.smtp;
  if ((tlsCert === null) !== (tlsKey === null)) {
    const key = tlsCert === null ? 'smtp.tls_cert' : 'smtp.tls_key';
    throw new ConfigError({
      source: config.sources[key] ?? 'default', key, value: '',
      expected: 'both smtp.tls_cert and smtp.tls_key (MOAT_TLS_CERT, MOAT_TLS_KEY), or neither',
    });
  }
  for (const key of ['smtp.tls_cert', 'smtp.tls_key', 'downstream.ca_file'] as const) {
    const path = key === 'smtp.tls_cert' ? tlsCert
      : key === 'smtp.tls_key' ? tlsKey : config.downstream.caFile;
    if (path !== null && !existsSync(path)) {
      throw new ConfigError({
        source: config.sources[key] ?? 'default', key, value: path,
        expected: 'a readable file (it does not exist)',
      });
    }
  }
  if (config.downstream.tls === 'required' && config.downstream.address === null) {
    throw new ConfigError({
      source: config.sources['downstream.tls'] ?? 'default', key: 'downstream.tls',
      value: 'required', expected: 'a downstream address (MOAT_DOWNSTREAM) when TLS is required',
    });
  }
}

function buildDomains(
  config: MoatConfig,
  accepted: string[],
  defaultMode: RecipientMode,
  listFile: string,
  sources: Record<string, string>,
  sections: Map<string, Map<string, { value: string; where: string }>>,
): void {
  const listed = readRecipientList(listFile);

  for (const domain of accepted) {
    config.domains.set(domain, {
      domain,
      recipientMode: defaultMode,
      recipients: new Set([...listed].filter((address) => recipientDomain(address) === domain)),
      overrides: new Map(),
    });
  }

  // `[domain example.com]` sections refine one accepted domain.
  for (const [name, settings] of sections) {
    const policy = config.domains.get(name);
    const first = [...settings.values()][0];
    if (!policy) {
      throw new ConfigError({
        source: first?.where ?? sources['domains.accepted'] ?? 'config/moat.ini',
        key: `[domain ${name}]`, value: name,
        expected: `a domain listed in domains.accepted (${accepted.join(', ') || 'none listed'})`,
      });
    }
    for (const [key, { value, where }] of settings) {
      const spec = DOMAIN_SETTINGS.find((candidate) => candidate.key === key);
      if (key !== 'recipients' && !spec) {
        throw new ConfigError({
          source: where, key: `domain ${name}.${key}`, value,
          expected: `a known per-domain setting: ${
            ['recipients', ...DOMAIN_SETTINGS.map((entry) => entry.key)].join(', ')}`,
        });
      }
      try {
        if (spec) policy.overrides.set(key, spec.parse(value));
        else policy.recipientMode = parseChoice(value, RECIPIENT_MODES);
      } catch (error) {
        if (!(error instanceof ValueProblem)) throw error;
        throw new ConfigError({ source: where, key: `domain ${name}.${key}`, value,
          expected: error.expected });
      }
    }
  }

  for (const policy of config.domains.values()) {
    const needsVerify = policy.recipientMode === 'verify' || policy.recipientMode === 'list+verify';
    if (needsVerify && config.downstream.address === null) {
      throw new ConfigError({
        source: sources['downstream.address'] ?? 'default', key: 'downstream.address', value: '',
        expected: `a downstream server (MOAT_DOWNSTREAM): ${policy.domain} verifies `
          + 'recipients there',
      });
    }
  }
}

function readRecipientList(file: string): Set<string> {
  const addresses = new Set<string>();
  if (!existsSync(file)) return addresses;
  const lines = readFileSync(file, 'utf8').split(/\r?\n/);
  lines.forEach((line, index) => {
    const entry = line.replace(/[#;].*$/, '').trim().toLowerCase();
    if (entry === '') return;
    if (!/^[^\s@]*@[^\s@]+$/.test(entry)) {
      throw new ConfigError({
        source: `${file}:${index + 1}`, key: 'recipient', value: entry,
        expected: 'one address per line (user@example.com), or @example.com for a whole domain',
      });
    }
    addresses.add(entry);
  });
  return addresses;
}

function recipientDomain(address: string): string {
  return address.slice(address.lastIndexOf('@') + 1);
}

function knownKeysHint(section: string): string {
  const keys = SETTINGS.filter((spec) => spec.section === section).map((spec) => spec.key);
  return keys.length ? `; [${section}] knows ${keys.join(', ')}` : '';
}

function displayPath(root: string, file: string): string {
  return file.startsWith(`${root}/`) ? file.slice(root.length + 1) : file;
}

export { parseDomain, parseList };
