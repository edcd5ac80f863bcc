/*
 * Dirty DATA: octets that let two mail servers read one message differently (SMTP smuggling).
 *
 * Fed the DATA stream as received, one chunk at a time (normally one line ending in LF, but a
 * line may arrive split, even between its CR and its LF), it finds:
 *   bare-cr           a CR not immediately followed by LF
 *   nul               a NUL octet
 *   bare-lf           an LF not preceded by CR
 *   line-too-long     a line longer than maxLineLength octets, line ending included
 *   too-many-headers  more than maxHeaderLines lines before the first empty line
 * It records the first problem (smallest stream offset) with its line number (from 1) and byte
 * offset (from 0), and keeps counting every kind to the end, without buffering the message.
 * The caller (the DATA plugin) decides the reply; this module only observes.
 *
 * Haraka 3.3.4 refuses bare LF itself but forwards bare CR and NUL byte for byte, so the
 * internal server would parse what Moat did not (docs: FIELD-NOTES, Smuggling).
 *
 * Untrusted input: every octet. The inner loop looks at each octet once and does nothing for
 * octets above CR, so clean text costs one comparison an octet.
 *
 * LIMITATION: header lines are physical lines; a folded header counts once per line.
 * LIMITATION: the end-of-data `.` line must not be fed, and lines are measured as received,
 * so a dot-stuffed line counts its extra leading dot.
 */

const NUL = 0x00;
const LF = 0x0a;
const CR = 0x0d;

/** Each kind of dirty data, with its meaning. Codes are stable; never reuse one. */
export const DIRTY_DATA_KINDS = {
  'bare-cr': 'a CR octet not immediately followed by LF',
  'nul': 'a NUL (0x00) octet',
  'bare-lf': 'a line ending in LF without the CR before it',
  'line-too-long': 'a line longer than the limit, its line ending included',
  'too-many-headers': 'more header lines than the limit before the first empty line',
} as const;

export type DirtyDataKind = keyof typeof DIRTY_DATA_KINDS;

export interface DirtyDataProblem {
  kind: DirtyDataKind;
  /** Line number, from 1. */
  line: number;
  /** Offset of the offending octet in the stream, from 0. For line-too-long, the first octet
   * past the limit; for too-many-headers, the start of the first header line over it. */
  offset: number;
}

export interface DirtyDataLimits {
  /** Longest line in octets, CR LF included (RFC 5322: 998 plus CR LF). */
  maxLineLength: number;
  maxHeaderLines: number;
}

export const DEFAULT_DIRTY_DATA_LIMITS: Readonly<DirtyDataLimits> = {
  maxLineLength: 1000,
  maxHeaderLines: 1000,
};

export interface DirtyDataReport {
  /** The problem at the smallest offset, or null for clean data. */
  firstProblem: DirtyDataProblem | null;
  /** Occurrences per kind; too-many-headers counts the header lines over the limit. */
  counts: Record<DirtyDataKind, number>;
  /** Lines seen, a final line without LF included. */
  lines: number;
  bytes: number;
  headerLines: number;
  /** Whether the empty line ending the header was seen. */
  headerEnded: boolean;
}

/** feed() after end(): a bug in the caller, not in the data. */
export class DirtyDataStateError extends Error {
  constructor(readonly operation: string) {
    super(`dirty data checker: ${operation} after end()`);
    this.name = 'DirtyDataStateError';
  }
}

export class DirtyDataChecker {
  private readonly limits: DirtyDataLimits;
  private readonly counts: Record<DirtyDataKind, number> = {
    'bare-cr': 0, 'nul': 0, 'bare-lf': 0, 'line-too-long': 0, 'too-many-headers': 0,
  };
  private first: DirtyDataProblem | null = null;
  private bytes = 0;
  private linesEnded = 0;
  private lineStart = 0;
  private lineMarkedLong = false;
  private headerLines = 0;
  private inHeader = true;
  /** The previous chunk ended with a CR whose fate depends on the next octet. */
  private crPending = false;
  private ended = false;

  constructor(limits: Partial<DirtyDataLimits> = {}) {
    this.limits = { ...DEFAULT_DIRTY_DATA_LIMITS, ...limits };
  }

  get firstProblem(): DirtyDataProblem | null {
    return this.first;
  }

  feed(chunk: Uint8Array): void {
    if (this.ended) throw new DirtyDataStateError('feed');
    const length = chunk.length;
    if (length === 0) return;
    const base = this.bytes;

    // A CR that ended the previous chunk is bare unless this chunk starts with LF.
    const crBeforeChunk = this.crPending;
    if (crBeforeChunk && chunk[0] !== LF) this.note('bare-cr', base - 1);
    this.crPending = false;

    for (let index = 0; index < length; index++) {
      const octet = chunk[index] as number;
      if (octet > CR) continue;

      if (octet === LF) {
        const afterCr = index > 0 ? chunk[index - 1] === CR : crBeforeChunk;
        this.endLine(base + index, afterCr);
      } else if (octet === CR) {
        if (index + 1 === length) this.crPending = true;
        else if (chunk[index + 1] !== LF) this.note('bare-cr', base + index);
      } else if (octet === NUL) {
        this.note('nul', base + index);
      }
    }
    this.bytes = base + length;

    // A line still open may already be too long.
    if (!this.lineMarkedLong && this.bytes - this.lineStart > this.limits.maxLineLength) {
      this.lineMarkedLong = true;
      this.note('line-too-long', this.lineStart + this.limits.maxLineLength);
    }
  }

  /** Finish the stream and report. Calling it again returns the same report. */
  end(): DirtyDataReport {
    if (!this.ended) {
      this.ended = true;
      if (this.crPending) this.note('bare-cr', this.bytes - 1);
      this.crPending = false;
      if (this.bytes > this.lineStart && this.inHeader) this.countHeaderLine(this.lineStart);
    }
    return this.report();
  }

  /** The state so far; available mid-stream. */
  report(): DirtyDataReport {
    const openLine = this.bytes > this.lineStart ? 1 : 0;
    return {
      firstProblem: this.first === null ? null : { ...this.first },
      counts: { ...this.counts },
      lines: this.linesEnded + openLine,
      bytes: this.bytes,
      headerLines: this.headerLines,
      headerEnded: !this.inHeader,
    };
  }

  private endLine(lfOffset: number, afterCr: boolean): void {
    const lineLength = lfOffset - this.lineStart + 1;
    if (!afterCr) this.note('bare-lf', lfOffset);
    if (!this.lineMarkedLong && lineLength > this.limits.maxLineLength) {
      this.note('line-too-long', this.lineStart + this.limits.maxLineLength);
    }

    // The header ends at the first empty line.
    if (this.inHeader) {
      const contentLength = lineLength - (afterCr ? 2 : 1);
      if (contentLength <= 0) this.inHeader = false;
      else this.countHeaderLine(this.lineStart);
    }

    this.linesEnded++;
    this.lineStart = lfOffset + 1;
    this.lineMarkedLong = false;
  }

  private countHeaderLine(lineOffset: number): void {
    this.headerLines++;
    if (this.headerLines > this.limits.maxHeaderLines) this.note('too-many-headers', lineOffset);
  }

  /** Every problem is noted while its line is the line being read. */
  private note(kind: DirtyDataKind, offset: number): void {
    this.counts[kind]++;
    if (this.first !== null && this.first.offset <= offset) return;
    this.first = { kind, line: this.linesEnded + 1, offset };
  }
}

/** Check a whole message at once (tests, tools). */
export function checkDirtyData(
  message: Uint8Array, limits: Partial<DirtyDataLimits> = {},
): DirtyDataReport {
  const checker = new DirtyDataChecker(limits);
  checker.feed(message);
  return checker.end();
}
