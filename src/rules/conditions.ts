/*
 * Evaluates one condition tree against one message. A condition that holds returns the
 * evidence for it: which condition (its path in the rule and file:line:column) and the text
 * that matched, cut to MAX_EVIDENCE_CHARS. Whatever a condition matched (a detector hit, a
 * regex or keyword match, a header value) goes through the detectors' masking first, so a
 * card number, IBAN, SSN or access key id is never shown in clear. With a trace, every node
 * evaluated is recorded and `any`/`all` do not stop early, for `moat rules explain`.
 *
 * LIMITATION: regular expressions run on Node's backtracking engine; a catastrophic pattern
 * written by an author can take long on a large body. Text is cut to rules.max_text_size to
 * bound this, and the evaluation time is a metric (moat_check_duration_seconds{check="rules"}).
 */

import type { CheckResult } from '../verdict/verdict';
import { maskSensitive } from './detectors';
import { domainOf, type FileFacts, type MessageFacts } from './facts';
import { headerValues } from './message';
import type { AddressTest, Condition, FileTest, TextTest } from './schema';

export const MAX_EVIDENCE_CHARS = 80;
const MAX_COUNTED = 10_000;
/** Text either side of a match that is masked with it: longer than any number detected. */
const MASK_MARGIN = 64;

export interface Evidence {
  /** The condition's path in its rule, e.g. `block-exe.when.any[0].attachment`. */
  condition: string;
  where: string;
  /** The text that matched (masked when sensitive). */
  matched: string;
}

export interface TraceEntry extends Evidence {
  holds: boolean;
  depth: number;
}

export interface EvaluationOptions {
  trace?: TraceEntry[];
}

export function evaluate(
  condition: Condition, facts: MessageFacts, options: EvaluationOptions = {}, depth = 0,
): Evidence[] | null {
  // The entry goes in before the children's, so the trace reads top-down.
  const entry: TraceEntry = {
    condition: condition.path, where: condition.where, holds: false, matched: '', depth,
  };
  options.trace?.push(entry);
  const result = evaluateNode(condition, facts, options, depth);
  entry.holds = result !== null;
  entry.matched = isLeaf(condition)
    ? result?.map((evidence) => evidence.matched).filter(Boolean).join('; ') ?? ''
    : '';
  return result;
}

function isLeaf(condition: Condition): boolean {
  return condition.kind !== 'all' && condition.kind !== 'any' && condition.kind !== 'not';
}

function evaluateNode(
  condition: Condition, facts: MessageFacts, options: EvaluationOptions, depth: number,
): Evidence[] | null {
  // Masked before it is cut, with room for a number that runs past the cut.
  const hit = (matched: string): Evidence[] => [{
    condition: condition.path, where: condition.where,
    matched: cut(maskSensitive(matched.slice(0, MAX_EVIDENCE_CHARS + MASK_MARGIN))),
  }];
  const input = facts.input;

  switch (condition.kind) {
    case 'all': {
      const evidence: Evidence[] = [];
      let holds = true;
      for (const item of condition.items) {
        const found = evaluate(item, facts, options, depth + 1);
        if (found) evidence.push(...found);
        else holds = false;
        if (!holds && !options.trace) break;
      }
      return holds ? evidence : null;
    }
    case 'any': {
      let first: Evidence[] | null = null;
      for (const item of condition.items) {
        const found = evaluate(item, facts, options, depth + 1);
        first ??= found;
        if (first && !options.trace) break;
      }
      return first;
    }
    case 'not': {
      const found = evaluate(condition.item, facts, options, depth + 1);
      return found ? null : hit('');
    }
    case 'sender': {
      const matched = matchAddress(condition.test, input.envelope.sender, facts);
      return matched === null ? null : hit(matched);
    }
    case 'recipient': {
      const recipients = input.envelope.recipients;
      const matches = recipients.map((recipient) => matchAddress(condition.test, recipient, facts));
      if (condition.every) {
        return recipients.length > 0 && matches.every((match) => match !== null)
          ? hit(matches.join(', ')) : null;
      }
      const found = matches.find((match) => match !== null);
      return found === undefined || found === null ? null : hit(found);
    }
    case 'client': {
      const ip = normaliseIp(input.envelope.clientIp);
      const family = ip.includes(':') ? 'ipv6' : 'ipv4';
      if (condition.networks && !condition.networks.check(ip, family)) return null;
      if (condition.internal !== null
        && input.internalNetworks.check(ip, family) !== condition.internal) return null;
      return hit(ip);
    }
    case 'header': {
      const values = headerValues(input.message, condition.name);
      if (condition.exists !== null && (values.length > 0) !== condition.exists) return null;
      if (!condition.test) return hit(values[0] ?? `(no ${condition.name})`);
      for (const value of values) {
        const matched = matchText(condition.test, value);
        if (matched !== null) return hit(`${condition.name}: ${matched}`);
      }
      return null;
    }
    case 'from_name': {
      const from = facts.from();
      if (condition.imitatesInternal) {
        if (facts.isAcceptedDomain(domainOf(from.address)) || from.displayName === '') return null;
        const mentioned = /[a-z0-9-]+(?:\.[a-z0-9-]+)+/gi;
        const domains = [...from.displayName.matchAll(mentioned)]
          .map((match) => match[0].replace(/^.*@/, ''));
        if (!domains.some((domain) => facts.isAcceptedDomain(domain))) return null;
      }
      if (condition.test && matchText(condition.test, from.displayName) === null) return null;
      return hit(`From name "${from.displayName}" <${from.address}>`);
    }
    case 'subject': {
      const matched = matchText(condition.test, input.message.subject);
      return matched === null ? null : hit(matched);
    }
    case 'body': {
      const matched = matchText(condition.test, facts.body());
      return matched === null ? null : hit(matched);
    }
    case 'detector': {
      const hits = condition.detectors.flatMap((detector) => facts.detectorHits(detector));
      if (hits.length < condition.minCount) return null;
      const shown = hits.slice(0, 3).map((found) => `${found.detector} ${found.masked}`).join(', ');
      return hit(`${hits.length} hit${hits.length === 1 ? '' : 's'}: ${shown}`);
    }
    case 'attachment': {
      for (const file of facts.allFiles()) {
        if (file.archive !== null && !condition.test.inArchives) continue;
        const matched = matchFile(condition.test, file);
        if (matched !== null) return hit(matched);
      }
      return null;
    }
    case 'attachment_count': {
      const count = input.message.attachments.length;
      if (condition.min !== null && count < condition.min) return null;
      if (condition.max !== null && count > condition.max) return null;
      return hit(`${count} attachment${count === 1 ? '' : 's'}`);
    }
    case 'size': {
      const size = input.message.size;
      if (condition.over !== null && size <= condition.over) return null;
      if (condition.under !== null && size >= condition.under) return null;
      return hit(`${size} bytes`);
    }
    case 'check': {
      const found = resultsOf(input.results, condition.name).find((result) =>
        (condition.results.length === 0 || condition.results.includes(result.result))
        && (condition.actions.length === 0
          || condition.actions.includes(result.action ?? 'deliver')));
      if (!found) return null;
      const note = evidenceNote(found);
      return hit(`${found.check}=${found.result}${found.reason ? ` (${found.reason})` : ''}`
        + `${note ? `: ${note}` : ''}`);
    }
    case 'spam_score': {
      for (const result of resultsOf(input.results, 'spam')) {
        const score = Number(result.evidence?.['score']);
        if (!Number.isFinite(score)) continue;
        if (condition.atLeast !== null && score < condition.atLeast) continue;
        if (condition.below !== null && score >= condition.below) continue;
        return hit(`${result.check} score ${score}`);
      }
      return null;
    }
    case 'virus': {
      const scans = resultsOf(input.results, 'virus');
      const infected = scans.find((result) => result.result === 'fail');
      if (condition.found) {
        if (!infected) return null;
        const names = signaturesOf(infected);
        return hit(`${infected.check}: ${names.length ? names.join(', ') : 'malware found'}`);
      }
      if (infected) return null;
      // Holds for unscanned mail too; the text says whether a scan ran and what it said.
      const said = scans.map((result) => `${result.check}=${result.result}`).join(', ');
      return hit(`no virus reported (${said || 'no virus check ran'})`);
    }
  }
}

/*
 * The other checks' results by family. Moat's checks name themselves `spf`, `dkim`, `dmarc`,
 * `dnsbl:<zone>`, `spamd`, `clamd`...; a rule names the family and any member counts.
 */
const FAMILIES: Record<string, RegExp> = {
  spf: /^spf\b/,
  dkim: /^dkim\b/,
  dmarc: /^dmarc\b/,
  arc: /^arc\b/,
  dnsbl: /^(dnsbl|rbl|dnswl|blocklist|reputation|uribl|surbl|dbl)\b/,
  spam: /^(spam|spamd|spamassassin|rspamd)\b/,
  virus: /^(virus|clamd|clamav|antivirus|av)\b/,
};

export function resultsOf(results: readonly CheckResult[], name: string): CheckResult[] {
  const family = FAMILIES[name];
  return results.filter((result) => (family ? family.test(result.check) : result.check === name));
}

/** The signature names clamd reported: its evidence holds `signatures` (src/scan/policy.ts). */
function signaturesOf(result: CheckResult): string[] {
  const names = result.evidence?.['signatures'];
  return Array.isArray(names) ? names.map(String) : [];
}

/** A few words of a check's evidence worth showing: the lists that listed, signatures, score. */
function evidenceNote(result: CheckResult): string {
  const zones = result.evidence?.['zones'];
  const listed = Array.isArray(zones)
    ? zones.filter((zone: Record<string, unknown>) => zone['outcome'] === 'listed')
      .map((zone: Record<string, unknown>) => String(zone['zone']))
    : [];
  if (listed.length > 0) return `listed by ${listed.join(', ')}`;
  const names = signaturesOf(result);
  if (names.length > 0) return names.join(', ');
  const score = result.evidence?.['score'];
  return typeof score === 'number' ? `score ${score}` : '';
}

function matchAddress(test: AddressTest, address: string, facts: MessageFacts): string | null {
  const lower = address.toLowerCase();
  if (lower === '') return null;
  const domain = domainOf(lower);
  if (test.addresses.has(lower)) return lower;
  if (test.domains.some((wanted) => domain === wanted || domain.endsWith(`.${wanted}`))) {
    return lower;
  }
  if (test.globs.some((glob) => glob.test(lower))) return lower;
  if (test.regex.some((regex) => {
    regex.lastIndex = 0;
    return regex.test(lower);
  })) return lower;
  if (test.acceptedDomain && facts.isAcceptedDomain(domain)) return lower;
  return null;
}

function matchFile(test: FileTest, file: FileFacts): string | null {
  const name = file.name.toLowerCase();
  if (test.names.length && !test.names.some(
    (glob) => glob.test(name) || glob.test(name.split('/').pop() ?? ''))) return null;
  if (test.nameRegex.length && !test.nameRegex.some((regex) => {
    regex.lastIndex = 0;
    return regex.test(file.name);
  })) return null;
  if (test.trueTypes.length && !test.trueTypes.includes(file.trueType)) return null;
  if (test.typeMismatch !== null && file.mismatch !== test.typeMismatch) return null;
  if (test.doubleExtension !== null && file.doubleExtension !== test.doubleExtension) return null;
  if (test.sizeOver !== null && file.size <= test.sizeOver) return null;
  if (test.sizeUnder !== null && file.size >= test.sizeUnder) return null;
  if (test.encrypted !== null && file.encrypted !== test.encrypted) return null;
  if (test.macros !== null && file.macros !== test.macros) return null;
  const where = file.archive ? ` in ${file.archive}` : '';
  const declared = file.declaredType ? ` declared ${file.declaredType}` : '';
  return `${file.name || '(unnamed)'}${where} (${file.trueType}${declared}, ${file.size} bytes`
    + `${file.encrypted ? ', encrypted' : ''}${file.macros ? ', macros' : ''})`;
}

const keywordPatterns = new WeakMap<TextTest, RegExp | null>();

function keywordPattern(test: TextTest): RegExp | null {
  if (keywordPatterns.has(test)) return keywordPatterns.get(test) ?? null;
  const words = [...new Set(test.keywords.map((word) => word.trim()).filter(Boolean))]
    .sort((a, b) => b.length - a.length)
    .map((word) => word.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&').replace(/\s+/g, '\\s+'));
  const pattern = words.length
    ? new RegExp(`(?<![\\p{L}\\p{N}_])(?:${words.join('|')})(?![\\p{L}\\p{N}_])`,
      test.caseSensitive ? 'gu' : 'giu')
    : null;
  keywordPatterns.set(test, pattern);
  return pattern;
}

/** The matched text, or null. equals/contains hold at once; keywords and regex hits add up. */
export function matchText(test: TextTest, text: string): string | null {
  const fold = (value: string): string => (test.caseSensitive ? value : value.toLowerCase());
  if (test.equals.length > 0 || test.contains.length > 0) {
    // Folded only when needed: lower-casing a large body for every rule is costly.
    const folded = fold(text);
    const equal = test.equals.find((value) => fold(value) === folded.trim());
    if (equal !== undefined) return text.trim();
    const contained = test.contains.find((value) => folded.includes(fold(value)));
    if (contained !== undefined) {
      return maskedSlice(text, folded.indexOf(fold(contained)), contained.length);
    }
  }

  let count = 0;
  const shown: string[] = [];
  const patterns = [...test.regex];
  const keywords = keywordPattern(test);
  if (keywords) patterns.push(keywords);
  for (const pattern of patterns) {
    pattern.lastIndex = 0;
    for (const match of text.matchAll(pattern)) {
      count += 1;
      const matched = shown.length < 3 ? maskedSlice(text, match.index, match[0].length) : '';
      if (shown.length < 3 && !shown.includes(matched)) shown.push(matched);
      if (count >= Math.max(test.minCount, 1) || count >= MAX_COUNTED) break;
      if (match[0] === '') pattern.lastIndex += 1;
    }
    if (count >= test.minCount) break;
  }
  if (count === 0 || count < test.minCount) return null;
  return test.minCount > 1 ? `${count} hits: ${shown.join(', ')}` : (shown[0] ?? '');
}

/*
 * `length` characters of `text` from `at`, masked as they stand in their surroundings, so a
 * regex that matched only part of a card number (`\d{12}`) does not show those digits.
 */
function maskedSlice(text: string, at: number, length: number): string {
  const from = Math.max(0, at - MASK_MARGIN);
  const around = maskSensitive(text.slice(from, at + length + MASK_MARGIN));
  return around.slice(at - from, at - from + length);
}

function cut(text: string): string {
  const printable = text.replace(/[\r\n\t]+/g, ' ').replace(/[^\x20-\x7e\u00a0-\uffff]/g, '?');
  return printable.length > MAX_EVIDENCE_CHARS
    ? `${printable.slice(0, MAX_EVIDENCE_CHARS - 3)}...`
    : printable;
}

export function normaliseIp(ip: string): string {
  return ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip;
}
