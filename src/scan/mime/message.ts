/*
 * ParsedMessage: the MIME structure of one message as Moat reads it, shared by the scanners
 * (each decoded attachment goes to clamd) and the content rules.
 *
 * A part carries its header fields, its declared and effective content type, its transfer
 * encoding, its file name (Content-Disposition filename, RFC 2231 filename*, else Content-Type
 * name, RFC 2047 words decoded), its sizes, and, only when asked for, its decoded bytes up to a
 * bound. Streaming consumers get the decoded bytes of each leaf part through a MimeSink as
 * the message flows, so no copy of the message is kept.
 */

import type { TransferEncoding } from './decoders';
import type { HeaderField } from './header-fields';
import type { MimeProblem } from './problems';

export interface MimePart {
  /** `0` is the message itself; its parts are `1`, `2`...; theirs `1.1`, `1.2`... */
  path: string;
  /** 0 for the message, +1 per multipart or message/rfc822 level. */
  depth: number;
  headers: HeaderField[];
  /** Lower-case `type/subtype` as read (the default when absent or invalid). */
  contentType: string;
  /** The Content-Type field as written, or null when absent. */
  declaredType: string | null;
  /** Content-Type parameters, lower-case names, RFC 2231 decoded. */
  parameters: Map<string, string>;
  transferEncoding: TransferEncoding;
  /** Lower-case disposition type (`inline`, `attachment`), or null when absent. */
  disposition: string | null;
  filename: string | null;
  isMultipart: boolean;
  /** A leaf a client would offer as a file: attachment disposition, a name, or not text. */
  isAttachment: boolean;
  children: MimePart[];
  /** Octets of the body as transmitted (line ends included). */
  encodedBytes: number;
  /** Octets after transfer decoding (leaf parts only). */
  decodedBytes: number;
  /** Decoded body, only with MimeLimits.keepBodyBytes > 0, cut at that many octets. */
  body?: Buffer;
  /** The decoded body in a file instead of `body`, when it was spilled (MimeLimits.spill). */
  bodyFile?: string;
  bodyTruncated?: boolean;
}

export interface ParsedMessage {
  /** The message itself; its headers are the message headers. */
  root: MimePart;
  /** Every part, the message first, in the order they appear. */
  parts: MimePart[];
  /** Leaf parts a client would offer as files. */
  attachments: MimePart[];
  problems: MimeProblem[];
}

export interface MimeLimits {
  /** Deepest nesting read; deeper content is kept as an opaque leaf (and is a problem). */
  maxDepth: number;
  /** Most parts read; after that the walker stops (and it is a problem). */
  maxParts: number;
  /** Keep up to this many decoded octets of each leaf in `body` (0: keep none). */
  keepBodyBytes?: number;
  /**
   * Where kept bodies go once the message's kept octets pass `inMemoryBytes`: a part that
   * would cross it is written to a file in `dir` instead (MimePart.bodyFile), and its path is
   * pushed on `files` at once, so the caller can remove it whatever happens to the scan.
   */
  spill?: BodySpill;
}

export interface BodySpill {
  dir: string;
  inMemoryBytes: number;
  files: string[];
}

/** Receives the decoded bytes of each leaf part as the message is read. */
export interface MimeSink {
  partStart?(part: MimePart): void | Promise<void>;
  partData?(part: MimePart, chunk: Buffer): void | Promise<void>;
  partEnd?(part: MimePart): void | Promise<void>;
}

export const DEFAULT_MIME_LIMITS: MimeLimits = { maxDepth: 20, maxParts: 500 };

/**
 * The transaction note under which the scanning stage leaves its ParsedMessage (with decoded
 * bodies) for the checks after it, so the message is parsed once.
 */
export const SHARED_PARSE_NOTE = 'moat_mime';
