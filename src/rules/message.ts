/*
 * The message as the rules see it: headers, subject, the decoded text of the body (text and
 * HTML parts), and the attachments with their bytes. Rules read only this interface, so the
 * MIME parsing behind it can be shared with the other checks (one parse per message).
 *
 * In the gateway, plugins/rules.ts adapts the scanning stage's parse (./scan-adapter.ts).
 * `fromRawMessage` builds it with the small MIME reader in mime-reader.ts, for the command-line
 * tools and for a message the scanning stage did not parse.
 */

import { parseMime } from './mime-reader';

export interface RuleHeader {
  /** As written, e.g. `Subject`. */
  name: string;
  /** Unfolded, RFC 2047 encoded words decoded. */
  value: string;
}

export interface RuleAttachment {
  /** Decoded file name; empty when the part has none. */
  filename: string;
  /** The Content-Type the sender declared, lower case, without parameters. */
  declaredType: string;
  /** The decoded content. */
  bytes: Buffer;
  /**
   * The first `length` octets, without loading the rest when the content is in a file (type
   * sniffing reads 32 KB of what may be a 20 MB attachment). Absent: `bytes` is in memory.
   */
  head?: (length: number) => Buffer;
  size: number;
}

export interface RuleMessage {
  headers: RuleHeader[];
  subject: string;
  /** The decoded text of the text/plain and text/html parts (HTML reduced to its text). */
  text: string;
  attachments: RuleAttachment[];
  /** Size of the message as received, in bytes. */
  size: number;
}

export function headerValues(message: RuleMessage, name: string): string[] {
  const wanted = name.toLowerCase();
  return message.headers.filter((header) => header.name.toLowerCase() === wanted)
    .map((header) => header.value);
}

export function fromRawMessage(raw: Buffer): RuleMessage {
  return parseMime(raw);
}
