/*
 * Moat's strict MIME walker: reads a message line by line as it streams past, decodes every
 * leaf part (base64, quoted-printable) and reports each structure two parsers could read
 * differently (see ./problems.ts).
 *
 * Feed it with write() in any chunking and finish with end(); the ParsedMessage holds the
 * structure, and a MimeSink receives decoded leaf bytes as they appear (the scanner sends them
 * to clamd), gathered once per chunk written. Memory is bounded by one line, one chunk's
 * decoded octets, the header block of one part and the part list (capped by
 * MimeLimits.maxParts); bodies are kept only when asked for, in memory up to a budget per
 * message and past it in files (MimeLimits.spill), so the rules can read every attachment
 * whole without fifty large messages holding fifty decoded copies in memory.
 *
 * Untrusted input: the whole message. The walker never throws on content; a problem is
 * recorded and the walker goes on the way a forgiving client would.
 * LIMITATION: a part whose Content-Type charset is unusual is decoded only by transfer
 * encoding; charset conversion of text is left to the consumer.
 */

import { randomUUID } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';

import { makeDecoder, type BodyDecoder, type TransferEncoding } from './decoders';
import {
  decodeCharset, decodeEncodedWords, headerFields, parseParameters, splitParameters,
  type HeaderField, type Report,
} from './header-fields';
import {
  DEFAULT_MIME_LIMITS, type BodySpill, type MimeLimits, type MimePart, type MimeSink,
  type ParsedMessage,
} from './message';
import type { MimeProblem, MimeProblemCode } from './problems';

const MAX_LINE_BYTES = 64 * 1024;
const MAX_HEADER_LINES = 1000;
const MAX_PROBLEMS = 100;
const BOUNDARY_CHARS = /^[0-9A-Za-z'()+_,\-./:=? ]*[0-9A-Za-z'()+_,\-./:=?]$/;
const IDENTITY = new Set(['7bit', '8bit', 'binary']);
const ENCODINGS = new Set(['7bit', '8bit', 'binary', 'base64', 'quoted-printable']);

interface Frame {
  boundary: string;
  part: MimePart;
}

type Mode = 'headers' | 'body' | 'ignore';

/** A spilled body's file and the octets not yet written to it. */
interface SpillFile {
  handle: FileHandle;
  pending: Buffer[];
  pendingBytes: number;
}

const SPILL_BLOCK_BYTES = 256 * 1024;

async function flushSpill(file: SpillFile): Promise<void> {
  if (file.pendingBytes === 0) return;
  const block = Buffer.concat(file.pending, file.pendingBytes);
  file.pending.length = 0;
  file.pendingBytes = 0;
  await file.handle.write(block);
}

export class MimeWalker {
  private readonly limits: MimeLimits;
  private readonly pendingLine: Buffer[] = [];
  private pendingLength = 0;
  /** Decoded octets of the current part read by quickLine() and not yet emitted. */
  private readonly decoded: Buffer[] = [];
  private decodedLength = 0;
  private mode: Mode = 'headers';
  private headerLines: string[] = [];
  private current: MimePart;
  private decoder: BodyDecoder | null = null;
  private readonly frames: Frame[] = [];
  private readonly boundaries: string[] = [];
  private readonly parts: MimePart[] = [];
  /** Decoded bodies being kept (MimeLimits.keepBodyBytes), by part, joined at the end. */
  private readonly kept = new Map<MimePart, Buffer[]>();
  /** Octets of `kept`, against MimeLimits.spill.inMemoryBytes. */
  private keptInMemory = 0;
  /** Parts whose kept body is being written to a file instead, with what waits to be written. */
  private readonly spilled = new Map<MimePart, SpillFile>();
  private readonly problems: MimeProblem[] = [];
  private stopped = false;
  private depthReported = false;

  constructor(limits: Partial<MimeLimits> = {}, private readonly sink: MimeSink = {}) {
    this.limits = { ...DEFAULT_MIME_LIMITS, ...limits };
    this.current = this.newPart(null);
  }

  /** Feeds the next bytes of the message (CRLF line ends, as stored by Haraka). */
  async write(chunk: Buffer): Promise<void> {
    let start = 0;
    while (start < chunk.length) {
      const newline = chunk.indexOf(0x0a, start);
      if (newline === -1) {
        this.pendingLine.push(chunk.subarray(start));
        this.pendingLength += chunk.length - start;
        if (this.pendingLength > MAX_LINE_BYTES) await this.flushPendingLine();
        break;
      }
      let line = chunk.subarray(start, newline + 1);
      if (this.pendingLength > 0) {
        line = Buffer.concat([...this.pendingLine, line]);
        this.pendingLine.length = 0;
        this.pendingLength = 0;
      }
      start = newline + 1;
      const content = stripLineEnd(line);
      if (this.quickLine(content)) continue;
      await this.flushDecoded();
      await this.line(content);
    }
    await this.flushDecoded();
  }

  /** The end of the message: closes what is open and returns the structure. */
  async end(): Promise<ParsedMessage> {
    if (this.pendingLength > 0) await this.flushPendingLine();
    if (this.mode === 'headers' && !this.stopped) await this.endHeaders(true);
    if (this.mode === 'body') await this.finishLeaf(false);
    for (const frame of this.frames) {
      this.report('mime-boundary-unclosed', `no closing boundary`, frame.part.path);
    }
    this.frames.length = 0;

    // Kept bodies are gathered as chunks and joined once, here; spilled ones are closed.
    for (const [part, chunks] of this.kept) part.body = Buffer.concat(chunks);
    this.kept.clear();
    for (const file of this.spilled.values()) {
      await flushSpill(file);
      await file.handle.close();
    }
    this.spilled.clear();

    const root = this.parts[0] ?? this.current;
    return {
      root,
      parts: this.parts,
      attachments: this.parts.filter((part) => part.isAttachment),
      problems: this.problems,
    };
  }

  /** Gives up on the message (its read failed): closes spill files; the caller removes them. */
  async discard(): Promise<void> {
    const files = [...this.spilled.values()];
    this.spilled.clear();
    this.kept.clear();
    await Promise.allSettled(files.map((file) => file.handle.close()));
  }

  private async flushPendingLine(): Promise<void> {
    // What quickLine() decoded before this line goes out first.
    await this.flushDecoded();
    const line = Buffer.concat(this.pendingLine);
    this.pendingLine.length = 0;
    this.pendingLength = 0;
    await this.line(stripLineEnd(line));
  }

  /**
   * A body or ignored line that is not a boundary candidate, read without waiting: its decoded
   * octets join `decoded` and go to the sink together, once per chunk (or before the next line
   * that needs line()). False when line() must read it.
   */
  private quickLine(content: Buffer): boolean {
    if (this.mode === 'headers' || this.stopped) return false;
    if (this.frames.length > 0 && startsWithDashes(content)) return false;
    this.current.encodedBytes += content.length + 2;
    this.decodeBodyLine(content);
    return true;
  }

  /** In a body, decodes the line into `decoded`; elsewhere (ignored lines) nothing. */
  private decodeBodyLine(content: Buffer): void {
    if (this.mode !== 'body') return;
    const decoded = this.decoder?.line(content);
    if (decoded && decoded.length > 0) {
      this.decoded.push(decoded);
      this.decodedLength += decoded.length;
    }
  }

  private async flushDecoded(): Promise<void> {
    if (this.decodedLength === 0) return;
    const octets = this.decoded.length === 1 ? this.decoded[0] as Buffer
      : Buffer.concat(this.decoded, this.decodedLength);
    this.decoded.length = 0;
    this.decodedLength = 0;
    await this.emit(octets);
  }

  /** Any line; write() hands the ones quickLine() cannot read here, after flushDecoded(). */
  private async line(content: Buffer): Promise<void> {
    if (this.stopped) return;
    this.current.encodedBytes += content.length + 2;

    // A boundary line of any open multipart ends the part being read.
    if (this.frames.length > 0 && startsWithDashes(content)) {
      const match = this.matchBoundary(content);
      if (match) {
        await this.onBoundary(match.frame, match.closing);
        return;
      }
    }

    if (this.mode !== 'headers') {
      this.decodeBodyLine(content);
      await this.flushDecoded();
    } else if (content.length === 0) {
      await this.endHeaders(false);
    } else if (this.headerLines.length < MAX_HEADER_LINES) {
      this.headerLines.push(content.toString('latin1'));
    }
  }

  private matchBoundary(content: Buffer): { frame: number; closing: boolean } | null {
    const text = content.subarray(0, 200).toString('latin1');
    for (let index = this.frames.length - 1; index >= 0; index -= 1) {
      const boundary = this.frames[index]?.boundary ?? '';
      if (!text.startsWith(`--${boundary}`)) continue;
      const rest = text.slice(2 + boundary.length);
      if (/^[ \t]*$/.test(rest)) return { frame: index, closing: false };
      if (/^--[ \t]*$/.test(rest)) return { frame: index, closing: true };
      this.report('mime-boundary-prefix',
        `a line starts with --${boundary.slice(0, 40)} and goes on`);
      if (rest.startsWith('--')) return { frame: index, closing: true };
    }
    return null;
  }

  private async onBoundary(frameIndex: number, closing: boolean): Promise<void> {
    // Finish what was being read.
    if (this.mode === 'headers') await this.endHeaders(true);
    if (this.mode === 'body') await this.finishLeaf(true);

    // An outer boundary closes inner multiparts that never closed: clients disagree there.
    while (this.frames.length - 1 > frameIndex) {
      const inner = this.frames.pop();
      if (inner) {
        this.report('mime-boundary-unclosed', 'closed by an outer boundary', inner.part.path);
      }
    }
    const frame = this.frames[frameIndex];
    if (!frame) return;

    if (closing) {
      this.frames.pop();
      this.mode = 'ignore';
      return;
    }
    this.current = this.newPart(frame.part);
    if (this.stopped) return;
    this.headerLines = [];
    this.mode = 'headers';
  }

  private newPart(parent: MimePart | null): MimePart {
    const path = parent === null ? '0'
      : parent.path === '0' ? String(parent.children.length + 1)
        : `${parent.path}.${parent.children.length + 1}`;
    const part: MimePart = {
      path, depth: parent === null ? 0 : parent.depth + 1, headers: [],
      contentType: parent?.contentType === 'multipart/digest' ? 'message/rfc822' : 'text/plain',
      declaredType: null, parameters: new Map(), transferEncoding: '7bit', disposition: null,
      filename: null, isMultipart: false, isAttachment: false, children: [],
      encodedBytes: 0, decodedBytes: 0,
    };
    if (this.parts.length >= this.limits.maxParts) {
      this.report('mime-too-many-parts', `more than ${this.limits.maxParts}`, path);
      this.stopped = true;
      this.mode = 'ignore';
      return part;
    }
    parent?.children.push(part);
    this.parts.push(part);
    return part;
  }

  /** The blank line after a header block (or a boundary right after it, `cut`). */
  private async endHeaders(cut: boolean): Promise<void> {
    const part = this.current;
    const report: Report = (code, detail) => this.report(code, detail, part.path);
    part.headers = headerFields(this.headerLines, report);
    this.headerLines = [];
    describePart(part, report);

    const tooDeep = part.depth > this.limits.maxDepth;
    if (tooDeep && !this.depthReported) {
      this.depthReported = true;
      this.report('mime-too-deep', `deeper than ${this.limits.maxDepth}`, part.path);
    }

    // A multipart opens a frame; its preamble is ignored until the first boundary.
    if (part.isMultipart && !tooDeep && !cut) {
      const boundary = part.parameters.get('boundary') ?? '';
      this.checkBoundary(boundary, part.path);
      if (boundary !== '') {
        this.frames.push({ boundary, part });
        this.boundaries.push(boundary);
        this.mode = 'ignore';
        return;
      }
      part.isMultipart = false;
    }

    // An encapsulated message is read as a message of its own.
    const encapsulated = /^message\/(rfc822|global)$/.test(part.contentType);
    if (encapsulated && !tooDeep && !cut && IDENTITY.has(part.transferEncoding)) {
      this.current = this.newPart(part);
      if (this.stopped) return;
      this.mode = 'headers';
      return;
    }

    // A leaf: decode its body.
    part.isMultipart = false;
    part.isAttachment = part.disposition === 'attachment' || part.filename !== null
      || !/^(text|multipart|message)\//.test(part.contentType);
    this.decoder = makeDecoder(part.transferEncoding, report);
    if (this.limits.keepBodyBytes) part.body = Buffer.alloc(0);
    this.mode = 'body';
    await this.sink.partStart?.(part);
  }

  private checkBoundary(boundary: string, path: string): void {
    if (boundary === '') {
      this.report('mime-boundary-missing', 'multipart without boundary', path);
      return;
    }
    if (boundary.length > 70) {
      this.report('mime-boundary-too-long', `${boundary.length} chars`, path);
    }
    if (!BOUNDARY_CHARS.test(boundary)) {
      this.report('mime-boundary-invalid', boundary.slice(0, 70), path);
    }
    const related = this.boundaries.find((other) =>
      other.startsWith(boundary) || boundary.startsWith(other));
    if (related !== undefined) {
      this.report('mime-boundary-prefix',
        `${boundary.slice(0, 40)} vs ${related.slice(0, 40)}`, path);
    }
  }

  private async emit(decoded: Buffer): Promise<void> {
    const part = this.current;
    part.decodedBytes += decoded.length;
    const keep = this.limits.keepBodyBytes ?? 0;
    if (keep > 0 && (part.body || part.bodyFile)) {
      const room = keep - (part.decodedBytes - decoded.length);
      if (room < decoded.length) part.bodyTruncated = true;
      if (room > 0) await this.keepBody(part, decoded.subarray(0, room));
    }
    await this.sink.partData?.(part, decoded);
  }

  /** Keeps decoded octets of a part: in memory within the budget, else in the part's file. */
  private async keepBody(part: MimePart, octets: Buffer): Promise<void> {
    const spill = this.limits.spill;
    let file = this.spilled.get(part);
    if (!file && spill && this.keptInMemory + octets.length > spill.inMemoryBytes) {
      file = await this.spillPart(part, spill);
    }
    if (file) {
      // Decoded octets come a line at a time: written in blocks, not one write per line.
      file.pending.push(octets);
      file.pendingBytes += octets.length;
      if (file.pendingBytes >= SPILL_BLOCK_BYTES) await flushSpill(file);
      return;
    }
    const chunks = this.kept.get(part) ?? [];
    this.kept.set(part, chunks);
    chunks.push(octets);
    this.keptInMemory += octets.length;
  }

  /** Moves a part's kept body to a new file; what follows of it is appended there. */
  private async spillPart(part: MimePart, spill: BodySpill): Promise<SpillFile> {
    const path = join(spill.dir, `body-${randomUUID()}`);
    spill.files.push(path);
    const file: SpillFile = { handle: await open(path, 'wx', 0o600), pending: [], pendingBytes: 0 };
    this.spilled.set(part, file);
    const chunks = this.kept.get(part) ?? [];
    this.kept.delete(part);
    file.pending.push(...chunks);
    for (const chunk of chunks) {
      file.pendingBytes += chunk.length;
      this.keptInMemory -= chunk.length;
    }
    await flushSpill(file);
    delete part.body;
    part.bodyFile = path;
    return file;
  }

  private async finishLeaf(atBoundary: boolean): Promise<void> {
    const rest = this.decoder?.end(atBoundary);
    if (rest && rest.length > 0) await this.emit(rest);
    this.decoder = null;
    this.mode = 'ignore';
    await this.sink.partEnd?.(this.current);
  }

  private report(code: MimeProblemCode, detail: string, part = this.current.path): void {
    if (this.problems.length >= MAX_PROBLEMS) return;
    this.problems.push({ code, part, detail });
  }
}

/** Reads the structural fields of a part into its description. */
function describePart(part: MimePart, report: Report): void {
  const field = (name: string): HeaderField | undefined =>
    part.headers.find((entry) => entry.name === name);

  // Content-Type: type/subtype and parameters; an invalid one reads as the default.
  const contentType = field('content-type');
  if (contentType) {
    part.declaredType = contentType.value;
    const { head, params } = splitParameters(contentType.value, report);
    const type = head.toLowerCase();
    if (/^[!#$%&'*+.^_`|~0-9a-z-]+\/[!#$%&'*+.^_`|~0-9a-z-]+$/.test(type)) {
      part.contentType = type;
    } else {
      report('mime-content-type-invalid', head.slice(0, 60));
      part.contentType = 'text/plain';
    }
    part.parameters = parseParameters(params, report).values;
  }
  part.isMultipart = part.contentType.startsWith('multipart/');

  // Content-Transfer-Encoding.
  const encoding = field('content-transfer-encoding');
  if (encoding) {
    const value = encoding.value.toLowerCase().replace(/\(.*\)/g, '').trim();
    if (ENCODINGS.has(value)) {
      part.transferEncoding = value as TransferEncoding;
    } else {
      report('mime-unknown-encoding', value.slice(0, 40));
    }
    const container = part.isMultipart || part.contentType.startsWith('message/');
    if (container && !IDENTITY.has(part.transferEncoding)) {
      report('mime-encoded-multipart', `${part.contentType} in ${part.transferEncoding}`);
    }
  }

  // Content-Disposition and the file name.
  const disposition = field('content-disposition');
  let dispositionParams = new Map<string, string>();
  if (disposition) {
    const { head, params } = splitParameters(disposition.value, report);
    part.disposition = head.toLowerCase() || null;
    dispositionParams = parseParameters(params, report).values;
  }
  const name = dispositionParams.get('filename') ?? part.parameters.get('name');
  part.filename = name === undefined ? null : readableName(name);
}

/** Encoded words decoded; raw 8-bit names read as UTF-8 when they are valid UTF-8. */
function readableName(raw: string): string {
  const decoded = decodeEncodedWords(raw);
  if (!/[\x80-\xff]/.test(decoded) || /[^\x00-\xff]/.test(decoded)) return decoded;
  const bytes = Buffer.from(decoded, 'latin1');
  const utf8 = decodeCharset(bytes, 'utf-8');
  return utf8.includes('\ufffd') ? decoded : utf8;
}

function startsWithDashes(content: Buffer): boolean {
  return content[0] === 0x2d && content[1] === 0x2d;
}

function stripLineEnd(line: Buffer): Buffer {
  let end = line.length;
  if (end > 0 && line[end - 1] === 0x0a) end -= 1;
  if (end > 0 && line[end - 1] === 0x0d) end -= 1;
  return line.subarray(0, end);
}

/** Reads a whole message (a Buffer, or any async iterable of chunks) into its structure. */
export async function parseMessage(
  message: Buffer | AsyncIterable<Buffer>, limits: Partial<MimeLimits> = {}, sink?: MimeSink,
): Promise<ParsedMessage> {
  const walker = new MimeWalker(limits, sink);
  if (Buffer.isBuffer(message)) {
    await walker.write(message);
  } else {
    for await (const chunk of message) await walker.write(chunk);
  }
  return walker.end();
}
