/*
 * The message as DKIM, ARC and DMARC read it: a stream (a large message is never held whole
 * here), with its header block gathered from the first chunks on the way for the From checks.
 *
 * Haraka lets one reader pipe the message at a time. mailauth may stop reading before the end
 * (it failed early, or auth.message_timeout passed while it still hashed the body), so
 * release() detaches whatever still reads, drains the rest and waits for Haraka's pipe to end:
 * the checks after this one can then read the message themselves.
 *
 * Untrusted input: the whole message (only copied and searched for the blank line here).
 */

import { Transform, type Readable } from 'node:stream';
import { finished } from 'node:stream/promises';

import { headerBlock } from './from-header';

/** A header block longer than this is read as far as this (Haraka caps header lines too). */
const MAX_HEADER_BLOCK = 1024 * 1024;
const BLANK_LINE = Buffer.from('\r\n\r\n');

export interface AuthMessage {
  stream: Readable;
  /** Settles once the header block has passed, or at the end of the message. */
  headerBlock: Promise<string>;
  /** Detaches the reader, drains what is left and resolves once the source has ended. */
  release(): Promise<void>;
}

/** `pipeInto` starts the source (Haraka: message_stream.pipe(destination, options)). */
export function openAuthMessage(pipeInto: (destination: NodeJS.WritableStream) => void):
  AuthMessage {
  const head: Buffer[] = [];
  let headBytes = 0;
  let settled = false;
  let resolveBlock: (block: string) => void = () => undefined;
  const block = new Promise<string>((resolve) => {
    resolveBlock = resolve;
  });
  const settle = (): void => {
    if (settled) return;
    settled = true;
    resolveBlock(headerBlock(Buffer.concat(head).subarray(0, MAX_HEADER_BLOCK)));
    head.length = 0;
  };

  // The last octets of what came before: a CRLF CRLF may straddle two chunks.
  let tail = Buffer.alloc(0);
  const stream = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      // Gathered only until the blank line that ends the header block; each chunk is searched
      // once, with its predecessor's last three octets, never the whole block again.
      if (!settled) {
        head.push(chunk);
        headBytes += chunk.length;
        const seam = Buffer.concat([tail, chunk]);
        const ended = seam.includes(BLANK_LINE);
        tail = Buffer.from(seam.subarray(-(BLANK_LINE.length - 1)));
        if (ended || headBytes >= MAX_HEADER_BLOCK) settle();
      }
      done(null, chunk);
    },
  });
  // A message without a blank line (headers only) settles at its end.
  for (const event of ['end', 'error', 'close']) stream.once(event, settle);
  pipeInto(stream);

  return {
    stream,
    headerBlock: block,
    async release() {
      stream.unpipe();
      stream.resume();
      await finished(stream).catch(() => undefined);
    },
  };
}
