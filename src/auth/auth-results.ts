/*
 * The Authentication-Results header (RFC 8601): the one Moat writes, and the forged ones it
 * removes.
 *
 * Moat writes exactly one, naming its authserv-id, listing SPF, each DKIM signature, ARC and
 * DMARC. Downstream filters and mail clients trust an A-R header that names their own gateway,
 * so any A-R header arriving from outside that claims Moat's authserv-id is a forgery (RFC 8601
 * section 5) and is removed from the delivered copy; A-R headers of other servers are kept.
 * Untrusted input: the incoming header values.
 */

/** The authserv-id an A-R header value claims, lower-case, without a trailing dot. */
export function authservIdOf(value: string): string {
  let i = 0;

  // Leading white space and comments (CFWS) come before the id.
  for (;;) {
    while (i < value.length && /\s/.test(value[i] as string)) i++;
    if (value[i] !== '(') break;
    let depth = 0;
    for (; i < value.length; i++) {
      if (value[i] === '\\') i++;
      else if (value[i] === '(') depth++;
      else if (value[i] === ')' && --depth === 0) {
        i++;
        break;
      }
    }
  }

  // The id: a quoted string or a token.
  let id = '';
  if (value[i] === '"') {
    for (i++; i < value.length && value[i] !== '"'; i++) {
      if (value[i] === '\\') i++;
      id += value[i] ?? '';
    }
  } else {
    const match = /^[^\s;()]+/.exec(value.slice(i));
    id = match?.[0] ?? '';
  }
  return id.trim().toLowerCase().replace(/\.$/, '');
}

export function claimsAuthservId(value: string, authservId: string): boolean {
  return authservIdOf(value) === authservId.toLowerCase().replace(/\.$/, '');
}

/**
 * The header value: `authserv-id;` then one resinfo a line. Line breaks and control characters
 * inside a resinfo are removed so no result can start a header line of its own. Folds are
 * written as LF + tab: Haraka keeps header lines with LF and writes CRLF on the way out.
 */
export function formatAuthResults(authservId: string, resinfos: string[]): string {
  const clean = resinfos
    .map((resinfo) => resinfo.replace(/[\x00-\x1f\x7f]+/g, ' ').trim())
    .filter((resinfo) => resinfo !== '');
  if (clean.length === 0) return `${authservId}; none`;
  return `${authservId};\n\t${clean.join(';\n\t')}`;
}
