/*
 * Reads one MIME header block strictly: the fields, their folds, and the parameters of
 * Content-Type and Content-Disposition (RFC 2045, RFC 2231, RFC 2047 encoded words in names).
 *
 * Everything here is untrusted text from the message. Strings are latin1 (one char per
 * octet), so no byte is lost or reinterpreted before the checks run. Problems are reported
 * through the `report` callback; the parsed values are always returned, read the way most
 * mail clients read them, so lenient mode can go on.
 */

import type { MimeProblemCode } from './problems';

export interface HeaderField {
  /** Lower-case field name. */
  name: string;
  /** The field as received, folds included, without the final CRLF. */
  raw: string;
  /** The value after the colon, unfolded (CRLF removed, whitespace kept), trimmed. */
  value: string;
}

export interface ParsedParameters {
  /** Lower-case names; values decoded (RFC 2231 joined and percent-decoded). */
  values: Map<string, string>;
}

export type Report = (code: MimeProblemCode, detail: string) => void;

/** Fields whose duplication or odd folding changes how the part is read. */
export const STRUCTURAL_FIELDS = new Set([
  'content-type', 'content-transfer-encoding', 'content-disposition', 'mime-version',
]);

/** Turns the raw lines of one header block (without CRLF) into fields. */
export function headerFields(lines: readonly string[], report: Report): HeaderField[] {
  const fields: HeaderField[] = [];
  let current: string | null = null;

  const finish = (): void => {
    if (current === null) return;
    const colon = current.indexOf(':');
    const name = current.slice(0, colon).trim().toLowerCase();
    const value = current.slice(colon + 1).replace(/\r\n/g, '').trim();
    fields.push({ name, raw: current, value });
    current = null;
  };

  for (const line of lines) {
    if (/^[ \t]/.test(line)) {
      if (current === null) report('mime-header-malformed', 'a fold before any field');
      else current += `\r\n${line}`;
      continue;
    }
    finish();
    if (!/^[\x21-\x39\x3b-\x7e]+[ \t]*:/.test(line)) {
      report('mime-header-malformed', line.slice(0, 40));
      continue;
    }
    current = line;
  }
  finish();

  // Structural fields: once each, folded only between parameters.
  const seen = new Set<string>();
  for (const field of fields) {
    if (!STRUCTURAL_FIELDS.has(field.name)) continue;
    if (seen.has(field.name)) report('mime-duplicate-header', field.name);
    seen.add(field.name);
    if (!foldsAreHarmless(field.raw)) report('mime-folded-header', field.name);
  }
  return fields;
}

/**
 * A fold is harmless after the colon or a `;`, before a `;`, or between two RFC 2047 encoded
 * words; anywhere else it splits a token or a quoted string, and parsers disagree on whether
 * the whitespace belongs to the value.
 */
export function foldsAreHarmless(raw: string): boolean {
  const folds = raw.split('\r\n');
  for (let index = 1; index < folds.length; index += 1) {
    const before = folds.slice(0, index).join('').trimEnd();
    const after = (folds[index] ?? '').trimStart();
    const last = before.at(-1) ?? '';
    if (last === ';' || last === ':' || after.startsWith(';') || after === '') continue;
    if (before.endsWith('?=') && after.startsWith('=?')) continue;
    return false;
  }
  return true;
}

interface RawParameter {
  name: string;
  value: string;
}

/** Splits `type/subtype; a=b; c="d"` into the leading value and its parameters. */
export function splitParameters(value: string, report: Report): {
  head: string; params: RawParameter[];
} {
  const params: RawParameter[] = [];
  let index = value.indexOf(';');
  const head = (index === -1 ? value : value.slice(0, index)).trim();
  if (index === -1) return { head, params };

  while (index < value.length) {
    // Skip the separator and whitespace; an empty parameter (`;;`) is tolerated.
    while (index < value.length && /[;\s]/.test(value[index] ?? '')) index += 1;
    if (index >= value.length) break;

    const equals = value.indexOf('=', index);
    const nextSemicolon = value.indexOf(';', index);
    if (equals === -1 || (nextSemicolon !== -1 && nextSemicolon < equals)) {
      const end = nextSemicolon === -1 ? value.length : nextSemicolon;
      report('mime-parameter-invalid', value.slice(index, end).trim().slice(0, 40));
      index = end;
      continue;
    }
    const name = value.slice(index, equals).trim().toLowerCase();
    index = equals + 1;
    while (value[index] === ' ' || value[index] === '\t') index += 1;

    let paramValue = '';
    if (value[index] === '"') {
      index += 1;
      let closed = false;
      while (index < value.length) {
        const char = value[index] ?? '';
        if (char === '\\' && index + 1 < value.length) {
          paramValue += value[index + 1];
          index += 2;
          continue;
        }
        if (char === '"') {
          closed = true;
          index += 1;
          break;
        }
        paramValue += char;
        index += 1;
      }
      if (!closed) report('mime-parameter-invalid', `${name}: unterminated quote`);
      // Anything between the closing quote and the next `;` is junk a client may keep.
      const rest = value.indexOf(';', index);
      const junk = value.slice(index, rest === -1 ? value.length : rest).trim();
      if (junk !== '') report('mime-parameter-invalid', `${name}: text after the quote`);
      index = rest === -1 ? value.length : rest;
    } else {
      const end = value.indexOf(';', index);
      paramValue = value.slice(index, end === -1 ? value.length : end).trim();
      index = end === -1 ? value.length : end;
    }
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) {
      report('mime-parameter-invalid', name.slice(0, 40));
      continue;
    }
    params.push({ name, value: paramValue });
  }
  return { head, params };
}

interface Sections {
  /** Section number → value and whether it is percent-encoded. */
  parts: Map<number, { value: string; extended: boolean }>;
  order: number[];
}

/** Joins RFC 2231 parameters and checks for the tricks that make parsers disagree. */
export function parseParameters(params: readonly RawParameter[], report: Report): ParsedParameters {
  const plain = new Map<string, string>();
  const single = new Map<string, string>();
  const continued = new Map<string, Sections>();

  for (const { name, value } of params) {
    const section = /^(.+?)\*(\d+)(\*?)$/.exec(name);
    if (section) {
      const base = section[1] ?? '';
      const digits = section[2] ?? '';
      let entry = continued.get(base);
      if (!entry) {
        entry = { parts: new Map(), order: [] };
        continued.set(base, entry);
      }
      const number = Number(digits);
      if (entry.parts.has(number)) report('mime-rfc2231-duplicate', `${base}*${digits}`);
      if (digits.length > 1 && digits.startsWith('0')) report('mime-rfc2231-order', name);
      entry.parts.set(number, { value, extended: section[3] === '*' });
      entry.order.push(number);
      continue;
    }
    if (name.endsWith('*')) {
      const base = name.slice(0, -1);
      if (single.has(base)) report('mime-duplicate-parameter', name);
      single.set(base, value);
      continue;
    }
    if (plain.has(name)) report('mime-duplicate-parameter', name);
    plain.set(name, value);
  }

  // Decode each form; the RFC 2231 form wins, as in most clients.
  const values = new Map(plain);
  for (const [base, raw] of single) {
    const decoded = decodeExtended(raw, true, report, base);
    if (continued.has(base)) report('mime-rfc2231-mixed', `${base}* and ${base}*0`);
    compareWithPlain(plain, base, decoded, report);
    values.set(base, decoded);
  }
  for (const [base, sections] of continued) {
    const decoded = joinSections(base, sections, report);
    if (!single.has(base)) compareWithPlain(plain, base, decoded, report);
    values.set(base, decoded);
  }
  return { values };
}

function compareWithPlain(
  plain: Map<string, string>, base: string, decoded: string, report: Report,
): void {
  const other = plain.get(base);
  if (other === undefined) return;
  if (decodeEncodedWords(other) !== decoded) report('mime-rfc2231-mixed', base);
}

function joinSections(base: string, sections: Sections, report: Report): string {
  // RFC 2231 sections must run 0, 1, 2... as written; anything else is read differently.
  const inOrder = sections.order.every((number, index) => number === index);
  if (!inOrder) report('mime-rfc2231-order', `${base}: sections ${sections.order.join(',')}`);

  // Join in numeric order; the first section may carry charset'language'.
  const numbers = [...sections.parts.keys()].sort((a, b) => a - b);
  const first = sections.parts.get(0);
  const charset = first?.extended ? charsetOf(first.value) : null;
  const bytes: Buffer[] = [];
  for (const number of numbers) {
    const part = sections.parts.get(number);
    if (!part) continue;
    let text = part.value;
    if (number === 0 && part.extended) text = text.replace(/^[^']*'[^']*'/, '');
    bytes.push(part.extended ? percentDecode(text, report, base) : Buffer.from(text, 'latin1'));
  }
  return decodeCharset(Buffer.concat(bytes), charset ?? 'utf-8');
}

function charsetOf(value: string): string | null {
  const match = /^([^']*)'[^']*'/.exec(value);
  return match ? (match[1] || null) : null;
}

function decodeExtended(raw: string, hasCharset: boolean, report: Report, base: string): string {
  const match = /^([^']*)'([^']*)'(.*)$/s.exec(raw);
  if (hasCharset && !match) {
    report('mime-parameter-invalid', `${base}*: no charset'language' prefix`);
    return raw;
  }
  const charset = match?.[1] || 'us-ascii';
  return decodeCharset(percentDecode(match?.[3] ?? raw, report, base), charset);
}

function percentDecode(text: string, report: Report, base: string): Buffer {
  if (/%(?![0-9A-Fa-f]{2})/.test(text)) report('mime-parameter-invalid', `${base}: bad % escape`);
  const bytes: number[] = [];
  for (let index = 0; index < text.length; index += 1) {
    const hex = text.slice(index + 1, index + 3);
    if (text[index] === '%' && /^[0-9A-Fa-f]{2}$/.test(hex)) {
      bytes.push(parseInt(hex, 16));
      index += 2;
    } else {
      bytes.push(text.charCodeAt(index) & 0xff);
    }
  }
  return Buffer.from(bytes);
}

/** Decodes bytes in a named charset; unknown charsets fall back to latin1, nothing throws. */
export function decodeCharset(bytes: Buffer, charset: string): string {
  const label = charset.trim().toLowerCase() || 'utf-8';
  try {
    return new TextDecoder(label === 'us-ascii' ? 'utf-8' : label).decode(bytes);
  } catch {
    return bytes.toString('latin1');
  }
}

/** Decodes RFC 2047 encoded words (`=?utf-8?B?...?=`); whitespace between two words goes. */
export function decodeEncodedWords(text: string): string {
  const word = /=\?([^?\s]+)\?([BbQq])\?([^?\s]*)\?=/g;
  if (!word.test(text)) return text;
  const joined = text.replace(/(\?=)\s+(?==\?)/g, '$1');
  return joined.replace(word, (_whole, charset: string, encoding: string, data: string) => {
    const label = charset.replace(/\*.*$/, '');
    const bytes = encoding.toUpperCase() === 'B'
      ? Buffer.from(data, 'base64')
      : Buffer.from(data.replace(/_/g, ' ').replace(/=([0-9A-Fa-f]{2})/g,
        (_match, hex: string) => String.fromCharCode(parseInt(hex, 16))), 'latin1');
    return decodeCharset(bytes, label);
  });
}
