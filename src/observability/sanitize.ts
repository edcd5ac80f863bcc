/*
 * Making untrusted text safe to write into a log line.
 *
 * Everything that came from an SMTP client or a remote server (HELO names, addresses, header
 * values, reply text) may hold CR, LF, escape sequences, NUL, invalid UTF-16 or megabytes of
 * junk. Before it reaches a log it passes through here and comes out as printable ASCII of a
 * bounded length, so that one log line stays one line and a reader's terminal stays sane.
 *
 * Escapes: a backslash becomes `\\`; other control characters and bytes 0x7f-0xff become
 * `\xNN`; code points above 0xff (and lone surrogates) become `\u{N}`. Because the backslash
 * itself is escaped, a client cannot forge an escape: `\x0d` in the log is always a real CR.
 */

/** Default cut-off, in characters of output, for one string field. */
export const MAX_FIELD_CHARS = 256;

const MAX_ARRAY_ITEMS = 50;
const MAX_OBJECT_KEYS = 50;
/* A decision line's evidence sits four levels down (evidence > checks > [i] > evidence), and
 * what a check reports there may be a list or an object of its own (spamd's rules, a DNS list's
 * zones, DMARC's alignment): six levels keep all of it. */
const MAX_DEPTH = 6;
const MAX_KEY_CHARS = 64;
/** Printable ASCII other than the backslash: characters escapeChar() leaves as they are. */
const PLAIN = /^[\x20-\x5b\x5d-\x7e]*$/;

/**
 * Returns `text` as printable ASCII, at most `max` characters of content; if it was cut, a
 * marker `...[+N]` follows, N being the number of input characters left out.
 * A Buffer is read byte by byte (latin1), so every byte that is not printable shows as `\xNN`.
 */
export function sanitizeForLog(text: unknown, max: number = MAX_FIELD_CHARS): string {
  const input = Buffer.isBuffer(text) ? text.toString('latin1') : String(text ?? '');
  const limit = Math.max(0, Math.floor(max));
  // Most fields are already printable and short: nothing to escape or cut.
  if (input.length <= limit && PLAIN.test(input)) return input;

  let output = '';
  let consumed = 0;
  for (const char of input) {
    const shown = escapeChar(char);
    if (output.length + shown.length > limit) break;
    output += shown;
    consumed += char.length;
  }

  // Cut: say how much is missing rather than dropping it silently.
  if (consumed < input.length) output += `...[+${input.length - consumed}]`;
  return output;
}

function escapeChar(char: string): string {
  const code = char.codePointAt(0) ?? 0;
  if (char === '\\') return '\\\\';
  if (code >= 0x20 && code < 0x7f) return char;
  if (code <= 0xff) return `\\x${code.toString(16).padStart(2, '0')}`;
  return `\\u{${code.toString(16)}}`;
}

/**
 * Returns a copy of a structured value (evidence, extra log fields) in which every string is
 * sanitized, keys included, and size is bounded: depth, keys per object and items per array.
 * Numbers, booleans and null pass through; an Error becomes { name, message, code, cause };
 * anything else (functions, symbols) becomes its type name.
 */
export function sanitizeValue(value: unknown, max: number = MAX_FIELD_CHARS, depth = 0): unknown {
  if (value === null || value === undefined) return null;
  if (typeof value === 'string' || Buffer.isBuffer(value)) return sanitizeForLog(value, max);
  if (typeof value === 'number') return Number.isFinite(value) ? value : String(value);
  if (typeof value === 'boolean') return value;
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value.toISOString();
  if (typeof value !== 'object') return `[${typeof value}]`;
  if (depth >= MAX_DEPTH) return '[too deep]';

  if (value instanceof Error) return sanitizeError(value, max, depth);

  if (Array.isArray(value)) {
    const items = value.slice(0, MAX_ARRAY_ITEMS)
      .map((item) => sanitizeValue(item, max, depth + 1));
    if (value.length > MAX_ARRAY_ITEMS) items.push(`...[+${value.length - MAX_ARRAY_ITEMS}]`);
    return items;
  }

  const copy: Record<string, unknown> = {};
  const entries = Object.entries(value as Record<string, unknown>);
  for (const [key, item] of entries.slice(0, MAX_OBJECT_KEYS)) {
    if (item === undefined) continue;
    copy[sanitizeForLog(key, MAX_KEY_CHARS)] = sanitizeValue(item, max, depth + 1);
  }
  if (entries.length > MAX_OBJECT_KEYS) copy['...'] = `[+${entries.length - MAX_OBJECT_KEYS}]`;
  return copy;
}

function sanitizeError(error: Error, max: number, depth: number): Record<string, unknown> {
  const described: Record<string, unknown> = {
    name: sanitizeForLog(error.name, MAX_KEY_CHARS),
    message: sanitizeForLog(error.message, max),
  };
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' || typeof code === 'number') {
    described.code = sanitizeValue(code, MAX_KEY_CHARS);
  }
  if (error.cause !== undefined) described.cause = sanitizeValue(error.cause, max, depth + 1);
  return described;
}
