/*
 * Every Moat setting: its section and key, the MOAT_* variable that overrides it, the shipped
 * default and why, and the parser that validates it.
 *
 * This table is the reference: config/moat.ini repeats it for operators, and load.ts refuses
 * any key not listed here. Shipped defaults live here; the operator's overrides live in
 * config/moat.ini and the environment, so an upgrade can change a default without touching
 * anyone's file.
 */

import {
  parseBoolean, parseChoice, parseCidr, parseDomain, parseDuration, parseHostname,
  parseHostPort, parseHostPortList, parseInteger, parseList, parseRedisUrl,
  parseScannerAddress, parseSize, ValueProblem,
} from './values';
import { AUTH_DOMAIN_SETTINGS, AUTH_SETTINGS } from './sections/auth';
import { RULES_DOMAIN_SETTINGS, RULES_SETTINGS } from './sections/rules';
import { RATELIMIT_DOMAIN_SETTINGS, RATELIMIT_SETTINGS } from './sections/ratelimit';
import { REPUTATION_DOMAIN_SETTINGS, REPUTATION_SETTINGS } from './sections/reputation';
import { SCAN_DOMAIN_SETTINGS, SCAN_SETTINGS } from './sections/scan';

/** A key allowed in `[domain example.com]` sections; absent means the global setting applies. */
export interface DomainSettingSpec {
  key: string;
  why: string;
  parse: (raw: string) => unknown;
}

export interface SettingSpec {
  section: string;
  key: string;
  env?: string;
  default: string;
  why: string;
  parse: (raw: string) => unknown;
}

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

const emptyOr = <T>(parse: (raw: string) => T, empty: T) => (raw: string): T =>
  (raw.trim() === '' ? empty : parse(raw));

const listOf = <T>(parse: (item: string) => T) => (raw: string): T[] => parseList(raw).map(parse);

const path = (raw: string): string => {
  if (/[\0\r\n]/.test(raw)) throw new ValueProblem('a file or folder path');
  return raw.trim();
};

const userName = (raw: string): string => {
  if (raw.trim() !== '' && !/^[a-z_][a-z0-9_-]*\$?$/i.test(raw.trim())) {
    throw new ValueProblem('a user or group name, or nothing');
  }
  return raw.trim();
};

/** smtp.memory_high: 0 (off), or a resident size a working gateway can stay under. */
const parseMemoryHigh = (raw: string): number => {
  const bytes = parseSize(raw, 0, 64 * 1024 ** 3);
  if (bytes !== 0 && bytes < 64 * 1024 ** 2) {
    throw new ValueProblem('0 (never), or a size of at least 64M (an idle worker is ~100 MB)');
  }
  return bytes;
};

const CORE_SETTINGS: readonly SettingSpec[] = [
  // ---- Inbound SMTP -------------------------------------------------------------------------
  { section: 'smtp', key: 'listen', env: 'MOAT_LISTEN', default: '127.0.0.1:2525',
    why: 'loopback so a first start exposes nothing; production sets 0.0.0.0:25',
    parse: (raw) => {
      const list = parseHostPortList(raw);
      if (list.length === 0) throw new ValueProblem('at least one host:port to listen on');
      return list;
    } },
  { section: 'smtp', key: 'hostname', default: '',
    why: 'empty means the machine name; it is used in the greeting and Received header',
    parse: emptyOr(parseHostname, '') },
  { section: 'smtp', key: 'workers', env: 'MOAT_WORKERS', default: '0',
    why: '0 runs one process; set to the core count on a busy node',
    parse: (raw) => parseInteger(raw, 0, 64) },
  { section: 'smtp', key: 'max_message_size', default: '25M',
    why: 'the size most providers accept; advertised in SIZE and refused with 552 above it',
    parse: (raw) => parseSize(raw, 1024, 1024 ** 3) },
  { section: 'smtp', key: 'spool_after', default: '1M',
    why: 'a message past this waits on disk, not in memory, while it arrives and is checked',
    parse: (raw) => parseSize(raw, 64 * 1024, 1024 ** 3) },
  { section: 'smtp', key: 'max_line_length', default: '512',
    why: 'RFC 5321 4.5.3.1.4: a command line is at most 512 octets',
    parse: (raw) => parseInteger(raw, 512, 65536) },
  { section: 'smtp', key: 'max_data_line_length', default: '1000',
    why: 'RFC 5321 4.5.3.1.6: 998 octets plus CRLF; longer lines are refused, not folded',
    parse: (raw) => parseInteger(raw, 1000, 1_048_576) },
  { section: 'smtp', key: 'max_header_lines', default: '1000',
    why: 'headers beyond this are a parser-exhaustion attempt, not mail',
    parse: (raw) => parseInteger(raw, 50, 100_000) },
  { section: 'smtp', key: 'max_recipients', default: '100',
    why: 'RFC 5321 4.5.3.1.8 minimum; more get 452 and the client sends another transaction',
    parse: (raw) => parseInteger(raw, 1, 10_000) },
  { section: 'smtp', key: 'max_connections_per_ip', default: '20',
    why: 'one address holding more is a flood; answered 421 4.7.0',
    parse: (raw) => parseInteger(raw, 1, 100_000) },
  { section: 'smtp', key: 'max_connections', default: '1000',
    why: 'a ceiling per process so a flood cannot exhaust file descriptors',
    parse: (raw) => parseInteger(raw, 1, 1_000_000) },
  { section: 'smtp', key: 'idle_timeout', default: '5m',
    why: 'RFC 5321 4.5.3.2.7: a server waits at least 5 minutes for a command',
    parse: (raw) => parseDuration(raw, 1000, 2 * HOUR) },
  { section: 'smtp', key: 'min_data_rate', default: '256',
    why: 'bytes per second during DATA; below this a slow-drip client is cut off with 421',
    parse: (raw) => parseInteger(raw, 0, 1_000_000_000) },
  { section: 'smtp', key: 'min_data_rate_grace', default: '30s',
    why: 'the rate is only enforced after this, so slow starts and small messages are fine',
    parse: (raw) => parseDuration(raw, 0, HOUR) },
  { section: 'smtp', key: 'greeting_delay', default: '0s',
    why: 'wait before the greeting; a client talking meanwhile gets 554 (1s-6s catches bots)',
    parse: (raw) => parseDuration(raw, 0, MINUTE) },
  { section: 'smtp', key: 'proxy_hosts', env: 'MOAT_PROXY_HOSTS', default: '',
    why: 'nobody may send a PROXY header unless listed: it would let them choose their address',
    parse: listOf(parseCidr) },
  { section: 'smtp', key: 'tls_cert', env: 'MOAT_TLS_CERT', default: '',
    why: 'no certificate means no STARTTLS; start-up says so loudly', parse: path },
  { section: 'smtp', key: 'tls_key', env: 'MOAT_TLS_KEY', default: '',
    why: 'the private key for tls_cert', parse: path },
  { section: 'smtp', key: 'internal_networks',
    default: '127.0.0.0/8, ::1/128, 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, fc00::/7',
    why: 'clients here skip reputation checks; documentation ranges are NOT internal',
    parse: listOf(parseCidr) },
  { section: 'smtp', key: 'run_as_user', default: '',
    why: 'drop root after binding port 25; empty keeps the starting user', parse: userName },
  { section: 'smtp', key: 'run_as_group', default: '',
    why: 'group to switch to with run_as_user', parse: userName },
  { section: 'smtp', key: 'drain_timeout', default: '30s',
    why: 'SIGTERM lets transactions in flight finish this long, then answers 421',
    parse: (raw) => parseDuration(raw, 0, 10 * MINUTE) },
  { section: 'smtp', key: 'idle_collect', default: '5s',
    why: 'this long without connections after traffic, a process collects garbage; 0s never',
    parse: (raw) => parseDuration(raw, 0, HOUR) },
  { section: 'smtp', key: 'busy_collect', default: '30s',
    why: 'this often, while there is traffic, a process collects garbage and trims; 0s never',
    parse: (raw) => parseDuration(raw, 0, HOUR) },
  { section: 'smtp', key: 'memory_high', default: '256M',
    why: 'a busy process above this resident size collects garbage, at most once a second; 0 never',
    parse: parseMemoryHigh },

  // ---- Accepted domains and recipients ------------------------------------------------------
  { section: 'domains', key: 'accepted', env: 'MOAT_DOMAINS', default: 'example.com',
    why: 'mail is accepted only for these; everything else is relay denied (550 5.7.1)',
    parse: (raw) => {
      const domains = parseList(raw).map(parseDomain);
      if (domains.length === 0) throw new ValueProblem('at least one accepted domain');
      return domains;
    } },
  { section: 'domains', key: 'recipients', default: 'any',
    why: 'how recipients are checked at RCPT: any, list, verify (ask downstream), list+verify',
    parse: (raw) => parseChoice(raw, ['any', 'list', 'verify', 'list+verify'] as const) },
  { section: 'domains', key: 'recipient_list', default: 'recipients.txt',
    why: 'list-mode addresses, one a line (@domain for all); relative to the config folder',
    parse: path },

  // ---- Internal mailbox server --------------------------------------------------------------
  { section: 'downstream', key: 'address', env: 'MOAT_DOWNSTREAM', default: '',
    why: 'empty delivers into a local Maildir under the state folder, for trying Moat alone',
    parse: emptyOr((raw) => parseHostPort(raw, 25), null) },
  { section: 'downstream', key: 'tls', default: 'opportunistic',
    why: 'use STARTTLS when offered; set required (with ca_file) when the server supports it',
    parse: (raw) => parseChoice(raw, ['off', 'opportunistic', 'required'] as const) },
  { section: 'downstream', key: 'ca_file', default: '',
    why: 'CA bundle to verify the downstream certificate; empty uses the system store',
    parse: path },
  { section: 'downstream', key: 'tls_name', default: '',
    why: 'name expected in the downstream certificate; empty uses the host',
    parse: emptyOr(parseHostname, '') },
  { section: 'downstream', key: 'helo', default: '',
    why: 'EHLO name towards the downstream; empty uses smtp.hostname',
    parse: emptyOr(parseHostname, '') },
  { section: 'downstream', key: 'connect_timeout', default: '3s',
    why: 'a down server must give the client 4xx within 5 seconds',
    parse: (raw) => parseDuration(raw, 100, MINUTE) },
  { section: 'downstream', key: 'command_timeout', default: '30s',
    why: 'per command reply; a stuck server is abandoned and the client gets 4xx',
    parse: (raw) => parseDuration(raw, 100, 10 * MINUTE) },
  { section: 'downstream', key: 'data_timeout', default: '120s',
    why: 'reply to the final dot; kept below the client timeout RFC 5321 gives (10 minutes)',
    parse: (raw) => parseDuration(raw, 100, 9 * MINUTE) },
  { section: 'downstream', key: 'pool_size', default: '8',
    why: 'idle connections kept for reuse per process',
    parse: (raw) => parseInteger(raw, 0, 1000) },
  { section: 'downstream', key: 'pool_idle', default: '30s',
    why: 'an idle connection is closed after this, before the server times it out',
    parse: (raw) => parseDuration(raw, 100, HOUR) },
  { section: 'downstream', key: 'max_messages_per_connection', default: '100',
    why: 'connections are replaced periodically so server-side limits never bite',
    parse: (raw) => parseInteger(raw, 1, 1_000_000) },
  { section: 'downstream', key: 'verify_cache_positive', default: '10m',
    why: 'how long a recipient the server accepted is remembered',
    parse: (raw) => parseDuration(raw, 0, 24 * HOUR) },
  { section: 'downstream', key: 'verify_cache_negative', default: '1m',
    why: 'how long an unknown recipient is remembered; short, so a new mailbox works soon',
    parse: (raw) => parseDuration(raw, 0, 24 * HOUR) },

  // ---- Dependencies and state ---------------------------------------------------------------
  { section: 'state', key: 'dir', env: 'MOAT_STATE_DIR', default: 'state',
    why: 'Maildir, quarantine and the generated Haraka home live here', parse: path },
  { section: 'rules', key: 'dir', env: 'MOAT_RULES_DIR', default: 'rules',
    why: 'content-control rule files', parse: path },
  { section: 'metrics', key: 'listen', env: 'MOAT_METRICS_LISTEN', default: '127.0.0.1:9325',
    why: '/metrics, /healthz and /readyz; loopback until the operator exposes it',
    parse: emptyOr((raw) => parseHostPort(raw), null) },
  { section: 'dns', key: 'servers', env: 'MOAT_DNS_SERVERS', default: '',
    why: 'a local caching resolver; empty uses the system resolvers',
    parse: (raw) => parseHostPortList(raw, 53) },
  { section: 'redis', key: 'url', env: 'MOAT_REDIS_URL', default: '',
    why: 'shared rate limits; empty keeps counts in this process only',
    parse: emptyOr(parseRedisUrl, '') },
  { section: 'clamd', key: 'address', env: 'MOAT_CLAMD', default: '',
    why: 'clamd addresses with failover (host:port or socket path)',
    parse: listOf(parseScannerAddress) },
  { section: 'spamd', key: 'address', env: 'MOAT_SPAMD', default: '',
    why: 'spamd addresses with failover', parse: listOf(parseScannerAddress) },

  // ---- Logging ------------------------------------------------------------------------------
  { section: 'log', key: 'level', env: 'MOAT_LOG_LEVEL', default: 'info',
    why: 'decision lines are always written; this filters the rest',
    parse: (raw) => parseChoice(raw, ['debug', 'info', 'notice', 'warn', 'error'] as const) },
  { section: 'log', key: 'debug', env: 'MOAT_DEBUG', default: '',
    why: 'components with debug detail switched on, e.g. delivery,relay', parse: parseList },
  { section: 'log', key: 'haraka_level', default: 'warn',
    why: "Haraka's own log lines; Moat's decision lines carry what operators need",
    parse: (raw) => parseChoice(raw,
      ['debug', 'info', 'notice', 'warn', 'error', 'crit'] as const) },
];

export const SETTINGS: readonly SettingSpec[] = [
  ...CORE_SETTINGS, ...REPUTATION_SETTINGS, ...RATELIMIT_SETTINGS, ...AUTH_SETTINGS,
  ...SCAN_SETTINGS, ...RULES_SETTINGS,
];

/** Keys of `[domain ...]` sections besides `recipients`, each owned by one check. */
export const DOMAIN_SETTINGS: readonly DomainSettingSpec[] = [
  ...REPUTATION_DOMAIN_SETTINGS, ...RATELIMIT_DOMAIN_SETTINGS, ...AUTH_DOMAIN_SETTINGS,
  ...SCAN_DOMAIN_SETTINGS, ...RULES_DOMAIN_SETTINGS,
];

export { parseBoolean };
