/*
 * Envelope addresses: the path a client gives in `MAIL FROM:<...>` and `RCPT TO:<...>`.
 *
 * Checks one path against the strict mailbox syntax of RFC 5321 section 4.1.2 and returns either
 * the mailbox (local part as given, domain in lower case) or a refusal carrying a stable reason
 * code from ADDRESS_REASONS. The old ways of getting a gateway to relay (percent hack, bang
 * paths, source routes, quoted local parts hiding an `@`, address literals) each have their own
 * code, so the log says which trick was tried. This module decides nothing about SMTP replies:
 * relay.ts turns a refusal into one.
 *
 * Untrusted input: the whole path comes from the client. Refusal texts never echo it; they name
 * a position and a character code at most.
 *
 * LIMITATION: without SMTPUTF8 only ASCII is accepted. With SMTPUTF8, UTF-8 is accepted in the
 * local part and as U-labels in the domain, but no IDNA2008 check or A-label conversion is done:
 * `bücher.example` and `xn--bcher-kva.example` are different domains here, so a domain listed
 * in one form refuses mail addressed in the other (fails closed).
 * LIMITATION: `RCPT TO:<Postmaster>` without a domain (RFC 5321 section 4.1.1.3) is refused as
 * `missing-domain`; the caller may map it to postmaster of an accepted domain before parsing.
 * LIMITATION: quoted-pair (`\x`) is valid RFC 5321 syntax but always refused: internal servers
 * disagree on how to unescape it, which makes it a way to smuggle one address past another.
 */

/** RFC 5321 section 4.5.3.1.1. */
export const MAX_LOCAL_PART_OCTETS = 64;
/** A path is at most 256 octets (4.5.3.1.3); without the angle brackets that leaves 254. */
export const MAX_ADDRESS_OCTETS = 254;
/** RFC 1035 section 2.3.4. */
export const MAX_LABEL_OCTETS = 63;

/** Every reason a path is refused, with its meaning. Codes are stable; never reuse one. */
export const ADDRESS_REASONS = {
  'control-char': 'a control character (0x00-0x1f or 0x7f) appears in the path',
  'bad-brackets': 'angle brackets missing, unbalanced or nested around the path',
  'null-recipient': 'the null path <> was given as a recipient; it is valid only as a sender',
  'backslash-escape': 'a backslash (quoted-pair) appears; refused because servers unescape it '
    + 'differently',
  'source-route': 'a source route (@relay1,@relay2:user@domain) asks us to forward elsewhere',
  'percent-hack': 'a % in the local part (user%other@domain) asks the next server to relay',
  'bang-path': 'a ! (UUCP bang path, host!user) asks the next server to relay',
  'quoted-relay-chars': 'a quoted local part contains @, % or ! and could be re-parsed as a '
    + 'relay address',
  'address-literal': 'the domain is an address literal ([192.0.2.1] or [IPv6:...])',
  'multiple-at': 'more than one @ outside a quoted local part',
  'missing-domain': 'no @domain part',
  'missing-local-part': 'nothing before the @',
  'trailing-dot-domain': 'the domain ends with a dot',
  'local-part-too-long': `the local part is longer than ${MAX_LOCAL_PART_OCTETS} octets`,
  'address-too-long': `the address is longer than ${MAX_ADDRESS_OCTETS} octets`,
  'non-ascii': 'non-ASCII characters without SMTPUTF8',
  'whitespace': 'a space outside a quoted local part',
  'bad-local-part': 'the local part is neither a dot-atom nor a quoted string',
  'bad-domain': 'the domain is not dot-separated labels of letters, digits and hyphens',
} as const;

export type AddressReason = keyof typeof ADDRESS_REASONS;

/** Codes for tricks that try to make us relay; relay.ts answers them with 5.7.1. */
export const RELAY_TRICK_REASONS: ReadonlySet<AddressReason> = new Set<AddressReason>([
  'source-route', 'percent-hack', 'bang-path', 'quoted-relay-chars', 'address-literal',
]);

export interface ParsedAddress {
  ok: true;
  /** As sent, except that needless quotes are removed (`"john"` becomes `john`). */
  localPart: string;
  /** Lower case, no trailing dot; empty only for the null sender. */
  domain: string;
  /** `localPart@domain`, or empty for the null sender. */
  address: string;
  /** True only for `MAIL FROM:<>`. */
  isNullPath: boolean;
  /** True when the address holds non-ASCII characters (only possible with SMTPUTF8). */
  utf8: boolean;
}

export interface AddressRefusal {
  ok: false;
  code: AddressReason;
  /** Human text for logs; never contains the client's input. */
  reason: string;
}

export type AddressResult = ParsedAddress | AddressRefusal;

export interface ParsePathOptions {
  /** The null path `<>` is accepted only for a sender. */
  role: 'sender' | 'recipient';
  /** The client used the SMTPUTF8 parameter on MAIL FROM. */
  smtputf8?: boolean;
}

/**
 * Parse one envelope path, given with or without its angle brackets (`<a@b.example>` or
 * `a@b.example`). Spaces around the brackets are ignored. ESMTP parameters must already be cut
 * off by the caller.
 */
export function parseEnvelopePath(path: string, options: ParsePathOptions): AddressResult {
  const controlAt = findControlChar(path);
  if (controlAt >= 0) {
    const hex = path.charCodeAt(controlAt).toString(16).padStart(2, '0');
    return refuse('control-char', `control character 0x${hex} at position ${controlAt}`);
  }

  const inner = stripBrackets(path.replace(/^ +| +$/g, ''));
  if (inner === null) return refuse('bad-brackets', ADDRESS_REASONS['bad-brackets']);

  if (inner === '') {
    if (options.role === 'recipient') {
      return refuse('null-recipient', ADDRESS_REASONS['null-recipient']);
    }
    return { ok: true, localPart: '', domain: '', address: '', isNullPath: true, utf8: false };
  }

  if (inner.includes('\\')) return refuse('backslash-escape', ADDRESS_REASONS['backslash-escape']);
  if (inner.startsWith('@')) {
    if (inner.includes(':')) return refuse('source-route', ADDRESS_REASONS['source-route']);
    return refuse('missing-local-part', ADDRESS_REASONS['missing-local-part']);
  }

  const split = inner.startsWith('"') ? splitQuoted(inner) : splitUnquoted(inner);
  if (!split.ok) return split;
  return checkParts(split.localPart, split.quoted, split.domain, options.smtputf8 === true);
}

interface SplitPath {
  ok: true;
  /** The local part without its quotes when it was quoted. */
  localPart: string;
  quoted: boolean;
  domain: string;
}

/** `"quoted content"@domain`. */
function splitQuoted(inner: string): SplitPath | AddressRefusal {
  const closing = inner.indexOf('"', 1);
  if (closing < 0) return refuse('bad-local-part', 'the quoted local part is not closed');

  const content = inner.slice(1, closing);
  const rest = inner.slice(closing + 1);
  if (/[@%!]/.test(content)) {
    return refuse('quoted-relay-chars', ADDRESS_REASONS['quoted-relay-chars']);
  }
  if (rest === '') return refuse('missing-domain', ADDRESS_REASONS['missing-domain']);
  if (!rest.startsWith('@')) {
    return refuse('bad-local-part', 'text follows the closing quote of the local part');
  }

  const domain = rest.slice(1);
  if (domain.includes('@')) return refuse('multiple-at', ADDRESS_REASONS['multiple-at']);
  return { ok: true, localPart: content, quoted: true, domain };
}

/** `dot.atom@domain`, or one of the relay tricks written without quotes. */
function splitUnquoted(inner: string): SplitPath | AddressRefusal {
  const at = inner.indexOf('@');
  if (at < 0) {
    if (inner.includes('!')) return refuse('bang-path', ADDRESS_REASONS['bang-path']);
    return refuse('missing-domain', ADDRESS_REASONS['missing-domain']);
  }
  if (inner.indexOf('@', at + 1) >= 0) {
    return refuse('multiple-at', ADDRESS_REASONS['multiple-at']);
  }

  const localPart = inner.slice(0, at);
  if (localPart.includes('%')) return refuse('percent-hack', ADDRESS_REASONS['percent-hack']);
  if (localPart.includes('!')) return refuse('bang-path', ADDRESS_REASONS['bang-path']);
  return { ok: true, localPart, quoted: false, domain: inner.slice(at + 1) };
}

function checkParts(
  localPart: string, quoted: boolean, domain: string, smtputf8: boolean,
): AddressResult {

  // The domain's shape first: literals and trailing dots are tricks, not typos.
  if (domain === '') return refuse('missing-domain', ADDRESS_REASONS['missing-domain']);
  if (domain.startsWith('[')) {
    return refuse('address-literal', ADDRESS_REASONS['address-literal']);
  }
  if (domain.endsWith('.')) {
    return refuse('trailing-dot-domain', ADDRESS_REASONS['trailing-dot-domain']);
  }
  if (localPart === '') {
    return refuse('missing-local-part', ADDRESS_REASONS['missing-local-part']);
  }

  // Lengths, in octets as they travel. A needlessly quoted local part is judged unquoted.
  const unquoteable = quoted && isDotAtom(localPart, smtputf8);
  const shownLocal = quoted && !unquoteable ? `"${localPart}"` : localPart;
  const localOctets = Buffer.byteLength(shownLocal, 'utf8');
  if (localOctets > MAX_LOCAL_PART_OCTETS) {
    return refuse('local-part-too-long', `local part is ${localOctets} octets, `
      + `limit ${MAX_LOCAL_PART_OCTETS}`);
  }
  const addressOctets = localOctets + 1 + Buffer.byteLength(domain, 'utf8');
  if (addressOctets > MAX_ADDRESS_OCTETS) {
    return refuse('address-too-long', `address is ${addressOctets} octets, `
      + `limit ${MAX_ADDRESS_OCTETS}`);
  }

  // Character repertoire, then syntax.
  const utf8 = hasNonAscii(localPart) || hasNonAscii(domain);
  if (utf8 && !smtputf8) return refuse('non-ascii', ADDRESS_REASONS['non-ascii']);
  if (domain.includes(' ') || (!quoted && localPart.includes(' '))) {
    return refuse('whitespace', ADDRESS_REASONS.whitespace);
  }
  if (!quoted && !isDotAtom(localPart, smtputf8)) {
    return refuse('bad-local-part', 'the local part is not a valid dot-atom');
  }
  if (quoted && !isQuotedContent(localPart, smtputf8)) {
    return refuse('bad-local-part', 'the quoted local part holds a character not allowed there');
  }
  const domainProblem = findDomainProblem(domain, smtputf8);
  if (domainProblem !== null) return refuse('bad-domain', domainProblem);

  const lowerDomain = domain.toLowerCase();
  return {
    ok: true, localPart: shownLocal, domain: lowerDomain, address: `${shownLocal}@${lowerDomain}`,
    isNullPath: false, utf8,
  };
}

/** `<inner>` or `inner`; null when brackets are unbalanced or appear inside. */
function stripBrackets(path: string): string | null {
  const inner = path.startsWith('<') && path.endsWith('>') && path.length >= 2
    ? path.slice(1, -1) : path;
  if (inner.includes('<') || inner.includes('>')) return null;
  return inner;
}

function findControlChar(text: string): number {
  for (let index = 0; index < text.length; index++) {
    const unit = text.charCodeAt(index);
    if (unit < 0x20 || unit === 0x7f) return index;
  }
  return -1;
}

function hasNonAscii(text: string): boolean {
  for (let index = 0; index < text.length; index++) {
    if (text.charCodeAt(index) > 0x7f) return true;
  }
  return false;
}

/** RFC 5322 atext symbols; `%` and `!` are in it but were refused as relay tricks before. */
const ATEXT_SYMBOLS = "!#$%&'*+-/=?^_`{|}~";

function isAtextChar(unit: number, smtputf8: boolean): boolean {
  if (unit >= 0x30 && unit <= 0x39) return true;
  if ((unit | 0x20) >= 0x61 && (unit | 0x20) <= 0x7a) return true;
  if (unit > 0x7f) return smtputf8;
  return ATEXT_SYMBOLS.includes(String.fromCharCode(unit));
}

function isDotAtom(text: string, smtputf8: boolean): boolean {
  if (text === '' || text.startsWith('.') || text.endsWith('.') || text.includes('..')) {
    return false;
  }
  for (let index = 0; index < text.length; index++) {
    const unit = text.charCodeAt(index);
    if (unit !== 0x2e && !isAtextChar(unit, smtputf8)) return false;
  }
  return true;
}

/** RFC 5321 qtextSMTP: printable ASCII and space, less `"` and `\` (both refused earlier). */
function isQuotedContent(text: string, smtputf8: boolean): boolean {
  for (let index = 0; index < text.length; index++) {
    const unit = text.charCodeAt(index);
    if (unit > 0x7f && !smtputf8) return false;
    if (unit === 0x22 || unit === 0x5c) return false;
  }
  return true;
}

/** Null when the domain is valid, else why not. */
function findDomainProblem(domain: string, smtputf8: boolean): string | null {
  const labels = domain.split('.');
  for (const label of labels) {
    if (label === '') return 'the domain has an empty label';
    if (Buffer.byteLength(label, 'utf8') > MAX_LABEL_OCTETS) {
      return `a domain label is longer than ${MAX_LABEL_OCTETS} octets`;
    }
    if (label.startsWith('-') || label.endsWith('-')) {
      return 'a domain label starts or ends with a hyphen';
    }
    for (let index = 0; index < label.length; index++) {
      const unit = label.charCodeAt(index);
      const letterOrDigit = (unit >= 0x30 && unit <= 0x39)
        || ((unit | 0x20) >= 0x61 && (unit | 0x20) <= 0x7a);
      if (letterOrDigit || unit === 0x2d) continue;
      if (unit > 0x7f && smtputf8) continue;
      return `character 0x${unit.toString(16)} is not allowed in a domain`;
    }
  }

  // A numeric top-level label makes `user@192.0.2.1` look like an IP address to some servers.
  const topLevel = labels[labels.length - 1] ?? '';
  if (/^[0-9]+$/.test(topLevel)) return 'the top-level label is numeric (a bare IP address?)';
  return null;
}

function refuse(code: AddressReason, reason: string): AddressRefusal {
  return { ok: false, code, reason };
}
