/*
 * Adapts the scanning stage's ParsedMessage (src/scan/mime) to the RuleMessage the rules read,
 * so a message is parsed once for clamd, the MIME checks and the rules.
 *
 * It needs the decoded bodies: the walker must have run with `keepBodyBytes` > 0. A part cut
 * at that bound is read as far as it was kept (LIMITATION: a rule then sees only the start of
 * a very large attachment; its size is still the full decoded size).
 *
 * Bodies the walker spilled to files (past scan.bodies_in_memory) are read back here: text
 * parts at once and without blocking (every rule set reads the text), attachments only when
 * a rule looks inside one (type sniffing reads only the head of the file). LIMITATION: that
 * attachment read is synchronous, since the rules
 * evaluate synchronously; it happens only for a message over the in-memory budget whose rules
 * inspect attachment content, and reads a file the walker has just written (page cache).
 */

import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { readFile } from 'node:fs/promises';

import type { MimePart, ParsedMessage } from '../scan/mime/message';
import { decodeEncodedWords } from '../scan/mime/header-fields';
import type { RuleAttachment, RuleHeader, RuleMessage } from './message';
import { decodeCharset, htmlToText } from './mime-reader';

/** True when the parse kept the decoded bodies the rules need. */
export function hasBodies(parsed: ParsedMessage): boolean {
  return parsed.parts.every(
    (part) => part.isMultipart || part.decodedBytes === 0 || part.body !== undefined
      || part.bodyFile !== undefined);
}

export async function fromParsedMessage(
  parsed: ParsedMessage, size: number,
): Promise<RuleMessage> {
  const headers: RuleHeader[] = parsed.root.headers.map((field) => ({
    name: field.raw.slice(0, field.raw.indexOf(':')).trim() || field.name,
    value: decodeEncodedWords(field.value),
  }));
  const subject = headers.find((header) => header.name.toLowerCase() === 'subject')?.value ?? '';
  const texts: string[] = [];
  const attachments: RuleAttachment[] = [];
  for (const part of parsed.parts) {
    if (part.isMultipart || part.children.length > 0) continue;
    if (part.isAttachment) {
      attachments.push(attachmentOf(part));
      continue;
    }
    if (part.contentType !== 'text/plain' && part.contentType !== 'text/html') continue;
    const body = part.body ?? (part.bodyFile ? await readFile(part.bodyFile) : Buffer.alloc(0));
    const text = decodeCharset(body, part.parameters.get('charset') ?? 'us-ascii');
    texts.push(part.contentType === 'text/html' ? htmlToText(text) : text);
  }
  return { headers, subject, text: texts.join('\n'), attachments, size };
}

function attachmentOf(part: MimePart): RuleAttachment {
  let bytes: Buffer | undefined;
  const file = part.bodyFile;
  return {
    filename: part.filename ?? '',
    declaredType: (part.declaredType ?? part.contentType).split(';')[0]?.trim().toLowerCase() ?? '',
    // Read on first use: a rule set that never looks inside attachments never loads them.
    get bytes(): Buffer {
      bytes ??= part.body ?? (part.bodyFile ? readFileSync(part.bodyFile) : Buffer.alloc(0));
      return bytes;
    },
    head: (length: number): Buffer => {
      const inMemory = bytes ?? part.body;
      if (inMemory || !file) return (inMemory ?? Buffer.alloc(0)).subarray(0, length);
      return readHead(file, length);
    },
    size: part.decodedBytes,
  };
}

/** The first `length` octets of a spilled body (fewer when the file is shorter). */
function readHead(path: string, length: number): Buffer {
  const head = Buffer.alloc(length);
  const fd = openSync(path, 'r');
  try {
    return head.subarray(0, readSync(fd, head, 0, length, 0));
  } finally {
    closeSync(fd);
  }
}
