/*
 * Settings of the malware and spam scanners (clamd, spamd) and the quarantine. Listed
 * here, apart from the core table, so the checks' owners can grow them without
 * touching the core; defaults.ts appends SCAN_SETTINGS to the table and load.ts calls
 * buildScanConfig. Per-domain keys (allowed in `[domain example.com]` sections) are in
 * SCAN_DOMAIN_SETTINGS.
 *
 * The scanner addresses themselves (clamd.address = MOAT_CLAMD, spamd.address = MOAT_SPAMD)
 * are in the core table. buildScanConfig also checks, at start-up, that Moat never accepts a
 * message larger than clamd takes (smtp.max_message_size against clamd.stream_max_length).
 */

import type { DomainSettingSpec, SettingSpec } from '../defaults';
import { ConfigError } from '../errors';
import {
  parseBoolean, parseChoice, parseDuration, parseInteger, parseSize, ValueProblem,
} from '../values';
import { QUARANTINE_SETTINGS } from '../../quarantine/config';

export type ScannerFailureAction = 'tempfail' | 'deliver';
export type FindingAction = 'reject' | 'quarantine';

/** A spam score such as 5, 7.5 or -1; empty switches the threshold off (null). */
export function parseScore(raw: string): number | null {
  const text = raw.trim();
  if (text === '') return null;
  if (!/^-?\d{1,4}(\.\d{1,3})?$/.test(text)) {
    throw new ValueProblem('a score such as 5, 7.5 or -1, or nothing to switch it off');
  }
  return Number(text);
}

const subjectPrefix = (raw: string): string => {
  if (/[\0\r\n]/.test(raw) || raw.length > 40) {
    throw new ValueProblem('a short one-line text such as [SPAM], or nothing');
  }
  return raw.trim();
};

const failure = (raw: string): ScannerFailureAction => parseChoice(raw, ['tempfail', 'deliver']);
const finding = (raw: string): FindingAction => parseChoice(raw, ['reject', 'quarantine']);

export const SCAN_SETTINGS: readonly SettingSpec[] = [
  // ---- Malware and spam scanning (src/scan, plugins/scan.ts) -------------------------------
  { section: 'scan', key: 'mime_strictness', default: 'strict',
    why: 'strict refuses (554 5.6.0) MIME that two parsers could read differently; lenient logs it',
    parse: (raw) => parseChoice(raw, ['strict', 'lenient']) },
  { section: 'scan', key: 'mime_max_depth', default: '20',
    why: 'nesting of multiparts and attached messages; real mail rarely passes 5',
    parse: (raw) => parseInteger(raw, 1, 100) },
  { section: 'scan', key: 'mime_max_parts', default: '500',
    why: 'parts in one message; more is a scanner-exhaustion trick, not correspondence',
    parse: (raw) => parseInteger(raw, 1, 100_000) },
  { section: 'scan', key: 'bodies_in_memory', default: '1M',
    why: 'decoded parts kept for the rules per message; past it they wait in the spool folder',
    parse: (raw) => parseSize(raw, 0, 1024 ** 3) },
  { section: 'clamd', key: 'required', default: 'false',
    why: 'true refuses to start without clamd.address; false lets mail pass unscanned, loudly',
    parse: parseBoolean },
  { section: 'clamd', key: 'stream_max_length', default: '25M',
    why: "must repeat clamd.conf StreamMaxLength (clamd's default 25M); checked against "
      + 'smtp.max_message_size at start-up', parse: (raw) => parseSize(raw, 1024, 4 * 1024 ** 3) },
  { section: 'clamd', key: 'timeout', default: '60s',
    why: 'absolute deadline for all clamd scans of one message, from its clamd turn; then 451 '
      + '(or fail-open)',
    parse: (raw) => parseDuration(raw, 100, 600_000) },
  { section: 'clamd', key: 'connect_timeout', default: '2s',
    why: 'a clamd that does not connect within this is skipped for the next address',
    parse: (raw) => parseDuration(raw, 50, 60_000) },
  { section: 'clamd', key: 'on_failure', default: 'tempfail',
    why: 'clamd down, slow or garbled: tempfail (451 4.7.1) or deliver marked X-Moat-Unscanned',
    parse: failure },
  { section: 'clamd', key: 'action', default: 'reject',
    why: 'a signature found: reject (554 5.7.0 naming it) or quarantine', parse: finding },
  { section: 'clamd', key: 'heuristics_action', default: 'reject',
    why: 'Heuristics.* (scan limits exceeded, encrypted archives): reject or quarantine',
    parse: finding },
  { section: 'clamd', key: 'scan_parts', default: 'true',
    why: "also scan each decoded attachment, as the recipient's client will read it",
    parse: parseBoolean },
  { section: 'clamd', key: 'max_parallel', default: '8',
    why: 'messages clamd scans at once per gateway process; the others wait their turn in '
      + 'arrival order, and clamd.timeout starts with the turn',
    parse: (raw) => parseInteger(raw, 1, 256) },
  { section: 'clamd', key: 'queue_timeout', default: '120s',
    why: 'longest a message waits for its clamd turn; then 451 (or fail-open) as if clamd '
      + 'were down',
    parse: (raw) => parseDuration(raw, 100, 600_000) },
  { section: 'clamd', key: 'max_parallel_parts', default: '4',
    why: 'attachment scans in flight at once per message, besides the whole message',
    parse: (raw) => parseInteger(raw, 1, 64) },
  { section: 'spamd', key: 'timeout', default: '60s',
    why: 'absolute deadline for the spamd verdict of one message, from its clamd turn',
    parse: (raw) => parseDuration(raw, 100, 600_000) },
  { section: 'spamd', key: 'connect_timeout', default: '2s',
    why: 'a spamd that does not connect within this is skipped for the next address',
    parse: (raw) => parseDuration(raw, 50, 60_000) },
  { section: 'spamd', key: 'on_failure', default: 'tempfail',
    why: 'spamd down or slow: tempfail (451 4.7.1) or deliver marked X-Moat-Unscanned: spam',
    parse: failure },
  { section: 'spamd', key: 'max_size', default: '2M',
    why: 'larger messages are scored on their first max_size octets, never waved through',
    parse: (raw) => parseSize(raw, 4096, 256 * 1024 ** 2) },
  { section: 'spamd', key: 'max_parallel', default: '8',
    why: 'spamd requests in flight per gateway process; more wait their turn, and a waiting '
      + 'message over 128K rereads its prefix when its turn comes instead of holding it',
    parse: (raw) => parseInteger(raw, 1, 256) },
  { section: 'spamd', key: 'user', default: '',
    why: 'sent as User: for per-user spamd settings; empty sends none',
    parse: (raw) => {
      if (raw.trim() !== '' && !/^[A-Za-z0-9._@-]{1,64}$/.test(raw.trim())) {
        throw new ValueProblem('a user name of letters, digits, . _ @ -');
      }
      return raw.trim();
    } },
  { section: 'spamd', key: 'tag_score', default: '5',
    why: "SpamAssassin's usual required score: at or above it, X-Spam-* headers are added",
    parse: parseScore },
  { section: 'spamd', key: 'quarantine_score', default: '',
    why: 'at or above it the message is quarantined; empty: never',
    parse: parseScore },
  { section: 'spamd', key: 'reject_score', default: '15',
    why: 'at or above it the message is refused with 550 5.7.1; well above tag, few mistakes',
    parse: parseScore },
  { section: 'spamd', key: 'subject_prefix', default: '',
    why: 'put before the Subject of tagged mail, e.g. [SPAM]; empty leaves it alone',
    parse: subjectPrefix },

  // ---- Quarantine and local scanners: rows in src/quarantine/config.ts (keep last) ---------
  ...QUARANTINE_SETTINGS,
];

export const SCAN_DOMAIN_SETTINGS: readonly DomainSettingSpec[] = [
  { key: 'spam_tag_score', why: 'spamd.tag_score for this domain', parse: parseScore },
  { key: 'spam_quarantine_score', why: 'spamd.quarantine_score for this domain',
    parse: parseScore },
  { key: 'spam_reject_score', why: 'spamd.reject_score for this domain', parse: parseScore },
  { key: 'spam_subject_prefix', why: 'spamd.subject_prefix for this domain',
    parse: subjectPrefix },
];

export interface SpamThresholds {
  /** null: off. */
  tag: number | null;
  quarantine: number | null;
  reject: number | null;
  subjectPrefix: string;
}

export interface ScanConfig {
  mimeStrictness: 'strict' | 'lenient';
  mimeMaxDepth: number;
  mimeMaxParts: number;
  /** Decoded parts kept in memory per message for the rules; the rest is spilled to disk. */
  bodiesInMemoryBytes: number;
  clamd: {
    required: boolean;
    streamMaxLength: number;
    timeoutMs: number;
    connectTimeoutMs: number;
    onFailure: ScannerFailureAction;
    action: FindingAction;
    heuristicsAction: FindingAction;
    scanParts: boolean;
    maxParallelParts: number;
    maxParallel: number;
    queueTimeoutMs: number;
  };
  spamd: {
    timeoutMs: number;
    connectTimeoutMs: number;
    onFailure: ScannerFailureAction;
    maxSize: number;
    maxParallel: number;
    user: string | null;
    /** Global thresholds; `[domain]` sections override them (spamThresholdsFor). */
    thresholds: SpamThresholds;
  };
}

export function buildScanConfig(get: <T>(name: string) => T): ScanConfig {
  const config: ScanConfig = {
    mimeStrictness: get('scan.mime_strictness'),
    mimeMaxDepth: get('scan.mime_max_depth'),
    mimeMaxParts: get('scan.mime_max_parts'),
    bodiesInMemoryBytes: get('scan.bodies_in_memory'),
    clamd: {
      required: get('clamd.required'),
      streamMaxLength: get('clamd.stream_max_length'),
      timeoutMs: get('clamd.timeout'),
      connectTimeoutMs: get('clamd.connect_timeout'),
      onFailure: get('clamd.on_failure'),
      action: get('clamd.action'),
      heuristicsAction: get('clamd.heuristics_action'),
      scanParts: get('clamd.scan_parts'),
      maxParallelParts: get('clamd.max_parallel_parts'),
      maxParallel: get('clamd.max_parallel'),
      queueTimeoutMs: get('clamd.queue_timeout'),
    },
    spamd: {
      timeoutMs: get('spamd.timeout'),
      connectTimeoutMs: get('spamd.connect_timeout'),
      onFailure: get('spamd.on_failure'),
      maxSize: get('spamd.max_size'),
      maxParallel: get('spamd.max_parallel'),
      user: get<string>('spamd.user') || null,
      thresholds: {
        tag: get('spamd.tag_score'),
        quarantine: get('spamd.quarantine_score'),
        reject: get('spamd.reject_score'),
        subjectPrefix: get('spamd.subject_prefix'),
      },
    },
  };

  // Nothing may be accepted that clamd would refuse to read, and clamd may not be forgotten.
  const clamdAddresses = get<string[]>('clamd.address');
  const maxMessage = get<number>('smtp.max_message_size');
  if (clamdAddresses.length > 0 && maxMessage > config.clamd.streamMaxLength) {
    throw new ConfigError({
      source: 'smtp.max_message_size', key: 'clamd.stream_max_length',
      value: String(config.clamd.streamMaxLength),
      expected: `at least smtp.max_message_size (${maxMessage} bytes): clamd would refuse `
        + 'larger messages; raise StreamMaxLength in clamd.conf and here, or lower the limit',
    });
  }
  if (config.clamd.required && clamdAddresses.length === 0) {
    throw new ConfigError({
      source: 'clamd.required', key: 'clamd.address', value: '',
      expected: 'a clamd address (MOAT_CLAMD) because clamd.required is true',
    });
  }
  return config;
}
