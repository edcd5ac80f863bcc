/*
 * Turns a raw message (CRLF line endings, not dot-stuffed) into the bytes of an SMTP DATA body.
 *
 * Adds a '.' before every line that starts with '.', appends CRLF if the message does not end
 * with one, then the terminating ".\r\n". Refuses (MessageInputError) a bare CR or a bare LF
 * anywhere, so the downstream never sees line endings Moat's own parser read differently
 * (SMTP smuggling). Works chunk by chunk: a '.' or a CR/LF pair split across chunk boundaries
 * is handled by carrying two bits of state.
 */
import { MessageInputError } from './errors';

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;
const EXTRA_DOT = Buffer.from('.');

export class DotStuffer {
  /** True when the next byte starts a line. */
  private atLineStart = true;
  /** True when the last byte seen was a CR still waiting for its LF. */
  private pendingCR = false;
  private offset = 0;
  private finished = false;

  /**
   * Returns the bytes to send for this chunk. Throws MessageInputError on a bare CR or LF.
   * Walks line ends with indexOf (memchr) instead of byte by byte: a 20 MB message is about
   * 270 000 lines, and this runs for every message delivered.
   */
  push(chunk: Buffer): Buffer {
    if (this.finished) throw new MessageInputError('data after end of message', this.offset);
    const pieces: Buffer[] = [];
    let copiedUpTo = 0;
    let position = 0;
    const length = chunk.length;

    if (this.pendingCR && length > 0) {
      if (chunk[0] !== LF) throw new MessageInputError('bare CR', this.offset - 1);
      this.pendingCR = false;
      this.atLineStart = true;
      position = 1;
    }
    let nextCR = chunk.indexOf(CR, position);
    while (position < length) {
      if (this.atLineStart && chunk[position] === DOT) {
        pieces.push(chunk.subarray(copiedUpTo, position), EXTRA_DOT);
        copiedUpTo = position;
      }
      this.atLineStart = false;
      const lf = chunk.indexOf(LF, position);
      if (lf === -1) {
        // The line goes on in the next chunk: a CR here may only be its last byte.
        if (nextCR !== -1) {
          if (nextCR !== length - 1) throw new MessageInputError('bare CR', this.offset + nextCR);
          this.pendingCR = true;
        }
        break;
      }
      // Only the byte before this LF may be a CR, and it must be one.
      if (nextCR !== -1 && nextCR < lf - 1) {
        throw new MessageInputError('bare CR', this.offset + nextCR);
      }
      if (lf === position || chunk[lf - 1] !== CR) {
        throw new MessageInputError('bare LF', this.offset + lf);
      }
      if (nextCR !== -1 && nextCR < lf) nextCR = chunk.indexOf(CR, lf + 1);
      position = lf + 1;
      this.atLineStart = true;
    }

    this.offset += length;
    if (pieces.length === 0) return chunk;
    pieces.push(chunk.subarray(copiedUpTo));
    return Buffer.concat(pieces);
  }

  /** Returns the closing bytes: a CRLF if the last line is unterminated, then ".\r\n". */
  finish(): Buffer {
    if (this.pendingCR) throw new MessageInputError('bare CR at end of message', this.offset - 1);
    this.finished = true;
    return Buffer.from(this.atLineStart ? '.\r\n' : '\r\n.\r\n');
  }
}

/** Convenience for tests and small messages: the whole DATA body for a list of chunks. */
export function dotStuffChunks(chunks: Buffer[]): Buffer {
  const stuffer = new DotStuffer();
  const out = chunks.map((chunk) => stuffer.push(chunk));
  out.push(stuffer.finish());
  return Buffer.concat(out);
}
