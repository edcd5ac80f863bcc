/*
 * The shape of a compiled rule set: what rules/*.yaml files become once validated.
 *
 * A file holds `rules:`, a list of rules. Each rule has an id, description, owner, enabled,
 * mode (enforce or monitor), direction (inbound, outbound, any), order, optional expiry date,
 * one condition tree under `when:` and a list of `actions:`. docs/rules.md is the reference
 * for authors; this file is the reference for the code. Every compiled node keeps `where`
 * (file:line:column) so evidence and explain output can point back at the rule text.
 */

import type { BlockList } from 'node:net';
import type { SmtpReply } from '../verdict/reasons';
import type { DetectorName } from './detectors';
import type { TrueType } from './filetype';

export const MODES = ['enforce', 'monitor'] as const;
export type Mode = (typeof MODES)[number];

export const DIRECTIONS = ['inbound', 'outbound', 'any'] as const;
export type Direction = (typeof DIRECTIONS)[number];

/** Text tests shared by header, subject, body and display-name conditions. */
export interface TextTest {
  equals: string[];
  contains: string[];
  regex: RegExp[];
  /** Whole words or phrases, case-insensitive; from `keywords:` and `list:` together. */
  keywords: string[];
  /** Keyword and regex hits needed; 1 unless `min_count` says otherwise. */
  minCount: number;
  caseSensitive: boolean;
}

/** Address tests for the envelope sender and recipients; any listed entry may match. */
export interface AddressTest {
  addresses: Set<string>;
  /** A domain matches itself and its subdomains. */
  domains: string[];
  globs: RegExp[];
  regex: RegExp[];
  /** Where the entries came from, for explain output. */
  lists: string[];
  /** True when the test is `accepted_domain: true` (one of Moat's own domains). */
  acceptedDomain: boolean;
}

export interface FileTest {
  names: RegExp[];
  nameRegex: RegExp[];
  /** Also look at the files inside zip archives (default true). */
  inArchives: boolean;
  trueTypes: TrueType[];
  typeMismatch: boolean | null;
  doubleExtension: boolean | null;
  sizeOver: number | null;
  sizeUnder: number | null;
  encrypted: boolean | null;
  macros: boolean | null;
}

interface Base {
  /** `rules[3].when.any[1]`: where the condition sits in its rule, for evidence. */
  path: string;
  /** file:line:column. */
  where: string;
}

export type Condition = Base & (
  | { kind: 'all'; items: Condition[] }
  | { kind: 'any'; items: Condition[] }
  | { kind: 'not'; item: Condition }
  | { kind: 'sender'; test: AddressTest }
  | { kind: 'recipient'; test: AddressTest; every: boolean }
  | { kind: 'client'; networks: BlockList | null; specs: string[]; internal: boolean | null }
  | { kind: 'header'; name: string; exists: boolean | null; test: TextTest | null }
  | { kind: 'from_name'; test: TextTest | null; imitatesInternal: boolean }
  | { kind: 'subject'; test: TextTest }
  | { kind: 'body'; test: TextTest }
  | { kind: 'detector'; detectors: DetectorName[]; minCount: number }
  | { kind: 'attachment'; test: FileTest }
  | { kind: 'attachment_count'; min: number | null; max: number | null }
  | { kind: 'size'; over: number | null; under: number | null }
  | { kind: 'check'; name: string; results: string[]; actions: string[] }
  | { kind: 'spam_score'; atLeast: number | null; below: number | null }
  | { kind: 'virus'; found: boolean }
);

export const FINAL_ACTIONS = ['reject', 'tempfail', 'quarantine', 'deliver'] as const;
export type FinalActionKind = (typeof FINAL_ACTIONS)[number];

export type RuleAction =
  | { kind: 'reject'; reply: SmtpReply }
  | { kind: 'tempfail'; reply: SmtpReply }
  | { kind: 'quarantine'; note: string }
  | { kind: 'deliver' }
  | { kind: 'tag_subject'; tag: string }
  | { kind: 'add_header'; name: string; value: string }
  | { kind: 'remove_header'; name: string }
  | { kind: 'copy_to'; addresses: string[] }
  | { kind: 'redirect'; addresses: string[] }
  | { kind: 'notify'; addresses: string[]; subject: string };

export type ActionKind = RuleAction['kind'];

export const ACTION_KINDS: readonly ActionKind[] = [
  'reject', 'tempfail', 'quarantine', 'deliver', 'tag_subject', 'add_header', 'remove_header',
  'copy_to', 'redirect', 'notify',
];

export interface Rule {
  id: string;
  description: string;
  owner: string;
  enabled: boolean;
  mode: Mode;
  direction: Direction;
  order: number;
  /** End of the expiry day (UTC), as epoch milliseconds; null when the rule never expires. */
  expiresAt: number | null;
  expires: string | null;
  when: Condition;
  actions: RuleAction[];
  /** The rule's final action, if any (at most one per rule). */
  final: FinalActionKind | null;
  /** file:line:column of the rule. */
  where: string;
}

export interface RuleSet {
  /** Rules sorted by order, then id. Disabled rules are kept (explain shows them). */
  rules: Rule[];
  /** Short hash of every rule and list file: names the set in logs and metrics. */
  version: string;
  dir: string;
  files: string[];
  loadedAt: number;
}
