/*
 * Writes the Haraka home folder Moat runs in: `<state>/haraka/`.
 *
 * Haraka reads its own ini files from `$HARAKA/config` and finds plugins in `$HARAKA/plugins`.
 * Moat's operators never edit those: they edit config/moat.ini and MOAT_* variables, and this
 * step translates the validated MoatConfig into Haraka's files on every start, so the two can
 * never disagree. Plugin folders hold only a package.json pointing at the compiled plugin, which
 * makes Haraka load them with a normal require instead of its vm sandbox (FIELD-NOTES).
 *
 * Needs: write access to the state folder. The TLS key is copied with mode 0600.
 */

import {
  chmodSync, chownSync, copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync,
} from 'node:fs';
import { join, resolve } from 'node:path';
import type { HostPort, MoatConfig } from '../config/types';

/** Moat's Haraka plugins, in the order a message meets them. */
export const MOAT_PLUGINS = [
  'moat-connection', 'moat-reputation', 'moat-envelope', 'moat-ratelimit', 'moat-content',
  'moat-auth', 'moat-scan', 'moat-rules', 'moat-verdict', 'moat-deliver',
];

export interface HarakaHome {
  home: string;
  configDir: string;
}

export function writeHarakaHome(config: MoatConfig, distDir: string): HarakaHome {
  const home = join(config.stateDir, 'haraka');
  const configDir = join(home, 'config');

  // Start from nothing, so a setting removed from moat.ini cannot linger here.
  rmSync(configDir, { recursive: true, force: true });
  rmSync(join(home, 'plugins'), { recursive: true, force: true });
  mkdirSync(configDir, { recursive: true });
  mkdirSync(spoolDir(config), { recursive: true });

  const files: Record<string, string> = {
    'smtp.ini': smtpIni(config),
    'connection.ini': connectionIni(config),
    'log.ini': `[main]\nlevel=${config.log.harakaLevel}\ntimestamps=false\nformat=json\n`,
    'me': `${config.smtp.hostname}\n`,
    'plugins': `${[...(config.smtp.tlsCert ? ['tls'] : []), ...MOAT_PLUGINS].join('\n')}\n`,
    // The hook wrapper answers every hook itself; Haraka's timeout is only the last resort
    // and must be longer than Moat's own deadlines (downstream data timeout plus connect).
    'plugin_timeout': `${Math.ceil(pluginTimeoutMs(config) / 1000)}\n`,
    // Moat forwards with its own client; Haraka's outbound queue is never used.
    'outbound.ini': '[main]\ndisabled=true\n',
    // Haraka reads this for every connection and transaction; haraka-config caches a file it
    // found but looks for a missing one on disk each time (two existsSync calls a message).
    'results.ini': '; Haraka defaults: Moat records its results in its own verdict\n',
  };

  if (config.smtp.tlsCert && config.smtp.tlsKey) {
    copyFileSync(config.smtp.tlsCert, join(configDir, 'tls_cert.pem'));
    copyFileSync(config.smtp.tlsKey, join(configDir, 'tls_key.pem'));
    chmodSync(join(configDir, 'tls_key.pem'), 0o600);
    files['tls.ini'] = '[main]\nkey=tls_key.pem\ncert=tls_cert.pem\n';
  }

  for (const [name, text] of Object.entries(files)) {
    writeFileSync(join(configDir, name), text);
  }

  // One package folder per plugin, pointing at the compiled module.
  for (const plugin of MOAT_PLUGINS) {
    const dir = join(home, 'plugins', plugin);
    mkdirSync(dir, { recursive: true });
    const main = resolve(distDir, 'plugins', `${plugin.replace(/^moat-/, '')}.js`);
    writeFileSync(join(dir, 'package.json'),
      `${JSON.stringify({ name: `haraka-plugin-${plugin}`, private: true, main }, null, 2)}\n`);
  }
  prepareForUnprivilegedUser(config, home);
  return { home, configDir };
}

/**
 * When Moat starts as root and drops to smtp.run_as_user after binding, the folders it writes
 * later (Haraka's queue folder, the Maildir) must already belong to that user.
 */
function prepareForUnprivilegedUser(config: MoatConfig, home: string): void {
  const userName = config.smtp.runAsUser;
  if (!userName || process.getuid?.() !== 0) return;

  const user = lookupAccount('/etc/passwd', userName);
  if (!user) throw new RunAsUserError(userName, 'no such user in /etc/passwd');
  const groupName = config.smtp.runAsGroup;
  const gid = groupName ? lookupAccount('/etc/group', groupName)?.id : user.gid;
  if (gid === undefined) throw new RunAsUserError(groupName ?? '', 'no such group in /etc/group');

  for (const dir of [
    config.stateDir, home, join(home, 'queue'), spoolDir(config), join(config.stateDir, 'maildir'),
  ]) {
    mkdirSync(dir, { recursive: true });
    chownSync(dir, user.id, gid);
  }
}

function lookupAccount(file: string, name: string): { id: number; gid: number } | undefined {
  const line = readFileSync(file, 'utf8').split('\n').find((entry) => entry.startsWith(`${name}:`));
  if (!line) return undefined;
  const fields = line.split(':');
  return { id: Number(fields[2]), gid: Number(fields[3]) };
}

export class RunAsUserError extends Error {
  constructor(readonly account: string, reason: string) {
    super(`smtp.run_as_user/run_as_group: ${JSON.stringify(account)}: ${reason}`);
    this.name = 'RunAsUserError';
  }
}

export function pluginTimeoutMs(config: MoatConfig): number {
  const downstream = config.downstream;
  return downstream.connectTimeoutMs + 4 * downstream.commandTimeoutMs
    + downstream.dataTimeoutMs + 30_000;
}

function smtpIni(config: MoatConfig): string {
  const lines = [
    '[main]',
    `listen=${config.smtp.listen.map(formatHostPort).join(',')}`,
    `nodes=${config.smtp.workers}`,
    `inactivity_timeout=${Math.ceil(config.smtp.idleTimeoutMs / 1000)}`,
    'graceful_shutdown=true',
    `force_shutdown_timeout=${Math.ceil(config.smtp.drainTimeoutMs / 1000) + 5}`,
    'daemonize=false',
    'smtputf8=true',
  ];
  if (config.smtp.runAsUser) lines.push(`user=${config.smtp.runAsUser}`);
  if (config.smtp.runAsGroup) lines.push(`group=${config.smtp.runAsGroup}`);
  return `${lines.join('\n')}\n`;
}

function connectionIni(config: MoatConfig): string {
  const smtp = config.smtp;
  const proxyHosts = smtp.proxyHosts.map((host) => `hosts[]=${host}`).join('\n');
  return [
    '[main]',
    // Past spool_after a message is written to the spool folder while the checks read it,
    // so many large messages at once cost disk, not memory.
    `spool_after=${smtp.spoolAfterBytes}`,
    `spool_dir=${spoolDir(config)}`,
    '[haproxy]',
    proxyHosts,
    '[headers]',
    `max_lines=${smtp.maxHeaderLines}`,
    'max_received=100',
    'show_version=false',
    // Moat writes its own Authentication-Results; Haraka must not add or rename any.
    'clean_auth_results=false',
    '[max]',
    // 0 turns Haraka's size check off: Moat enforces the limit itself so that it can answer
    // 552 5.3.4 (Haraka answers 550) and stops storing data past the limit.
    'bytes=0',
    'mime_parts=1000',
    `line_length=${smtp.maxLineLength}`,
    // Haraka wraps a longer line and flags the transaction (data_line_length_exceeded);
    // Moat refuses such a message rather than forward the altered text.
    `data_line_length=${smtp.maxDataLineLength}`,
    '[message]',
    `helo=${config.smtp.hostname} ESMTP Moat`,
    // The banner names Moat, not the engine and its version.
    'greeting[]=Moat',
    'close=closing connection',
    '[uuid]',
    'banner_chars=0',
    'deny_chars=0',
    '',
  ].join('\n');
}

/** Where Haraka writes messages larger than smtp.spool_after while they are checked. */
export function spoolDir(config: MoatConfig): string {
  return join(config.stateDir, 'haraka', 'spool');
}

export function formatHostPort(address: HostPort): string {
  return address.host.includes(':')
    ? `[${address.host}]:${address.port}`
    : `${address.host}:${address.port}`;
}
