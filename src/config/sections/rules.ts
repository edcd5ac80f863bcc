/*
 * Settings of the content-control rules engine (src/rules). The rules themselves live in
 * YAML files in the rules folder (`rules.dir` / MOAT_RULES_DIR, in the core table); these rows
 * say how that folder is watched and how much of a message the rules read.
 */

import type { DomainSettingSpec, SettingSpec } from '../defaults';
import { parseBoolean, parseDuration, parseSize, ValueProblem } from '../values';

export const RULES_SETTINGS: readonly SettingSpec[] = [
  { section: 'rules', key: 'reload', default: 'true',
    why: 'a changed rule file is loaded without a restart; a bad set is refused whole and the old '
      + 'one keeps running',
    parse: parseBoolean },
  { section: 'rules', key: 'reload_delay', default: '500ms',
    why: 'waits for an editor or git checkout to finish writing all files before reading them',
    parse: (raw) => parseDuration(raw, 50, 60_000) },
  { section: 'rules', key: 'max_text_size', default: '2M',
    why: 'body and text attachments searched by regex, keywords and detectors; beyond it text is '
      + 'not searched',
    parse: (raw) => parseSize(raw, 1024, 64 * 1024 ** 2) },
  { section: 'rules', key: 'notify_from', default: '',
    why: 'From: of notify messages; empty means postmaster@ the gateway host name',
    parse: (raw) => {
      const text = raw.trim();
      if (text !== '' && !/^[^\s@<>"]+@[A-Za-z0-9.-]+$/.test(text)) {
        throw new ValueProblem('an email address or nothing');
      }
      return text;
    } },
];

export const RULES_DOMAIN_SETTINGS: readonly DomainSettingSpec[] = [];

export interface RulesConfig {
  reload: boolean;
  reloadDelayMs: number;
  maxTextChars: number;
  /** '' = postmaster@<smtp.hostname>. */
  notifyFrom: string;
}

export function buildRulesConfig(get: <T>(name: string) => T): RulesConfig {
  return {
    reload: get<boolean>('rules.reload'),
    reloadDelayMs: get<number>('rules.reload_delay'),
    maxTextChars: get<number>('rules.max_text_size'),
    notifyFrom: get<string>('rules.notify_from'),
  };
}
