/*
 * The author of a message: the one mailbox in its one From header field.
 *
 * DMARC judges the domain of the From address, and a mail client shows that address to the
 * reader. When a message has no From, several From fields, a From with several mailboxes, or a
 * From that does not parse, the address the reader sees may not be the one the checks judged
 * (RFC 7489 section 6.6.1), so such messages are refused by the caller. This module only
 * finds and parses; it decides nothing.
 *
 * The parser follows the RFC 5322 address grammar (with RFC 6532 UTF-8 in atoms), strictly:
 * obsolete forms that clients disagree on (source routes, empty list elements, domain
 * literals as author domain) count as unparseable. Untrusted input: every header byte.
 */

export type FromProblem = 'missing' | 'several-fields' | 'several-mailboxes' | 'unparseable';

export interface AuthorMailbox {
  /** local@domain as written (local part unquoted only if it was an atom). */
  address: string;
  /** Lower-case domain without a trailing dot. */
  domain: string;
}

export type AuthorResult =
  | { ok: true; author: AuthorMailbox; fieldCount: 1 }
  | { ok: false; problem: FromProblem; fieldCount: number; detail: string };

/** The header block of a raw message (up to, not including, the empty line). */
export function headerBlock(message: Buffer): string {
  const end = message.indexOf('\r\n\r\n');
  if (message.subarray(0, 2).toString('latin1') === '\r\n') return '';
  return message.subarray(0, end === -1 ? message.length : end + 2).toString('utf8');
}

/** Header fields as [name, value] with folding undone, in order. */
export function headerFields(block: string): Array<[string, string]> {
  const fields: Array<[string, string]> = [];
  for (const line of block.split(/\r?\n/)) {
    if (line === '') continue;
    const last = fields[fields.length - 1];
    if (/^[ \t]/.test(line)) {
      if (last) last[1] += line;
      continue;
    }
    const colon = line.indexOf(':');
    if (colon === -1) continue;
    // "From :" (white space before the colon) is obsolete syntax that readers still accept.
    fields.push([line.slice(0, colon).trimEnd().toLowerCase(), line.slice(colon + 1)]);
  }
  return fields;
}

/** Finds and parses the author of a message from its header block. */
export function findAuthor(block: string): AuthorResult {
  const fromValues = headerFields(block)
    .filter(([name]) => name === 'from').map(([, value]) => value);

  if (fromValues.length === 0) {
    return { ok: false, problem: 'missing', fieldCount: 0, detail: 'no From header field' };
  }
  if (fromValues.length > 1) {
    return { ok: false, problem: 'several-fields', fieldCount: fromValues.length,
      detail: `${fromValues.length} From header fields` };
  }

  const parsed = parseMailboxList(fromValues[0] ?? '');
  if (!parsed.ok) {
    return { ok: false, problem: 'unparseable', fieldCount: 1, detail: parsed.detail };
  }
  if (parsed.mailboxes.length !== 1) {
    return {
      ok: false, problem: parsed.mailboxes.length === 0 ? 'missing' : 'several-mailboxes',
      fieldCount: 1, detail: `${parsed.mailboxes.length} mailboxes in From`,
    };
  }
  return { ok: true, author: parsed.mailboxes[0] as AuthorMailbox, fieldCount: 1 };
}

// ---- Tokens ------------------------------------------------------------------------------

type Token =
  | { kind: 'atom'; text: string }
  | { kind: 'quoted'; text: string }
  | { kind: 'literal'; text: string }
  | { kind: 'special'; text: string };

class FromSyntaxError extends Error {
  constructor(readonly detail: string) {
    super(`From header does not parse: ${detail}`);
    this.name = 'FromSyntaxError';
  }
}

const SPECIALS = '()<>[]:;@\\,."';

function isAtext(char: string): boolean {
  const code = char.codePointAt(0) ?? 0;
  if (code >= 0x80) return true; // RFC 6532 UTF-8 in atoms
  if (code <= 0x20 || code === 0x7f) return false;
  return !SPECIALS.includes(char);
}

/** Splits a header value into tokens, dropping white space and comments. */
function tokenize(value: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < value.length) {
    const char = value[i] as string;
    if (char === ' ' || char === '\t' || char === '\r' || char === '\n') {
      i++;
    } else if (char === '(') {
      i = skipComment(value, i);
    } else if (char === '"') {
      const [text, next] = readDelimited(value, i, '"', 'quoted string');
      tokens.push({ kind: 'quoted', text });
      i = next;
    } else if (char === '[') {
      const [text, next] = readDelimited(value, i, ']', 'domain literal');
      tokens.push({ kind: 'literal', text });
      i = next;
    } else if (isAtext(char)) {
      let end = i;
      while (end < value.length && isAtext(value[end] as string)) end++;
      tokens.push({ kind: 'atom', text: value.slice(i, end) });
      i = end;
    } else if ('<>:;@,.'.includes(char)) {
      tokens.push({ kind: 'special', text: char });
      i++;
    } else {
      throw new FromSyntaxError(`unexpected character ${JSON.stringify(char)}`);
    }
  }
  return tokens;
}

function skipComment(value: string, start: number): number {
  let depth = 0;
  for (let i = start; i < value.length; i++) {
    const char = value[i];
    if (char === '\\') i++;
    else if (char === '(') depth++;
    else if (char === ')' && --depth === 0) return i + 1;
  }
  throw new FromSyntaxError('unterminated comment');
}

function readDelimited(
  value: string, start: number, close: string, what: string,
): [string, number] {
  let text = '';
  for (let i = start + 1; i < value.length; i++) {
    const char = value[i] as string;
    if (char === '\\') {
      text += value[i + 1] ?? '';
      i++;
    } else if (char === close) {
      return [text, i + 1];
    } else if (close === ']' && (char === '[' || char === '\\')) {
      break;
    } else {
      text += char;
    }
  }
  throw new FromSyntaxError(`unterminated ${what}`);
}

// ---- Grammar -----------------------------------------------------------------------------

const DOMAIN_LABEL = /^(?!-)[A-Za-z0-9\u0080-\u{10ffff}-]{1,63}(?<!-)$/u;

class MailboxParser {
  private position = 0;
  readonly mailboxes: AuthorMailbox[] = [];

  constructor(private readonly tokens: Token[]) {}

  parseAddressList(): void {
    if (this.tokens.length === 0) return;
    for (;;) {
      this.parseAddress();
      if (this.atEnd()) return;
      this.expectSpecial(',');
    }
  }

  private parseAddress(): void {
    const phrase = this.readPhrase();
    const next = this.peek();

    if (next?.kind === 'special' && next.text === ':') {
      // group: display-name ":" [mailbox-list] ";" (RFC 6854 allows it in From)
      if (phrase.length === 0) throw new FromSyntaxError('group without a name');
      this.position++;
      if (!this.isSpecial(';')) {
        for (;;) {
          this.parseMailbox();
          if (!this.isSpecial(',')) break;
          this.position++;
        }
      }
      this.expectSpecial(';');
      return;
    }
    this.position -= phrase.length;
    this.parseMailbox();
  }

  private parseMailbox(): void {
    const phrase = this.readPhrase();
    if (this.isSpecial('<')) {
      this.position++;
      if (this.isSpecial('@')) throw new FromSyntaxError('source route');
      this.parseAddrSpec();
      this.expectSpecial('>');
      return;
    }
    this.position -= phrase.length;
    this.parseAddrSpec();
  }

  private parseAddrSpec(): void {
    // local-part: dot-atom or quoted-string
    const first = this.take();
    if (!first || (first.kind !== 'atom' && first.kind !== 'quoted')) {
      throw new FromSyntaxError('expected a local part');
    }
    let local = first.kind === 'quoted'
      ? `"${first.text.replace(/(["\\])/g, '\\$1')}"` : first.text;
    if (first.kind === 'atom') {
      while (this.isSpecial('.')) {
        this.position++;
        const part = this.take();
        if (part?.kind !== 'atom') throw new FromSyntaxError('empty dot-atom part in local part');
        local += `.${part.text}`;
      }
    }
    this.expectSpecial('@');

    // domain: dot-atom that is a host name; a domain literal names no DMARC domain
    const labels: string[] = [];
    for (;;) {
      const label = this.take();
      if (label?.kind === 'literal') throw new FromSyntaxError('domain literal');
      if (label?.kind !== 'atom') throw new FromSyntaxError('expected a domain');
      labels.push(label.text);
      if (!this.isSpecial('.')) break;
      this.position++;
      if (this.peek()?.kind !== 'atom') break; // one trailing dot is tolerated
    }
    if (labels.some((label) => !DOMAIN_LABEL.test(label)) || labels.length < 1) {
      throw new FromSyntaxError('domain is not a host name');
    }
    const domain = labels.join('.').toLowerCase();
    this.mailboxes.push({ address: `${local}@${domain}`, domain });
  }

  /** Words of a display name (atoms, quoted strings, obs-phrase dots); returns them. */
  private readPhrase(): Token[] {
    const words: Token[] = [];
    for (;;) {
      const token = this.peek();
      if (!token) break;
      const word = token.kind === 'atom' || token.kind === 'quoted'
        || (token.kind === 'special' && token.text === '.' && words.length > 0);
      if (!word) break;
      words.push(token);
      this.position++;
    }
    return words;
  }

  atEnd(): boolean {
    return this.position >= this.tokens.length;
  }

  private peek(): Token | undefined {
    return this.tokens[this.position];
  }

  private take(): Token | undefined {
    return this.tokens[this.position++];
  }

  private isSpecial(text: string): boolean {
    const token = this.peek();
    return token?.kind === 'special' && token.text === text;
  }

  private expectSpecial(text: string): void {
    if (!this.isSpecial(text)) {
      const found = this.peek();
      const what = found ? JSON.stringify(found.text) : 'end';
      throw new FromSyntaxError(`expected "${text}", found ${what}`);
    }
    this.position++;
  }
}

/** Parses an RFC 5322 address-list; every mailbox, including those inside groups. */
export function parseMailboxList(value: string):
  { ok: true; mailboxes: AuthorMailbox[] } | { ok: false; detail: string } {
  try {
    const parser = new MailboxParser(tokenize(value));
    parser.parseAddressList();
    if (!parser.atEnd()) throw new FromSyntaxError('trailing text');
    return { ok: true, mailboxes: parser.mailboxes };
  } catch (error) {
    if (!(error instanceof FromSyntaxError)) throw error;
    return { ok: false, detail: error.detail };
  }
}
