/*
 * Content-Transfer-Encoding decoders for the MIME walker, fed one line at a time.
 *
 * Each decoder turns the lines of one part body into the octets a mail client would show or
 * save, and reports encoding errors (bad base64 characters, data after the padding, a missing
 * padding, a broken quoted-printable escape). When it finds one it still decodes the way a
 * forgiving client would, and keeps going past the point where a strict client would stop, so
 * the scanner sees every octet some client might produce. The CRLF before a boundary belongs
 * to the boundary (RFC 2046 5.1.1), so line ends are emitted only when the next line comes.
 *
 * Input is untrusted; memory per decoder is one line plus three base64 characters.
 */

import type { MimeProblemCode } from './problems';

export type TransferEncoding = '7bit' | '8bit' | 'binary' | 'base64' | 'quoted-printable';

export interface BodyDecoder {
  /** One body line without its CRLF; returns decoded octets (possibly empty). */
  line(content: Buffer): Buffer;
  /** End of the body; `atBoundary` drops the CRLF that belongs to the boundary line. */
  end(atBoundary: boolean): Buffer;
}

type Report = (code: MimeProblemCode, detail: string) => void;

const CRLF = Buffer.from('\r\n');
const EMPTY = Buffer.alloc(0);

export function makeDecoder(encoding: TransferEncoding, report: Report): BodyDecoder {
  switch (encoding) {
    case 'base64': return new Base64Decoder(report);
    case 'quoted-printable': return new QuotedPrintableDecoder(report);
    default: return new IdentityDecoder();
  }
}

class IdentityDecoder implements BodyDecoder {
  private started = false;

  line(content: Buffer): Buffer {
    const out = this.started ? Buffer.concat([CRLF, content]) : content;
    this.started = true;
    return out;
  }

  end(atBoundary: boolean): Buffer {
    return this.started && !atBoundary ? CRLF : EMPTY;
  }
}

const BASE64_LINE = /^[A-Za-z0-9+/]*={0,2}$/;

/** 1 for the 64 characters of the base64 alphabet (no padding), else 0. */
const ALPHABET = new Uint8Array(256);
for (const char of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/') {
  ALPHABET[char.charCodeAt(0)] = 1;
}

function inAlphabet(content: Buffer, end: number): boolean {
  for (let index = 0; index < end; index += 1) {
    if (ALPHABET[content[index] ?? 0] === 0) return false;
  }
  return true;
}

class Base64Decoder implements BodyDecoder {
  /** Alphabet characters not yet decoded (fewer than four after each line). */
  private pending = '';
  /** A padded quantum was seen: more data after it is an error. */
  private padded = false;
  private reported = false;

  constructor(private readonly report: Report) {}

  line(content: Buffer): Buffer {
    // The common line: whole quanta of the alphabet and nothing pending, decoded at once.
    let end = content.length;
    while (end > 0 && (content[end - 1] === 0x20 || content[end - 1] === 0x09)) end -= 1;
    if (this.pending === '' && !this.padded && end % 4 === 0 && inAlphabet(content, end)) {
      return end === 0 ? EMPTY : Buffer.from(content.toString('latin1', 0, end), 'base64');
    }

    let text = content.toString('latin1', 0, end);
    if (!BASE64_LINE.test(text)) {
      this.problem('characters outside the base64 alphabet');
      text = text.replace(/[^A-Za-z0-9+/=]/g, '');
    }

    const out: Buffer[] = [];
    let index = 0;
    while (index < text.length) {
      const equals = text.indexOf('=', index);
      const data = text.slice(index, equals === -1 ? text.length : equals);
      if (data !== '') {
        if (this.padded) this.problem('data after the padding');
        this.padded = false;
        this.pending += data;
      }
      if (equals === -1) break;

      // Padding: valid only after two or three characters of a quantum.
      let run = 0;
      while (text[equals + run] === '=') run += 1;
      const position = this.pending.length % 4;
      if (position < 2 || position + run !== 4 || this.padded) this.problem('misplaced padding');
      out.push(Buffer.from(this.pending, 'base64'));
      this.pending = '';
      this.padded = true;
      index = equals + run;
    }

    // Decode whole quanta now; keep the rest for the next line.
    const whole = this.pending.length - (this.pending.length % 4);
    if (whole > 0) {
      out.push(Buffer.from(this.pending.slice(0, whole), 'base64'));
      this.pending = this.pending.slice(whole);
    }
    return out.length === 1 ? (out[0] ?? EMPTY) : Buffer.concat(out);
  }

  end(): Buffer {
    if (this.pending === '') return EMPTY;
    this.problem('missing padding at the end');
    const rest = Buffer.from(this.pending, 'base64');
    this.pending = '';
    return rest;
  }

  private problem(detail: string): void {
    if (this.reported) return;
    this.reported = true;
    this.report('mime-base64-invalid', detail);
  }
}

class QuotedPrintableDecoder implements BodyDecoder {
  /** The previous line ended in a hard line break not yet emitted. */
  private breakPending = false;
  private reported = false;

  constructor(private readonly report: Report) {}

  line(content: Buffer): Buffer {
    // Trailing whitespace is transport padding (RFC 2045 6.7 rule 3).
    let text = content.toString('latin1').replace(/[ \t]+$/, '');
    const soft = text.endsWith('=');
    if (soft) text = text.slice(0, -1);

    const bytes: number[] = [];
    for (let index = 0; index < text.length; index += 1) {
      const code = text.charCodeAt(index);
      const hex = text.slice(index + 1, index + 3);
      if (code === 0x3d && /^[0-9A-Fa-f]{2}$/.test(hex)) {
        bytes.push(parseInt(hex, 16));
        index += 2;
        continue;
      }
      if (code === 0x3d) this.problem(`"=${hex}"`);
      bytes.push(code & 0xff);
    }

    const decoded = Buffer.from(bytes);
    const out = this.breakPending ? Buffer.concat([CRLF, decoded]) : decoded;
    this.breakPending = !soft;
    return out;
  }

  end(atBoundary: boolean): Buffer {
    const out = this.breakPending && !atBoundary ? CRLF : EMPTY;
    this.breakPending = false;
    return out;
  }

  private problem(detail: string): void {
    if (this.reported) return;
    this.reported = true;
    this.report('mime-qp-invalid', detail);
  }
}
