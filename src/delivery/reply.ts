/*
 * SMTP replies from the downstream (internal) mail server: parsing and making them safe to relay.
 *
 * Parses single- and multi-line replies ("250-first", "250 last") into a code, an optional
 * enhanced status code (RFC 3463, e.g. 5.1.1) and text. Input is untrusted in the sense that a
 * broken downstream may send anything: overlong lines and endless continuations are cut off and
 * reported as a protocol error rather than buffered without limit.
 *
 * safeReplyText() turns downstream text into something Moat may repeat to an internet client:
 * printable ASCII only, no CR/LF, at most SAFE_TEXT_MAX characters.
 */

/** Longest reply line we buffer, CRLF included (RFC 5321 says 512; be lenient). */
export const MAX_REPLY_LINE = 4096;
/** Most lines one multi-line reply may have (EHLO lists are the longest, ~20 lines). */
export const MAX_REPLY_LINES = 200;
/** Longest reply text relayed to an internet client. */
export const SAFE_TEXT_MAX = 200;

export interface SmtpReply {
  /** Three-digit reply code, e.g. 250. */
  code: number;
  /** Enhanced status code such as "5.1.1", or '' when the server sent none. */
  enhanced: string;
  /** The text of all lines joined with a space, enhanced code removed. */
  text: string;
  /** The text of each line, without code, separator and enhanced code (EHLO keywords). */
  lines: string[];
}

export class ReplyProtocolError extends Error {
  constructor(
    message: string,
    readonly offendingLine: string,
  ) {
    super(message);
    this.name = 'ReplyProtocolError';
  }
}

const REPLY_LINE = /^([2-5][0-9][0-9])([ -])(.*)$/s;
const ENHANCED = /^([245])\.(\d{1,3})\.(\d{1,3})(?:\s+|$)/;

/** 2, 4 or 5 for a reply code (the class the decision rules care about). */
export function replyClass(code: number): number {
  return Math.floor(code / 100);
}

/**
 * Incremental reader: feed it socket bytes, take complete replies out.
 * It splits on LF and tolerates a missing CR (some servers), since this is output we read.
 */
export class ReplyParser {
  private partial = '';
  private pendingLines: string[] = [];
  private pendingCode = '';

  /** True when bytes of an unfinished line or reply are buffered. */
  hasPartial(): boolean {
    return this.partial.length > 0 || this.pendingLines.length > 0;
  }

  /** Returns every reply completed by this chunk, oldest first. Throws ReplyProtocolError. */
  push(chunk: Buffer): SmtpReply[] {
    const replies: SmtpReply[] = [];
    this.partial += chunk.toString('latin1');

    let newline = this.partial.indexOf('\n');
    while (newline !== -1) {
      const rawLine = this.partial.slice(0, newline).replace(/\r$/, '');
      this.partial = this.partial.slice(newline + 1);
      const reply = this.takeLine(rawLine);
      if (reply) replies.push(reply);
      newline = this.partial.indexOf('\n');
    }

    if (this.partial.length > MAX_REPLY_LINE) {
      throw new ReplyProtocolError('reply line too long', this.partial.slice(0, 80));
    }
    return replies;
  }

  private takeLine(rawLine: string): SmtpReply | null {
    const match = REPLY_LINE.exec(rawLine);
    if (!match) throw new ReplyProtocolError('malformed reply line', rawLine.slice(0, 80));
    const [, code = '', separator, text = ''] = match;

    // Every line of one reply must carry the same code.
    if (this.pendingLines.length > 0 && code !== this.pendingCode) {
      throw new ReplyProtocolError('reply code changed inside a multi-line reply', rawLine);
    }
    this.pendingCode = code;
    this.pendingLines.push(text);
    if (this.pendingLines.length > MAX_REPLY_LINES) {
      throw new ReplyProtocolError('multi-line reply too long', rawLine.slice(0, 80));
    }
    if (separator === '-') return null;

    const reply = buildReply(Number(code), this.pendingLines);
    this.pendingLines = [];
    this.pendingCode = '';
    return reply;
  }
}

/** Builds a reply from its code and the text of each line (as found after "250-"/"250 "). */
export function buildReply(code: number, lineTexts: string[]): SmtpReply {
  let enhanced = '';
  const lines = lineTexts.map((lineText) => {
    const found = ENHANCED.exec(lineText);
    // The enhanced code's class must agree with the reply code's class to count as one.
    if (!found || Number(found[1]) !== replyClass(code)) return lineText;
    if (enhanced === '') enhanced = `${found[1]}.${found[2]}.${found[3]}`;
    return lineText.slice(found[0].length);
  });
  return { code, enhanced, text: lines.join(' ').trim(), lines };
}

/** Parses a complete reply given as text ("250-a\r\n250 b\r\n"). Throws ReplyProtocolError. */
export function parseReply(wire: string): SmtpReply {
  const parser = new ReplyParser();
  const replies = parser.push(Buffer.from(wire.endsWith('\n') ? wire : `${wire}\r\n`, 'latin1'));
  const [reply] = replies;
  if (!reply || replies.length !== 1) {
    throw new ReplyProtocolError('expected exactly one complete reply', wire.slice(0, 80));
  }
  return reply;
}

/**
 * Makes downstream reply text safe to relay to an internet client: anything outside printable
 * ASCII (including CR, LF, tabs and UTF-8) becomes a space, runs of spaces collapse, and the
 * result is cut to `max` characters.
 */
export function safeReplyText(text: string, max = SAFE_TEXT_MAX): string {
  const printable = text.replace(/[^\x20-\x7e]+/g, ' ').replace(/ {2,}/g, ' ').trim();
  if (printable.length <= max) return printable;
  return `${printable.slice(0, max - 3).trimEnd()}...`;
}
