/*
 * A small, strict-enough MIME reader for the rules: walks the parts of a message, decodes
 * base64 and quoted-printable, converts charsets, decodes RFC 2047 words in headers and
 * RFC 2231 file names, and reduces HTML to text.
 *
 * Input is untrusted: nesting is capped at MAX_DEPTH, parts at MAX_PARTS, and a part whose
 * boundary never closes runs to the end of its parent. Anything that cannot be decoded is
 * kept as latin1 text rather than thrown away, so a rule still sees it.
 *
 * LIMITATION: uuencoded and BinHex bodies are not decoded; TNEF (winmail.dat) is an opaque
 * attachment; message/rfc822 parts are attachments (named after their subject) and their
 * own parts are not walked.
 */

import type { RuleAttachment, RuleHeader, RuleMessage } from './message';

const MAX_DEPTH = 12;
const MAX_PARTS = 500;

interface Part {
  headers: RuleHeader[];
  body: Buffer;
}

export function parseMime(raw: Buffer): RuleMessage {
  const top = splitPart(raw);
  const message: RuleMessage = {
    headers: top.headers,
    subject: headerOf(top.headers, 'subject') ?? '',
    text: '',
    attachments: [],
    size: raw.length,
  };
  const texts: string[] = [];
  walk(top, 0, { count: 0 }, texts, message.attachments);
  message.text = texts.join('\n');
  return message;
}

function walk(part: Part, depth: number, budget: { count: number }, texts: string[],
  attachments: RuleAttachment[]): void {
  budget.count += 1;
  if (budget.count > MAX_PARTS) return;
  const contentType = parseParams(headerOf(part.headers, 'content-type') ?? 'text/plain');
  const type = contentType.value.toLowerCase() || 'text/plain';
  const disposition = parseParams(headerOf(part.headers, 'content-disposition') ?? '');

  // Containers: walk the children.
  if (type.startsWith('multipart/') && depth < MAX_DEPTH) {
    const boundary = contentType.params.get('boundary');
    if (boundary) {
      for (const child of splitMultipart(part.body, boundary)) {
        walk(splitPart(child), depth + 1, budget, texts, attachments);
      }
      return;
    }
  }

  const bytes = decodeTransfer(part.body,
    headerOf(part.headers, 'content-transfer-encoding') ?? '');
  const filename = disposition.params.get('filename') ?? contentType.params.get('name') ?? '';
  const isAttachment = filename !== '' || disposition.value.toLowerCase() === 'attachment'
    || !(type === 'text/plain' || type === 'text/html');

  if (!isAttachment) {
    const text = decodeCharset(bytes, contentType.params.get('charset') ?? 'us-ascii');
    texts.push(type === 'text/html' ? htmlToText(text) : text);
    return;
  }
  const name = filename || (type === 'message/rfc822'
    ? `${headerOf(splitPart(bytes).headers, 'subject') ?? 'message'}.eml` : '');
  attachments.push({ filename: name, declaredType: type, bytes, size: bytes.length });
}

/** Headers and body of one entity; headers unfolded and decoded. */
export function splitPart(raw: Buffer): Part {
  let end = raw.indexOf('\r\n\r\n');
  let bodyStart = end + 4;
  const bareEnd = raw.indexOf('\n\n');
  if (end < 0 || (bareEnd >= 0 && bareEnd < end)) {
    end = bareEnd;
    bodyStart = bareEnd + 2;
  }
  if (raw.subarray(0, 2).toString('latin1') === '\r\n' || raw[0] === 0x0a) {
    return { headers: [], body: raw.subarray(raw[0] === 0x0a ? 1 : 2) };
  }
  if (end < 0) {
    end = raw.length;
    bodyStart = raw.length;
  }
  const headerText = raw.subarray(0, end).toString('latin1');
  const headers: RuleHeader[] = [];
  for (const line of headerText.split(/\r?\n(?![ \t])/)) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim();
    const value = line.slice(colon + 1).replace(/\r?\n[ \t]/g, ' ').trim();
    headers.push({ name, value: decodeWords(value) });
  }
  return { headers, body: raw.subarray(bodyStart) };
}

function headerOf(headers: RuleHeader[], name: string): string | undefined {
  return headers.find((header) => header.name.toLowerCase() === name)?.value;
}

function splitMultipart(body: Buffer, boundary: string): Buffer[] {
  const text = body.toString('latin1');
  const delimiter = `--${boundary}`;
  const parts: Buffer[] = [];
  let position = text.startsWith(delimiter) ? 0 : text.indexOf(`\n${delimiter}`);
  while (position >= 0 && parts.length < MAX_PARTS) {
    const lineEnd = text.indexOf('\n', position + 1);
    const marker = text.slice(position, lineEnd < 0 ? undefined : lineEnd).trim();
    if (marker.startsWith(`${delimiter}--`) || lineEnd < 0) break;
    const next = text.indexOf(`\n${delimiter}`, lineEnd);
    const stop = next < 0 ? text.length : (text[next - 1] === '\r' ? next - 1 : next);
    parts.push(body.subarray(lineEnd + 1, Math.max(lineEnd + 1, stop)));
    position = next;
  }
  return parts;
}

function decodeTransfer(body: Buffer, encoding: string): Buffer {
  switch (encoding.trim().toLowerCase()) {
    case 'base64':
      return Buffer.from(body.toString('latin1').replace(/[^A-Za-z0-9+/=]/g, ''), 'base64');
    case 'quoted-printable':
      return decodeQuotedPrintable(body.toString('latin1'));
    default:
      return body;
  }
}

function decodeQuotedPrintable(text: string): Buffer {
  const soft = text.replace(/=\r?\n/g, '');
  const bytes: number[] = [];
  for (let index = 0; index < soft.length; index++) {
    const char = soft.charCodeAt(index);
    if (char === 0x3d && /^[0-9A-Fa-f]{2}$/.test(soft.slice(index + 1, index + 3))) {
      bytes.push(parseInt(soft.slice(index + 1, index + 3), 16));
      index += 2;
    } else {
      bytes.push(char & 0xff);
    }
  }
  return Buffer.from(bytes);
}

export function decodeCharset(bytes: Buffer, charset: string): string {
  const name = charset.trim().toLowerCase().replace(/^"|"$/g, '');
  if (name === '' || name === 'us-ascii' || name === 'ascii') return bytes.toString('latin1');
  try {
    return new TextDecoder(name).decode(bytes);
  } catch {
    return bytes.toString('latin1');
  }
}

/** RFC 2047 encoded words: =?charset?B|Q?text?= */
export function decodeWords(value: string): string {
  if (!value.includes('=?')) return value;
  return value
    .replace(/(=\?[^?]+\?[BbQq]\?[^?]*\?=)\s+(?==\?)/g, '$1')
    .replace(/=\?([^?*]+)(?:\*[^?]*)?\?([BbQq])\?([^?]*)\?=/g, (
      whole, charset: string, kind: string, text: string,
    ) => {
      const bytes = kind.toUpperCase() === 'B'
        ? Buffer.from(text, 'base64')
        : decodeQuotedPrintable(text.replace(/_/g, ' '));
      return decodeCharset(bytes, charset);
    });
}

/** A header value and its parameters; RFC 2231 continuations and charsets understood. */
export function parseParams(header: string): { value: string; params: Map<string, string> } {
  const [value = '', ...rest] = splitOutsideQuotes(header, ';');
  const params = new Map<string, string>();
  const continued = new Map<string, Array<{ index: number; text: string; encoded: boolean }>>();
  for (const item of rest) {
    const equals = item.indexOf('=');
    if (equals < 0) continue;
    const key = item.slice(0, equals).trim().toLowerCase();
    let text = item.slice(equals + 1).trim();
    if (text.startsWith('"') && text.endsWith('"') && text.length >= 2) {
      text = text.slice(1, -1).replace(/\\(.)/g, '$1');
    }
    const extended = /^([^*]+)\*(?:(\d+)\*?)?$/.exec(key);
    if (extended) {
      const base = extended[1] ?? key;
      const list = continued.get(base) ?? [];
      list.push({ index: Number(extended[2] ?? 0), text, encoded: key.endsWith('*') });
      continued.set(base, list);
      continue;
    }
    params.set(key, decodeWords(text));
  }
  for (const [key, pieces] of continued) {
    pieces.sort((a, b) => a.index - b.index);
    let charset = 'utf-8';
    const joined = pieces.map((piece, position) => {
      if (!piece.encoded) return Buffer.from(piece.text, 'latin1');
      let text = piece.text;
      if (position === 0) {
        const match = /^([^']*)'[^']*'(.*)$/.exec(text);
        if (match) {
          charset = match[1] || 'utf-8';
          text = match[2] ?? '';
        }
      }
      return Buffer.from(text.replace(/%([0-9A-Fa-f]{2})/g, (_, hex: string) =>
        String.fromCharCode(parseInt(hex, 16))), 'latin1');
    });
    params.set(key, decodeCharset(Buffer.concat(joined), charset));
  }
  return { value: value.trim(), params };
}

function splitOutsideQuotes(text: string, separator: string): string[] {
  const pieces: string[] = [];
  let current = '';
  let quoted = false;
  for (let index = 0; index < text.length; index++) {
    const char = text[index] ?? '';
    if (char === '"' && text[index - 1] !== '\\') quoted = !quoted;
    if (char === separator && !quoted) {
      pieces.push(current);
      current = '';
    } else {
      current += char;
    }
  }
  pieces.push(current);
  return pieces;
}

const ENTITIES: Record<string, string> = {
  amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: ' ',
};

/** The visible text of an HTML part: scripts and styles dropped, tags removed, entities decoded. */
export function htmlToText(html: string): string {
  return html
    .replace(/<(script|style|head)\b[\s\S]*?<\/\1\s*>/gi, ' ')
    .replace(/<!--[\s\S]*?-->/g, ' ')
    .replace(/<(br|p|div|tr|li|h[1-6])\b[^>]*>/gi, '\n')
    .replace(/<[^>]*>/g, '')
    .replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (whole, entity: string) => {
      if (entity.startsWith('#x') || entity.startsWith('#X')) {
        return safeCodePoint(parseInt(entity.slice(2), 16), whole);
      }
      if (entity.startsWith('#')) return safeCodePoint(parseInt(entity.slice(1), 10), whole);
      return ENTITIES[entity.toLowerCase()] ?? whole;
    })
    .replace(/[ \t]+/g, ' ');
}

function safeCodePoint(code: number, fallback: string): string {
  return Number.isInteger(code) && code > 0 && code <= 0x10ffff
    ? String.fromCodePoint(code)
    : fallback;
}
