/*
 * Turns one parsed rule file into compiled rules, checking everything an author can get wrong:
 * unknown keys, missing keys, wrong kinds of value, bad regular expressions, unknown lists,
 * detectors, file types and checks, impossible actions. Problems are collected with their
 * file:line:column (YamlFile) rather than thrown, so one pass reports all of them.
 */

import { BlockList, isIP } from 'node:net';
import { isMap, isScalar, type Node } from 'yaml';
import { parseCidr, parseSize, ValueProblem } from '../config/values';
import { DETECTORS, type DetectorName } from './detectors';
import { TRUE_TYPES, type TrueType } from './filetype';
import { globToRegExp } from './glob';
import {
  DIRECTIONS, FINAL_ACTIONS, MODES, type AddressTest, type Condition, type Direction,
  type FileTest, type FinalActionKind, type Mode, type Rule, type RuleAction, type TextTest,
} from './schema';
import type { YamlFile } from './yaml-node';

export const RULE_KEYS = [
  'id', 'description', 'owner', 'enabled', 'mode', 'direction', 'order', 'expires', 'when',
  'actions',
] as const;

export const CONDITION_KINDS = [
  'all', 'any', 'not', 'sender', 'recipient', 'client', 'header', 'from_name', 'subject', 'body',
  'detector', 'attachment', 'attachment_count', 'size', 'check', 'spam_score', 'virus',
] as const;

const ADDRESS_KEYS = ['address', 'domain', 'glob', 'regex', 'list', 'accepted_domain'] as const;
const TEXT_KEYS = [
  'equals', 'contains', 'regex', 'keywords', 'list', 'min_count', 'case_sensitive',
] as const;
const FILE_KEYS = [
  'name', 'name_regex', 'in_archives', 'true_type', 'type_mismatch', 'double_extension',
  'size_over', 'size_under', 'encrypted', 'macros',
] as const;
const ACTIONS = [
  'reject', 'tempfail', 'quarantine', 'deliver', 'tag_subject', 'add_header', 'remove_header',
  'copy_to', 'redirect', 'notify',
] as const;

/** Headers a rule may not remove: without them the delivered message would be corrupt. */
const PROTECTED_HEADERS = ['content-type', 'content-transfer-encoding', 'mime-version'];

const RULE_ID = /^[a-z0-9][a-z0-9-]{0,62}$/;
const ADDRESS = /^[^\s@<>"]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$/;
const HEADER_NAME = /^[A-Za-z0-9][A-Za-z0-9-]{0,75}$/;
const PRINTABLE = /^[\x20-\x7e]*$/;

export interface CompileContext {
  /** Keyword, domain and address lists by name (lists/<name>.txt). */
  lists: Map<string, string[]>;
}

export function compileRuleFile(yaml: YamlFile, context: CompileContext): Rule[] {
  if (yaml.root === null) {
    if (yaml.problems.length === 0) {
      yaml.problem(null, 'the file is empty', 'rules: followed by a list of rules');
    }
    return [];
  }
  const top = yaml.map(yaml.root, ['rules'], 'a rule file');
  const list = top?.get('rules');
  if (!top) return [];
  if (!list) {
    yaml.problem(yaml.root, 'no "rules:" key', 'rules: followed by a list of rules');
    return [];
  }
  const items = yaml.sequence(list.value, 'rules');
  if (!items) return [];
  const compiled: Rule[] = [];
  items.forEach((item, index) => {
    const rule = compileRule(yaml, item, index, context);
    if (rule) compiled.push(rule);
  });
  return compiled;
}

function compileRule(
  yaml: YamlFile, node: Node, index: number, context: CompileContext,
): Rule | null {
  const fields = yaml.map(node, RULE_KEYS, `rule ${index + 1}`);
  if (!fields) return null;
  const before = yaml.problems.length;
  const required = (key: string): Node | null => {
    const pair = fields.get(key);
    if (!pair) {
      yaml.problem(node, `rule ${index + 1} has no "${key}"`, `a "${key}:" key in every rule`);
    }
    return pair?.value ?? null;
  };

  const idNode = required('id');
  const id = idNode ? yaml.string(idNode, 'id') : null;
  if (id !== null && !RULE_ID.test(id)) {
    yaml.problem(idNode, `rule id "${id}" is not allowed`,
      'lower-case letters, digits and dashes, up to 63');
  }
  const label = id ?? `rule ${index + 1}`;
  const description = required('description');
  const owner = required('owner');
  const modeNode = required('mode');
  const directionNode = required('direction');
  const mode = modeNode ? choice(yaml, modeNode, MODES, 'mode') : null;
  const direction = directionNode ? choice(yaml, directionNode, DIRECTIONS, 'direction') : null;
  const enabledPair = fields.get('enabled');
  const enabled = enabledPair ? yaml.boolean(enabledPair.value, 'enabled') : true;
  const orderPair = fields.get('order');
  const order = orderPair ? yaml.integer(orderPair.value, 'order', 0, 1_000_000) : 1000;
  const expiresPair = fields.get('expires');
  const expires = expiresPair ? expiryOf(yaml, expiresPair.value) : null;

  const whenNode = required('when');
  const when = whenNode ? compileCondition(yaml, whenNode, `${label}.when`, context) : null;
  const actionsNode = required('actions');
  const actions = actionsNode ? compileActions(yaml, actionsNode, label) : null;

  if (yaml.problems.length > before || id === null || !when || !actions || mode === null
    || direction === null || enabled === null || order === null) return null;
  const finals = actions.filter(
    (action) => (FINAL_ACTIONS as readonly string[]).includes(action.kind));
  if (finals.length > 1) {
    yaml.problem(actionsNode, `rule ${id} has ${finals.length} final actions `
      + `(${finals.map((a) => a.kind).join(', ')})`,
      'at most one of reject, tempfail, quarantine, deliver per rule');
    return null;
  }
  return {
    id,
    description: yaml.string(description, 'description') ?? '',
    owner: yaml.string(owner, 'owner') ?? '',
    enabled, mode: mode as Mode, direction: direction as Direction, order,
    expires: expires?.text ?? null,
    expiresAt: expires?.at ?? null,
    when, actions,
    final: (finals[0]?.kind as FinalActionKind | undefined) ?? null,
    where: yaml.where(node),
  };
}

function choice<T extends string>(
  yaml: YamlFile, node: Node, choices: readonly T[], what: string,
): T | null {
  const text = yaml.string(node, what);
  if (text === null) return null;
  if (!(choices as readonly string[]).includes(text)) {
    yaml.problem(node, `${what} "${text}" is not known`, `one of ${choices.join(', ')}`);
    return null;
  }
  return text as T;
}

function expiryOf(yaml: YamlFile, node: Node | null): { text: string; at: number } | null {
  const text = yaml.string(node, 'expires');
  if (text === null) return null;
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text);
  const at = match
    ? Date.UTC(Number(match[1]), Number(match[2]) - 1, Number(match[3]) + 1) - 1
    : NaN;
  if (!match || Number.isNaN(at) || new Date(at).getUTCDate() !== Number(match[3])) {
    yaml.problem(node, `expires "${text}" is not a date`,
      'a date written YYYY-MM-DD (the rule stops after that day, UTC)');
    return null;
  }
  return { text, at };
}

/* ------------------------------------------------------------------ conditions */

export function compileCondition(
  yaml: YamlFile, node: Node, path: string, context: CompileContext,
): Condition | null {
  const entry = yaml.single(node, CONDITION_KINDS, 'condition');
  if (!entry) return null;
  const { key, value } = entry;
  const base = { path: `${path}.${key}`, where: yaml.where(node) };

  switch (key) {
    case 'all':
    case 'any': {
      const items = yaml.sequence(value, key);
      if (!items) return null;
      if (key === 'any' && items.length === 0) {
        yaml.problem(value, 'any: with no conditions never matches', 'at least one condition');
        return null;
      }
      const compiled = items.map(
        (item, index) => compileCondition(yaml, item, `${base.path}[${index}]`, context));
      if (compiled.some((item) => item === null)) return null;
      return { ...base, kind: key, items: compiled as Condition[] };
    }
    case 'not': {
      const item = value ? compileCondition(yaml, value, base.path, context) : null;
      if (!value) yaml.problem(node, 'not: has no condition', 'one condition under not:');
      return item ? { ...base, kind: 'not', item } : null;
    }
    case 'sender':
    case 'recipient': {
      const allowed = key === 'recipient' ? [...ADDRESS_KEYS, 'every'] : ADDRESS_KEYS;
      const fields = yaml.map(value, allowed, `${key} condition`);
      if (!fields) return null;
      const test = addressTest(yaml, fields, value, key, context);
      const everyPair = fields.get('every');
      const every = everyPair ? yaml.boolean(everyPair.value, 'every') : false;
      if (!test || every === null) return null;
      return key === 'sender'
        ? { ...base, kind: 'sender', test }
        : { ...base, kind: 'recipient', test, every };
    }
    case 'client': {
      const fields = yaml.map(value, ['network', 'internal'], 'client condition');
      if (!fields) return null;
      const networkPair = fields.get('network');
      const internalPair = fields.get('internal');
      if (!networkPair && !internalPair) {
        yaml.problem(value, 'client condition tests nothing', 'network: or internal:');
        return null;
      }
      const internal = internalPair ? yaml.boolean(internalPair.value, 'internal') : null;
      let networks: BlockList | null = null;
      const specs: string[] = [];
      if (networkPair) {
        networks = new BlockList();
        for (const entry of yaml.strings(networkPair.value, 'network') ?? []) {
          try {
            addNetwork(networks, parseCidr(entry.text));
            specs.push(entry.text);
          } catch (error) {
            yaml.problem(entry.node, `network "${entry.text}" is not an address or network`,
              error instanceof ValueProblem ? error.expected : 'an address or CIDR network');
          }
        }
      }
      return { ...base, kind: 'client', networks, specs, internal };
    }
    case 'header': {
      const fields = yaml.map(value, ['name', 'exists', ...TEXT_KEYS], 'header condition');
      if (!fields) return null;
      const namePair = fields.get('name');
      const name = namePair ? yaml.string(namePair.value, 'header name') : null;
      if (!namePair) {
        yaml.problem(value, 'header condition has no name', 'name: the header to test');
      }
      if (name !== null && !HEADER_NAME.test(name)) {
        yaml.problem(namePair?.value, `"${name}" is not a header name`,
          'letters, digits and dashes');
      }
      const existsPair = fields.get('exists');
      const exists = existsPair ? yaml.boolean(existsPair.value, 'exists') : null;
      const hasText = TEXT_KEYS.some((textKey) => fields.has(textKey));
      if (!existsPair && !hasText) {
        yaml.problem(value, 'header condition tests nothing',
          'exists:, equals:, contains:, regex: or keywords:');
        return null;
      }
      const test = hasText ? textTest(yaml, fields, value, 'header', context) : null;
      if (name === null || (hasText && !test)) return null;
      return { ...base, kind: 'header', name, exists, test };
    }
    case 'from_name': {
      const fields = yaml.map(value, [...TEXT_KEYS, 'imitates_internal'], 'from_name condition');
      if (!fields) return null;
      const imitatesPair = fields.get('imitates_internal');
      const imitates = imitatesPair ? yaml.boolean(imitatesPair.value, 'imitates_internal') : false;
      const hasText = TEXT_KEYS.some((textKey) => fields.has(textKey));
      if (!hasText && !imitates) {
        yaml.problem(value, 'from_name condition tests nothing',
          'imitates_internal: true or a text test');
        return null;
      }
      const test = hasText ? textTest(yaml, fields, value, 'from_name', context) : null;
      if (imitates === null || (hasText && !test)) return null;
      return { ...base, kind: 'from_name', test, imitatesInternal: imitates };
    }
    case 'subject':
    case 'body': {
      const fields = yaml.map(value, TEXT_KEYS, `${key} condition`);
      const test = fields ? textTest(yaml, fields, value, key, context) : null;
      return test ? { ...base, kind: key, test } : null;
    }
    case 'detector': {
      const fields = yaml.map(value, ['name', 'min_count'], 'detector condition');
      if (!fields) return null;
      const namePair = fields.get('name');
      if (!namePair) {
        yaml.problem(value, 'detector condition has no name',
          `name: one of ${DETECTORS.join(', ')}`);
        return null;
      }
      const detectors: DetectorName[] = [];
      for (const entry of yaml.strings(namePair.value, 'detector name') ?? []) {
        if ((DETECTORS as readonly string[]).includes(entry.text)) {
          detectors.push(entry.text as DetectorName);
        } else {
          yaml.problem(entry.node, `unknown detector "${entry.text}"`,
            `one of ${DETECTORS.join(', ')}`);
        }
      }
      const minPair = fields.get('min_count');
      const minCount = minPair ? yaml.integer(minPair.value, 'min_count', 1, 10_000) : 1;
      if (detectors.length === 0 || minCount === null) return null;
      return { ...base, kind: 'detector', detectors, minCount };
    }
    case 'attachment': {
      const fields = yaml.map(value, FILE_KEYS, 'attachment condition');
      const test = fields ? fileTest(yaml, fields, value) : null;
      return test ? { ...base, kind: 'attachment', test } : null;
    }
    case 'attachment_count':
    case 'size':
    case 'spam_score': {
      const keys = key === 'attachment_count' ? ['min', 'max']
        : key === 'size' ? ['over', 'under'] : ['at_least', 'below'];
      const fields = yaml.map(value, keys, `${key} condition`);
      if (!fields) return null;
      if (fields.size === 0) {
        yaml.problem(value, `${key} condition tests nothing`, `${keys.join(': or ')}:`);
        return null;
      }
      const read = (name: string): number | null | undefined => {
        const pair = fields.get(name);
        if (!pair) return null;
        const parsed = key === 'size' ? sizeOf(yaml, pair.value, name)
          : key === 'spam_score' ? yaml.number(pair.value, name)
            : yaml.integer(pair.value, name, 0, 10_000);
        return parsed === null ? undefined : parsed;
      };
      const [first, second] = [read(keys[0] ?? ''), read(keys[1] ?? '')];
      if (first === undefined || second === undefined) return null;
      if (key === 'attachment_count') return { ...base, kind: key, min: first, max: second };
      if (key === 'size') return { ...base, kind: key, over: first, under: second };
      return { ...base, kind: key, atLeast: first, below: second };
    }
    case 'check': {
      const fields = yaml.map(value, ['name', 'result', 'action'], 'check condition');
      if (!fields) return null;
      const namePair = fields.get('name');
      const name = namePair ? yaml.string(namePair.value, 'check name') : null;
      if (!namePair) {
        yaml.problem(value, 'check condition has no name',
          'name: spf, dkim, dmarc, dnsbl, spam, virus or a check name');
      }
      const results = fields.get('result')
        ? (yaml.strings(fields.get('result')?.value, 'result') ?? []).map((entry) => entry.text)
        : [];
      const actions = fields.get('action')
        ? (yaml.strings(fields.get('action')?.value, 'action') ?? []).map((entry) => entry.text)
        : [];
      if (results.length === 0 && actions.length === 0) {
        yaml.problem(value, 'check condition tests nothing',
          'result: (pass, fail, softfail, none, ...) or action:');
        return null;
      }
      return name === null
        ? null
        : { ...base, kind: 'check', name: name.toLowerCase(), results, actions };
    }
    case 'virus': {
      const found = yaml.boolean(value, 'virus');
      return found === null ? null : { ...base, kind: 'virus', found };
    }
  }
  return null;
}

function addNetwork(list: BlockList, cidr: string): void {
  const [address = '', bits] = cidr.split('/');
  const family = isIP(address) === 6 ? 'ipv6' : 'ipv4';
  if (bits === undefined) list.addAddress(address, family);
  else list.addSubnet(address, Number(bits), family);
}

function sizeOf(yaml: YamlFile, node: Node | null, what: string): number | null {
  const raw = yaml.string(node, what);
  if (raw === null) return null;
  try {
    return parseSize(raw, 0, 1024 ** 4);
  } catch (error) {
    yaml.problem(node, `${what} "${raw}" is not a size`,
      error instanceof ValueProblem ? error.expected : 'a size');
    return null;
  }
}

export function compileRegex(
  yaml: YamlFile, node: Node | null, source: string, caseSensitive: boolean,
): RegExp | null {
  try {
    return new RegExp(source, caseSensitive ? 'g' : 'gi');
  } catch (error) {
    const reason = error instanceof Error
      ? error.message.replace(/^Invalid regular expression: /, '')
      : String(error);
    yaml.problem(node, `bad regular expression: ${reason}`, 'a JavaScript regular expression');
    return null;
  }
}

type Fields = Map<string, { value: Node | null }>;

function listEntries(
  yaml: YamlFile, fields: Fields, context: CompileContext,
): { names: string[]; entries: string[] } {
  const pair = fields.get('list');
  if (!pair) return { names: [], entries: [] };
  const names: string[] = [];
  const entries: string[] = [];
  for (const entry of yaml.strings(pair.value, 'list') ?? []) {
    const list = context.lists.get(entry.text);
    if (!list) {
      const known = [...context.lists.keys()];
      yaml.problem(entry.node, `unknown list "${entry.text}"`,
        known.length ? `one of ${known.join(', ')} (files in lists/)` : 'a file lists/<name>.txt');
      continue;
    }
    names.push(entry.text);
    entries.push(...list);
  }
  return { names, entries };
}

function addressTest(
  yaml: YamlFile, fields: Fields, node: Node | null, what: string, context: CompileContext,
): AddressTest | null {
  const before = yaml.problems.length;
  const test: AddressTest = {
    addresses: new Set(), domains: [], globs: [], regex: [], lists: [], acceptedDomain: false,
  };
  if (!ADDRESS_KEYS.some((key) => fields.has(key))) {
    yaml.problem(node, `${what} condition tests nothing`,
      'address:, domain:, glob:, regex:, list: or accepted_domain:');
    return null;
  }
  const add = (text: string, entryNode: Node | null): void => {
    const value = text.trim().toLowerCase();
    if (value.startsWith('@')) test.domains.push(value.slice(1));
    else if (value.includes('*') || value.includes('?')) test.globs.push(globToRegExp(value));
    else if (value.includes('@')) {
      if (!ADDRESS.test(value)) {
        yaml.problem(entryNode, `"${text}" is not an email address`, 'local@domain');
      }
      test.addresses.add(value);
    } else test.domains.push(value);
  };
  for (const entry of fields.has('address')
    ? yaml.strings(fields.get('address')?.value, 'address') ?? [] : []) {
    if (!ADDRESS.test(entry.text.trim())) {
      yaml.problem(entry.node, `"${entry.text}" is not an email address`, 'local@domain');
    } else test.addresses.add(entry.text.trim().toLowerCase());
  }
  for (const entry of fields.has('domain')
    ? yaml.strings(fields.get('domain')?.value, 'domain') ?? [] : []) {
    test.domains.push(entry.text.trim().toLowerCase().replace(/^@/, ''));
  }
  for (const entry of fields.has('glob')
    ? yaml.strings(fields.get('glob')?.value, 'glob') ?? [] : []) {
    test.globs.push(globToRegExp(entry.text.trim().toLowerCase()));
  }
  for (const entry of fields.has('regex')
    ? yaml.strings(fields.get('regex')?.value, 'regex') ?? [] : []) {
    const regex = compileRegex(yaml, entry.node, entry.text, false);
    if (regex) test.regex.push(regex);
  }
  const lists = listEntries(yaml, fields, context);
  test.lists = lists.names;
  for (const entry of lists.entries) add(entry, fields.get('list')?.value ?? null);
  const acceptedPair = fields.get('accepted_domain');
  if (acceptedPair) {
    test.acceptedDomain = yaml.boolean(acceptedPair.value, 'accepted_domain') ?? false;
  }
  return yaml.problems.length > before ? null : test;
}

function textTest(
  yaml: YamlFile, fields: Fields, node: Node | null, what: string, context: CompileContext,
): TextTest | null {
  const before = yaml.problems.length;
  const casePair = fields.get('case_sensitive');
  const caseSensitive = casePair ? yaml.boolean(casePair.value, 'case_sensitive') ?? false : false;
  const texts = (key: string): string[] => (fields.has(key)
    ? (yaml.strings(fields.get(key)?.value, key) ?? []).map((entry) => entry.text) : []);
  const test: TextTest = {
    equals: texts('equals'), contains: texts('contains'), regex: [], keywords: texts('keywords'),
    minCount: 1, caseSensitive,
  };
  for (const entry of fields.has('regex')
    ? yaml.strings(fields.get('regex')?.value, 'regex') ?? [] : []) {
    const regex = compileRegex(yaml, entry.node, entry.text, caseSensitive);
    if (regex) test.regex.push(regex);
  }
  test.keywords.push(...listEntries(yaml, fields, context).entries);
  const minPair = fields.get('min_count');
  if (minPair) test.minCount = yaml.integer(minPair.value, 'min_count', 1, 100_000) ?? 1;
  if (!['equals', 'contains', 'regex', 'keywords', 'list'].some((key) => fields.has(key))) {
    yaml.problem(node, `${what} condition tests nothing`,
      'equals:, contains:, regex:, keywords: or list:');
  }
  return yaml.problems.length > before ? null : test;
}

function fileTest(yaml: YamlFile, fields: Fields, node: Node | null): FileTest | null {
  const before = yaml.problems.length;
  const bool = (key: string): boolean | null => (fields.has(key)
    ? yaml.boolean(fields.get(key)?.value, key) : null);
  const test: FileTest = {
    names: [], nameRegex: [], inArchives: bool('in_archives') ?? true, trueTypes: [],
    typeMismatch: bool('type_mismatch'), doubleExtension: bool('double_extension'),
    sizeOver: fields.has('size_over')
      ? sizeOf(yaml, fields.get('size_over')?.value as Node, 'size_over') : null,
    sizeUnder: fields.has('size_under')
      ? sizeOf(yaml, fields.get('size_under')?.value as Node, 'size_under') : null,
    encrypted: bool('encrypted'), macros: bool('macros'),
  };
  for (const entry of fields.has('name')
    ? yaml.strings(fields.get('name')?.value, 'name') ?? [] : []) {
    test.names.push(globToRegExp(entry.text.toLowerCase()));
  }
  for (const entry of fields.has('name_regex')
    ? yaml.strings(fields.get('name_regex')?.value, 'name_regex') ?? [] : []) {
    const regex = compileRegex(yaml, entry.node, entry.text, false);
    if (regex) test.nameRegex.push(regex);
  }
  for (const entry of fields.has('true_type')
    ? yaml.strings(fields.get('true_type')?.value, 'true_type') ?? [] : []) {
    if ((TRUE_TYPES as readonly string[]).includes(entry.text)) {
      test.trueTypes.push(entry.text as TrueType);
    } else {
      yaml.problem(entry.node, `unknown file type "${entry.text}"`,
        `one of ${TRUE_TYPES.join(', ')}`);
    }
  }
  if (fields.size === 0 || (fields.size === 1 && fields.has('in_archives'))) {
    yaml.problem(node, 'attachment condition tests nothing',
      `one of ${FILE_KEYS.filter((k) => k !== 'in_archives').join(', ')}`);
  }
  return yaml.problems.length > before ? null : test;
}

/* ------------------------------------------------------------------ actions */

function compileActions(yaml: YamlFile, node: Node, ruleId: string): RuleAction[] | null {
  const items = yaml.sequence(node, 'actions');
  if (!items) return null;
  if (items.length === 0) {
    yaml.problem(node, `rule ${ruleId} has no actions`, 'at least one action');
    return null;
  }
  const actions: RuleAction[] = [];
  for (const item of items) {
    const entry = yaml.single(item, ACTIONS, 'action');
    if (!entry) continue;
    const action = compileAction(yaml, entry.key, entry.value, item);
    if (action) actions.push(action);
  }
  return actions.length === items.length ? actions : null;
}

function replyText(yaml: YamlFile, node: Node | null, what: string): string | null {
  const text = yaml.string(node, what);
  if (text === null) return null;
  if (!PRINTABLE.test(text) || text.length > 200) {
    yaml.problem(node, `${what} has characters that cannot go in an SMTP reply or is too long`,
      'printable ASCII text, up to 200 characters');
    return null;
  }
  return text;
}

function compileAction(
  yaml: YamlFile, kind: string, value: Node | null, node: Node,
): RuleAction | null {
  switch (kind) {
    case 'reject':
    case 'tempfail': {
      const permanent = kind === 'reject';
      const defaults = permanent
        ? { code: 550, enhanced: '5.7.1' }
        : { code: 451, enhanced: '4.7.1' };
      const fields = isMap(value)
        ? yaml.map(value, ['text', 'code', 'enhanced'], `${kind} action`)
        : null;
      if (isMap(value) && !fields) return null;
      const text = replyText(yaml, fields ? fields.get('text')?.value ?? null : value,
        `${kind} text`);
      const code = fields?.get('code')
        ? yaml.integer(fields.get('code')?.value, 'code',
          permanent ? 550 : 450, permanent ? 554 : 452)
        : defaults.code;
      const enhancedNode = fields?.get('enhanced')?.value;
      const enhanced = enhancedNode ? yaml.string(enhancedNode, 'enhanced') : defaults.enhanced;
      if (enhanced !== null
        && !new RegExp(`^${permanent ? 5 : 4}\\.\\d{1,3}\\.\\d{1,3}$`).test(enhanced)) {
        yaml.problem(enhancedNode, `enhanced status "${enhanced}" does not fit a ${kind}`,
          `${permanent ? 5 : 4}.x.y`);
        return null;
      }
      if (text === null || code === null || enhanced === null) return null;
      return { kind, reply: { code, enhanced, text } };
    }
    case 'quarantine': {
      if (isScalar(value) && typeof value.value === 'boolean') {
        if (value.value) return { kind, note: '' };
        yaml.problem(value, 'quarantine: false does nothing', 'quarantine: true or a note');
        return null;
      }
      const note = yaml.string(value, 'quarantine note');
      return note === null ? null : { kind, note };
    }
    case 'deliver': {
      const yes = yaml.boolean(value, 'deliver');
      if (yes === false) yaml.problem(value, 'deliver: false does nothing', 'deliver: true');
      return yes ? { kind } : null;
    }
    case 'tag_subject': {
      const tag = replyText(yaml, value, 'tag_subject');
      return tag === null ? null : { kind, tag: tag.trim() };
    }
    case 'add_header': {
      const fields = yaml.map(value, ['name', 'value'], 'add_header action');
      if (!fields) return null;
      const name = headerName(yaml, fields.get('name')?.value ?? value, 'add_header name');
      const headerValue = replyText(yaml, fields.get('value')?.value ?? value, 'add_header value');
      return name === null || headerValue === null ? null : { kind, name, value: headerValue };
    }
    case 'remove_header': {
      const name = headerName(yaml, value, 'remove_header');
      if (name !== null && PROTECTED_HEADERS.includes(name.toLowerCase())) {
        yaml.problem(value, `removing ${name} would corrupt the message`, 'another header name');
        return null;
      }
      return name === null ? null : { kind, name };
    }
    case 'copy_to':
    case 'redirect': {
      const addresses = addressList(yaml, value, kind);
      return addresses ? { kind, addresses } : null;
    }
    case 'notify': {
      // Either a mapping {to, subject} or an address or list of addresses.
      if (!isMap(value)) {
        const addresses = addressList(yaml, value, 'notify');
        return addresses ? { kind, addresses, subject: '' } : null;
      }
      const fields = yaml.map(value, ['to', 'subject'], 'notify action');
      if (!fields) return null;
      const addresses = addressList(yaml, fields.get('to')?.value ?? value, 'notify to');
      const subjectNode = fields.get('subject')?.value;
      const subject = subjectNode ? replyText(yaml, subjectNode, 'notify subject') : '';
      return addresses && subject !== null ? { kind, addresses, subject } : null;
    }
  }
  yaml.problem(node, `unknown action "${kind}"`, `one of ${ACTIONS.join(', ')}`);
  return null;
}

function headerName(yaml: YamlFile, node: Node | null, what: string): string | null {
  const name = yaml.string(node, what);
  if (name !== null && !HEADER_NAME.test(name)) {
    yaml.problem(node, `"${name}" is not a header name`, 'letters, digits and dashes');
    return null;
  }
  return name;
}

function addressList(yaml: YamlFile, node: Node | null, what: string): string[] | null {
  const entries = yaml.strings(node, what);
  if (!entries) return null;
  const bad = entries.filter((entry) => !ADDRESS.test(entry.text.trim()));
  for (const entry of bad) {
    yaml.problem(entry.node, `"${entry.text}" is not an email address`, 'local@domain');
  }
  return bad.length ? null : entries.map((entry) => entry.text.trim());
}
