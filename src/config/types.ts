/*
 * The shape of Moat's configuration once loaded and validated.
 *
 * Every value here has been checked by src/config/load.ts; code that receives a MoatConfig may
 * trust it. Durations are milliseconds, sizes are bytes. The defaults, and why each was chosen,
 * live in src/config/defaults.ts and in the comments of config/moat.ini.
 */

import type { QuarantineConfig } from '../quarantine/config';
import type { AuthConfig } from './sections/auth';
import type { RateLimitConfig } from './sections/ratelimit';
import type { RulesConfig } from './sections/rules';
import type { ReputationConfig } from './sections/reputation';
import type { ScanConfig } from './sections/scan';

export interface HostPort {
  host: string;
  port: number;
}

/** How recipients of one accepted domain are checked at RCPT time. */
export type RecipientMode = 'any' | 'list' | 'verify' | 'list+verify';

export interface DomainPolicy {
  /** Lower-case domain name, without a trailing dot. */
  domain: string;
  recipientMode: RecipientMode;
  /** Lower-case full addresses accepted when the mode includes `list`. */
  recipients: Set<string>;
  /** Values of the other `[domain ...]` keys (DOMAIN_SETTINGS), parsed; absent = global. */
  overrides: Map<string, unknown>;
}

export type DownstreamTls = 'off' | 'opportunistic' | 'required';

export interface SmtpConfig {
  listen: HostPort[];
  hostname: string;
  /** Haraka cluster workers; 0 runs a single process. */
  workers: number;
  maxMessageBytes: number;
  /** Haraka keeps a message in memory up to this many octets and on disk past it. */
  spoolAfterBytes: number;
  /** Longest command line, CRLF included. */
  maxLineLength: number;
  /** Longest line inside DATA, CRLF included. */
  maxDataLineLength: number;
  maxHeaderLines: number;
  maxRecipients: number;
  maxConnectionsPerIp: number;
  maxConnections: number;
  idleTimeoutMs: number;
  /** Bytes per second a client must sustain during DATA after the grace period. */
  minDataRate: number;
  minDataRateGraceMs: number;
  /** Pause before the greeting, so clients that talk first reveal themselves. */
  greetingDelayMs: number;
  proxyHosts: string[];
  tlsCert: string | null;
  tlsKey: string | null;
  /** Networks whose clients skip reputation checks (CIDR strings). */
  internalNetworks: string[];
  /** User to switch to after binding, or null to keep the current one. */
  runAsUser: string | null;
  runAsGroup: string | null;
  /** How long SIGTERM waits for transactions in flight before answering 421 and exiting. */
  drainTimeoutMs: number;
  /** Quiet time after traffic before a process collects garbage (0: never). */
  idleCollectMs: number;
  /** How often a process with traffic collects garbage and trims the allocator (0: never). */
  busyCollectMs: number;
  /** Resident size above which a busy process collects garbage, in bytes (0: never). */
  memoryHighBytes: number;
}

export interface DownstreamConfig {
  /** null means: deliver into the local Maildir under the state directory. */
  address: HostPort | null;
  tls: DownstreamTls;
  caFile: string | null;
  /** Name expected in the downstream certificate; defaults to the host. */
  tlsName: string | null;
  heloName: string;
  connectTimeoutMs: number;
  commandTimeoutMs: number;
  /** Deadline for the reply to the final dot, counted from the end of our DATA stream. */
  dataTimeoutMs: number;
  poolSize: number;
  poolIdleMs: number;
  /** Messages sent on one connection before it is closed and replaced. */
  maxMessagesPerConnection: number;
  verifyCachePositiveMs: number;
  verifyCacheNegativeMs: number;
}

export interface MoatConfig {
  /** Where each value came from, for error messages: 'config/moat.ini' or 'MOAT_X'. */
  sources: Record<string, string>;
  configDir: string;
  stateDir: string;
  rulesDir: string;
  smtp: SmtpConfig;
  domains: Map<string, DomainPolicy>;
  downstream: DownstreamConfig;
  metricsListen: HostPort | null;
  dnsServers: HostPort[];
  redisUrl: string | null;
  reputation: ReputationConfig;
  rateLimit: RateLimitConfig;
  auth: AuthConfig;
  scan: ScanConfig;
  /** Quarantine folder and retention, local scanners (src/quarantine/config.ts). */
  quarantine: QuarantineConfig;
  rules: RulesConfig;
  clamd: string[];
  spamd: string[];
  log: {
    level: 'debug' | 'info' | 'notice' | 'warn' | 'error';
    debug: Set<string>;
    harakaLevel: string;
  };
}
