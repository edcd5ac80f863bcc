/*
 * Header From and Subject of a stored message, for `moat quarantine list` and `show`.
 *
 * Reads only the header block at the start of the bytes given (store.ts passes the first
 * 64 KiB), unfolds continuation lines, and returns printable text cut to a sane length: the
 * values came from the sender and end up in an administrator's terminal.
 *
 * LIMITATION: RFC 2047 encoded words are shown as sent (=?utf-8?b?...?=), not decoded.
 */

import { sanitizeForLog } from '../observability/sanitize';

const MAX_CHARS = 200;

export function summarizeHeaders(head: Buffer): { headerFrom: string; subject: string } {
  const text = head.toString('latin1');
  const end = text.search(/\r?\n\r?\n/);
  const block = end === -1 ? text : text.slice(0, end);
  const unfolded = block.replace(/\r?\n[ \t]+/g, ' ');
  return {
    headerFrom: firstValue(unfolded, 'from'),
    subject: firstValue(unfolded, 'subject'),
  };
}

function firstValue(block: string, name: string): string {
  for (const line of block.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon <= 0 || line.slice(0, colon).trim().toLowerCase() !== name) continue;
    return sanitizeForLog(line.slice(colon + 1).trim(), MAX_CHARS);
  }
  return '';
}
