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

  /** Returns the bytes to send for this chunk. Throws MessageInputError on a bare CR or LF. */
  push(chunk: Buffer): Buffer {
    if (this.finished) throw new MessageInputError('data after end of message', this.offset);
    const pieces: Buffer[] = [];
    let copiedUpTo = 0;

    for (let index = 0; index < chunk.length; index++) {
      const byte = chunk[index];
      if (this.pendingCR) {
        if (byte !== LF) throw new MessageInputError('bare CR', this.offset + index - 1);
        this.pendingCR = false;
        this.atLineStart = true;
        continue;
      }
      if (byte === CR) {
        this.pendingCR = true;
        continue;
      }
      if (byte === LF) throw new MessageInputError('bare LF', this.offset + index);
      if (this.atLineStart && byte === DOT) {
        pieces.push(chunk.subarray(copiedUpTo, index), EXTRA_DOT);
        copiedUpTo = index;
      }
      this.atLineStart = false;
    }

    this.offset += chunk.length;
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
