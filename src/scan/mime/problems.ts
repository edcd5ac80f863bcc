/*
 * The MIME structure problems Moat's walker can find, each with a stable code.
 *
 * Every code names one way a message can be read differently by two parsers (Moat's scanner
 * and the recipient's mail client). In strict mode (scan.mime_strictness = strict) each one
 * refuses the message with 554 5.6.0; in lenient mode they are only logged as evidence. The
 * codes are also reason codes (src/verdict/reasons.ts), so they appear in logs and metrics.
 */

export const MIME_PROBLEMS = {
  'mime-duplicate-header':
    'a structural header (Content-Type, Content-Transfer-Encoding, Content-Disposition, '
    + 'MIME-Version) appears twice in one header block',
  'mime-folded-header':
    'a structural header is folded inside a value or parameter, where parsers disagree',
  'mime-header-malformed': 'a line in a part header block is neither a field nor a fold',
  'mime-content-type-invalid': 'a Content-Type that is not type/subtype',
  'mime-duplicate-parameter': 'a parameter (boundary, name, filename...) given twice',
  'mime-parameter-invalid':
    'a parameter that cannot be parsed (no value, open quote, bad RFC 2231 percent-encoding)',
  'mime-unknown-encoding': 'a Content-Transfer-Encoding other than 7bit, 8bit, binary, '
    + 'base64 or quoted-printable',
  'mime-encoded-multipart':
    'a multipart or message/rfc822 part with a base64 or quoted-printable encoding',
  'mime-boundary-missing': 'a multipart part without a boundary parameter',
  'mime-boundary-too-long': 'a boundary longer than 70 characters (RFC 2046 5.1.1)',
  'mime-boundary-invalid': 'a boundary with characters outside RFC 2046 bchars, or ending in '
    + 'a space',
  'mime-boundary-prefix': 'a boundary that is a prefix of (or equal to) another boundary in '
    + 'the message, or a line that starts with a boundary and goes on',
  'mime-boundary-unclosed': 'a multipart without its closing boundary, or closed by an outer '
    + 'boundary',
  'mime-base64-invalid': 'base64 with characters outside the alphabet, data after the padding, '
    + 'or a missing padding',
  'mime-qp-invalid': 'quoted-printable with an = not followed by two hex digits or a line end',
  'mime-too-deep': 'parts nested deeper than scan.mime_max_depth',
  'mime-too-many-parts': 'more parts than scan.mime_max_parts',
  'mime-rfc2231-duplicate': 'an RFC 2231 continuation section given twice',
  'mime-rfc2231-order': 'RFC 2231 continuation sections out of order or with a gap',
  'mime-rfc2231-mixed': 'a parameter given both plainly and in RFC 2231 form with different '
    + 'values, or in both single and continued RFC 2231 form',
} as const;

export type MimeProblemCode = keyof typeof MIME_PROBLEMS;

export interface MimeProblem {
  code: MimeProblemCode;
  /** The part it was found in: `1`, `1.2`... (`0` is the message itself). */
  part: string;
  /** Short, printable detail for the log (never the whole header). */
  detail: string;
}
