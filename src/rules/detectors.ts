/*
 * Built-in detectors of sensitive data in message text: payment card numbers (Luhn check and
 * issuer prefixes), IBANs (country length and mod-97 checksum), US social security numbers
 * (with the SSA's never-issued ranges excluded), private keys in PEM form, and AWS access
 * key ids. Each hit carries a masked form; the clear number is never logged or printed.
 * maskSensitive() masks the same findings in place in any other text a rule shows (what a
 * regex or keyword condition matched, a header value), so no condition prints them in clear.
 *
 * LIMITATION: numbers split by line breaks, written in words, or spread across HTML tags are
 * not found; card numbers are looked for only as 13-19 digits, optionally grouped by single
 * spaces or dashes. SSNs are only found written AAA-GG-SSSS or AAA GG SSSS, never as 9 bare
 * digits (too many false positives).
 * LIMITATION: maskSensitive() masks only what the detectors find. The base64 body of a PEM
 * private key is never masked (only its BEGIN line is recognised), and a number is masked
 * only when all of it is in the text given (conditions.ts passes a match with its
 * surroundings, so a regex matching part of a card number is still masked).
 */

export const DETECTORS = [
  'payment_card', 'iban', 'us_ssn', 'private_key', 'aws_access_key',
] as const;
export type DetectorName = (typeof DETECTORS)[number];

export interface DetectorHit {
  detector: DetectorName;
  /** Safe to log and print. */
  masked: string;
}

/** Luhn (mod 10) over a string of digits. */
export function luhnValid(digits: string): boolean {
  let sum = 0;
  let double = false;
  for (let index = digits.length - 1; index >= 0; index--) {
    let digit = digits.charCodeAt(index) - 48;
    if (double) {
      digit *= 2;
      if (digit > 9) digit -= 9;
    }
    sum += digit;
    double = !double;
  }
  return sum % 10 === 0;
}

/** Issuer prefixes of the major card networks, with the lengths they issue. */
function plausibleCard(digits: string): boolean {
  const length = digits.length;
  if (/^4/.test(digits)) return [13, 16, 19].includes(length); // Visa
  if (/^(5[1-5]|2(2[2-9]|[3-6]\d|7[01]|720))/.test(digits)) return length === 16; // Mastercard
  if (/^3[47]/.test(digits)) return length === 15; // American Express
  if (/^(6011|65|64[4-9])/.test(digits)) return length >= 16 && length <= 19; // Discover
  if (/^35(2[89]|[3-8]\d)/.test(digits)) return length >= 16 && length <= 19; // JCB
  if (/^3(0[0-5]|[68])/.test(digits)) return length >= 14 && length <= 19; // Diners
  if (/^(62|81)/.test(digits)) return length >= 16 && length <= 19; // UnionPay
  return false;
}

export function maskDigits(digits: string): string {
  return `${'*'.repeat(Math.max(0, digits.length - 4))}${digits.slice(-4)}`;
}

/** IBAN lengths by country (ISO 13616 registry, the countries most mail deals with). */
const IBAN_LENGTHS: Record<string, number> = {
  AD: 24, AE: 23, AL: 28, AT: 20, AZ: 28, BA: 20, BE: 16, BG: 22, BH: 22, BR: 29, CH: 21,
  CR: 22, CY: 28, CZ: 24, DE: 22, DK: 18, DO: 28, EE: 20, EG: 29, ES: 24, FI: 18, FO: 18,
  FR: 27, GB: 22, GE: 22, GI: 23, GL: 18, GR: 27, GT: 28, HR: 21, HU: 28, IE: 22, IL: 23,
  IQ: 23, IS: 26, IT: 27, JO: 30, KW: 30, KZ: 20, LB: 28, LI: 21, LT: 20, LU: 20, LV: 21,
  MC: 27, MD: 24, ME: 22, MK: 19, MR: 27, MT: 31, MU: 30, NL: 18, NO: 15, PK: 24, PL: 28,
  PS: 29, PT: 25, QA: 29, RO: 24, RS: 22, SA: 24, SE: 24, SI: 19, SK: 24, SM: 27, TN: 24,
  TR: 26, UA: 29, VG: 24, XK: 20,
};

/** ISO 7064 mod 97-10 over the rearranged IBAN. */
export function ibanValid(iban: string): boolean {
  const compact = iban.replace(/\s+/g, '').toUpperCase();
  if (!/^[A-Z]{2}\d{2}[A-Z0-9]+$/.test(compact)) return false;
  if (IBAN_LENGTHS[compact.slice(0, 2)] !== compact.length) return false;
  const rearranged = compact.slice(4) + compact.slice(0, 4);
  let remainder = 0;
  for (const char of rearranged) {
    const value = char >= 'A' ? String(char.charCodeAt(0) - 55) : char;
    for (const digit of value) remainder = (remainder * 10 + Number(digit)) % 97;
  }
  return remainder === 1;
}

export function ssnValid(area: string, group: string, serial: string): boolean {
  if (area === '000' || area === '666' || area.startsWith('9')) return false;
  if (group === '00' || serial === '0000') return false;
  // Numbers the SSA reserved for advertising, and the famous Woolworth wallet card.
  if (area === '987' || `${area}${group}${serial}` === '078051120') return false;
  return true;
}

const CARD = /(?<![\d-])(\d(?:[ -]?\d){12,18})(?![\d-])/g;
const IBAN = /\b([A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?)\b/g;
const SSN = /(?<![\d-])(\d{3})([- ])(\d{2})\2(\d{4})(?![\d-])/g;
const PRIVATE_KEY = /-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED )?PRIVATE KEY-----/g;
const AWS_KEY = /\b((?:AKIA|ASIA)[0-9A-Z]{16})\b/g;

interface Span {
  start: number;
  end: number;
  masked: string;
}

/** Every valid finding of one detector in `text`, with where it is and its masked form. */
function* findings(detector: DetectorName, text: string): Generator<Span> {
  const span = (match: RegExpMatchArray, masked: string): Span => ({
    start: match.index ?? 0, end: (match.index ?? 0) + match[0].length, masked,
  });
  switch (detector) {
    case 'payment_card':
      for (const match of text.matchAll(CARD)) {
        const digits = (match[1] ?? '').replace(/[ -]/g, '');
        if (!plausibleCard(digits) || !luhnValid(digits) || /^(\d)\1+$/.test(digits)) continue;
        yield span(match, maskDigits(digits));
      }
      break;
    case 'iban':
      for (const match of text.matchAll(IBAN)) {
        const compact = (match[1] ?? '').replace(/ /g, '');
        if (!ibanValid(compact)) continue;
        yield span(match,
          `${compact.slice(0, 4)}${'*'.repeat(compact.length - 8)}${compact.slice(-4)}`);
      }
      break;
    case 'us_ssn':
      for (const match of text.matchAll(SSN)) {
        if (!ssnValid(match[1] ?? '', match[3] ?? '', match[4] ?? '')) continue;
        yield span(match, `***-**-${match[4] ?? ''}`);
      }
      break;
    case 'private_key':
      for (const match of text.matchAll(PRIVATE_KEY)) {
        yield span(match, match[0].replace(/-----BEGIN (.*)-----/, '[$1 block]'));
      }
      break;
    case 'aws_access_key':
      for (const match of text.matchAll(AWS_KEY)) {
        const id = match[1] ?? '';
        yield span(match, `${id.slice(0, 4)}************${id.slice(-4)}`);
      }
      break;
  }
}

/** Every hit of one detector in `text`, capped at `limit`. */
export function detect(detector: DetectorName, text: string, limit = 1000): DetectorHit[] {
  const hits: DetectorHit[] = [];
  for (const found of findings(detector, text)) {
    hits.push({ detector, masked: found.masked });
    if (hits.length >= limit) break;
  }
  return hits;
}

/*
 * How much of each finding stays readable when it is masked in place: cards and SSNs their
 * last four digits, IBANs their first four and last four characters, access key ids their
 * first four and last four. Private key headers are not secret and stay as they are.
 */
const KEPT: Record<DetectorName, { head: number; tail: number } | null> = {
  payment_card: { head: 0, tail: 4 },
  iban: { head: 4, tail: 4 },
  us_ssn: { head: 0, tail: 4 },
  aws_access_key: { head: 4, tail: 4 },
  private_key: null,
};

/**
 * `text` with every card number, IBAN, SSN and access key id masked where it stands, with the
 * same length, so a slice of the result masks what the same slice of `text` would show.
 * Separators (spaces, dashes) stay; letters and digits outside the kept ends become `*`.
 */
export function maskSensitive(text: string): string {
  let chars: string[] | null = null;
  for (const detector of DETECTORS) {
    const kept = KEPT[detector];
    if (!kept) continue;
    for (const found of findings(detector, text)) {
      // UTF-16 units, as the match positions count them.
      const masked: string[] = chars ?? text.split('');
      chars = masked;
      const positions: number[] = [];
      for (let index = found.start; index < found.end; index++) {
        if (/[A-Za-z0-9]/.test(text[index] ?? '')) positions.push(index);
      }
      const hidden = positions.slice(kept.head, Math.max(kept.head, positions.length - kept.tail));
      for (const index of hidden) masked[index] = '*';
    }
  }
  return chars ? chars.join('') : text;
}
