/*
 * Scans one message with everything at once: the message is read a single time and each chunk
 * goes, as it comes, to clamd (the whole message, INSTREAM), to Moat's MIME walker (which
 * sends each decoded attachment to clamd on its own connection, a bounded number at a time)
 * and to the spamd buffer (at most spamd.max_size octets, then spamd is asked while the rest
 * still streams). No second copy of the message is held; the slowest reader sets the pace.
 *
 * Each scanner takes turns among the messages of this process: clamd.max_parallel messages
 * are scanned by clamd at once (the others wait up to clamd.queue_timeout, in arrival order,
 * before their read starts), spamd.max_parallel are with spamd. A burst of large messages is
 * then scanned a few at a time, each within its own deadline, instead of all at once and all
 * too late. clamd.timeout and spamd.timeout run from the message's clamd turn, when its read
 * starts; the wait for a spamd turn counts within spamd.timeout. The report says what each
 * scanner found or why it could not say; turning that into an action is src/scan/policy.ts's
 * job.
 */

import type { Readable } from 'node:stream';
import type { ScanConfig } from '../config/sections/scan';
import type { ClamdClient, ClamdScan, ClamdVerdict } from './clamd';
import { Deadline, ScannerError } from './errors';
import type { BodySpill, MimePart, ParsedMessage } from './mime/message';
import { MimeWalker } from './mime/walker';
import { Slots } from './slots';
import type { SpamdClient, SpamdVerdict } from './spamd';

export interface ScanJob {
  /**
   * Opens the message as the recipient will get it (dot-unstuffed, CRLF). Called once, and a
   * second time, after the first read has ended, when the spamd prefix was let go while the
   * message waited for its spamd turn.
   */
  open(): Readable;
  clamd: ClamdClient | null;
  spamd: SpamdClient | null;
  config: ScanConfig;
  /**
   * Keep each part's decoded body up to this many octets in the report's parse, for the
   * checks after the scanners (the content rules) to read instead of parsing again. 0: none.
   */
  keepBodyBytes?: number;
  /** Where kept bodies past an in-memory budget are written (see MimeLimits.spill). */
  spill?: BodySpill;
}

export interface ClamdFinding {
  signature: string;
  /** `message` for the whole message, else the MIME part path. */
  where: string;
  filename?: string;
}

export interface ClamdReport {
  status: 'clean' | 'found' | 'error' | 'skip';
  findings: ClamdFinding[];
  /** Scans run: the whole message plus each decoded part. */
  scans: number;
  error?: ScannerError;
  address?: string;
  seconds: number;
}

export interface SpamdReport {
  status: 'scored' | 'error' | 'skip';
  verdict?: SpamdVerdict;
  error?: ScannerError;
  /** Octets sent to spamd, and whether that was only a prefix of the message. */
  bytesSent: number;
  truncated: boolean;
  seconds: number;
}

export interface ScanReport {
  clamd: ClamdReport;
  spamd: SpamdReport;
  mime: ParsedMessage;
  /** Octets of the message as read. */
  bytes: number;
  seconds: number;
}

/** Parts worth a scan of their own: anything encoded, and anything a client offers as a file. */
function scanWorthy(part: MimePart): boolean {
  return part.isAttachment || part.transferEncoding === 'base64'
    || part.transferEncoding === 'quoted-printable';
}

export async function scanMessage(job: ScanJob): Promise<ScanReport> {
  const started = Date.now();
  const config = job.config;

  // clamd: this message's turn, then the whole message and each decoded part on its own
  // connection. No turn within clamd.queue_timeout: clamd could not say (as if it were down).
  const clamdTurn = job.clamd ? new Turn(job.clamd.requests, 'clamd', 'clamd.max_parallel',
    new Deadline(config.clamd.queueTimeoutMs, started)) : null;
  let turnFailure: ScannerError | null = null;
  try {
    await clamdTurn?.wait();
  } catch (error) {
    turnFailure = error as ScannerError;
  }
  const clamd = clamdTurn?.held ? job.clamd : null;
  // Both deadlines start here, with the read: the wait for the clamd turn has its own bound.
  const clamdDeadline = new Deadline(config.clamd.timeoutMs);
  const spamdDeadline = new Deadline(config.spamd.timeoutMs);
  const whole = clamd?.scan(clamdDeadline) ?? null;
  const partScans: Array<Promise<{ verdict: ClamdVerdict; part: MimePart }>> = [];
  const slots = new Slots(config.clamd.maxParallelParts);
  const open = new Map<MimePart, ClamdScan>();
  const walker = new MimeWalker({
    maxDepth: config.mimeMaxDepth, maxParts: config.mimeMaxParts,
    keepBodyBytes: job.keepBodyBytes ?? 0,
    ...(job.spill ? { spill: job.spill } : {}),
  }, clamd && config.clamd.scanParts ? {
    partData: async (part, chunk) => {
      if (!scanWorthy(part)) return;
      let scan = open.get(part);
      if (!scan) {
        // Opened on the first octet: an empty part has nothing to scan.
        await slots.take();
        scan = clamd.scan(clamdDeadline);
        open.set(part, scan);
        const result = scan.result.then((verdict) => ({ verdict, part }));
        void result.then(() => slots.give(), () => slots.give());
        partScans.push(result);
      }
      await scan.write(chunk);
    },
    partEnd: (part) => {
      open.get(part)?.end();
      open.delete(part);
    },
  } : {});

  // spamd: a bounded prefix, sent as soon as it is complete and this message's turn has come
  // (spamd.max_parallel requests in flight per process). While it waits for its turn a message
  // holds at most HELD_WHILE_WAITING_BYTES: past that its prefix is let go and read again when
  // the turn comes, so fifty large messages at once do not hold fifty prefixes.
  const spamd = job.spamd;
  const turn = spamd ? new Turn(spamd.requests, 'spamd', 'spamd.max_parallel', spamdDeadline)
    : null;
  let collector = new PrefixCollector(config.spamd.maxSize);
  let reread = false;
  let spamdResult: Promise<SpamdVerdict> | null = null;
  let spamdDone = 0;
  const askSpamd = (): void => {
    if (!spamd || !turn || spamdResult) return;
    spamdResult = (async () => {
      try {
        await turn.wait();
        if (reread) collector = await readPrefix(job.open(), config.spamd.maxSize);
        return await spamd.check(collector.message(), spamdDeadline);
      } finally {
        turn.release();
        spamdDone = Date.now();
      }
    })();
    // Awaited in spamdOutcome; handled here so an early failure is not an unhandled rejection.
    spamdResult.catch(() => undefined);
  };

  // One read of the message feeds all three.
  let bytes = 0;
  try {
    for await (const chunk of job.open() as AsyncIterable<Buffer>) {
      bytes += chunk.length;
      const writes: Array<Promise<void>> = [walker.write(chunk)];
      if (whole) writes.push(whole.write(chunk));
      if (turn && !reread && !collector.full) {
        collector.add(chunk);
        if (!turn.held && collector.size > HELD_WHILE_WAITING_BYTES) {
          collector = new PrefixCollector(config.spamd.maxSize);
          reread = true;
        } else if (collector.full) {
          askSpamd();
        }
      }
      await Promise.all(writes);
    }
  } catch (error) {
    whole?.abort();
    for (const scan of open.values()) scan.abort();
    if (!spamdResult) turn?.release();
    clamdTurn?.release();
    await walker.discard();
    throw error;
  }
  whole?.end();
  const mime = await walker.end();
  for (const scan of open.values()) scan.end();
  askSpamd();

  // Wait for every verdict (each bounded by its deadline).
  const [clamdReport, spamdReport] = await Promise.all([
    clamdOutcome(whole, partScans, started, turnFailure)
      .finally(() => clamdTurn?.release()),
    spamdOutcome(spamdResult, () => collector, started, () => spamdDone),
  ]);
  return {
    clamd: clamdReport, spamd: spamdReport, mime, bytes, seconds: (Date.now() - started) / 1000,
  };
}

async function clamdOutcome(
  whole: ClamdScan | null,
  partScans: Array<Promise<{ verdict: ClamdVerdict; part: MimePart }>>,
  started: number, turnFailure: ScannerError | null,
): Promise<ClamdReport> {
  if (turnFailure) {
    return {
      status: 'error', findings: [], scans: 0, error: turnFailure,
      seconds: (Date.now() - started) / 1000,
    };
  }
  if (!whole) return { status: 'skip', findings: [], scans: 0, seconds: 0 };
  const [wholeResult, ...parts] = await Promise.allSettled([
    whole.result.then((verdict) => ({ verdict, part: null as MimePart | null })), ...partScans,
  ]);
  const seconds = (Date.now() - started) / 1000;

  const findings: ClamdFinding[] = [];
  let error: ScannerError | undefined;
  let address: string | undefined;
  for (const result of [wholeResult, ...parts]) {
    if (!result) continue;
    if (result.status === 'rejected') {
      error ??= result.reason instanceof ScannerError ? result.reason
        : new ScannerError('clamd', 'unavailable', null, String(result.reason),
          { cause: result.reason });
      continue;
    }
    const { verdict, part } = result.value;
    address ??= verdict.address;
    if (verdict.status !== 'found') continue;
    for (const signature of verdict.signatures) {
      findings.push({
        signature, where: part ? part.path : 'message',
        ...(part?.filename ? { filename: part.filename } : {}),
      });
    }
  }

  const scans = 1 + partScans.length;
  const base = { findings, scans, seconds, ...(address ? { address } : {}) };
  if (findings.length > 0) return { status: 'found', ...base, ...(error ? { error } : {}) };
  if (error) return { status: 'error', ...base, error };
  return { status: 'clean', ...base };
}

async function spamdOutcome(
  pending: Promise<SpamdVerdict> | null, sentFrom: () => PrefixCollector, started: number,
  finishedAt: () => number,
): Promise<SpamdReport> {
  if (!pending) return { status: 'skip', bytesSent: 0, truncated: false, seconds: 0 };
  // The collector is read once spamd is done: a reread prefix replaces the first one.
  const sentBy = (collector: PrefixCollector) => ({
    bytesSent: collector.sentBytes, truncated: collector.truncated,
  });
  try {
    const verdict = await pending;
    return {
      status: 'scored', verdict, ...sentBy(sentFrom()), seconds: (finishedAt() - started) / 1000,
    };
  } catch (error) {
    const failure = error instanceof ScannerError ? error
      : new ScannerError('spamd', 'unavailable', null, String(error), { cause: error });
    return {
      status: 'error', error: failure, ...sentBy(sentFrom()),
      seconds: (Date.now() - started) / 1000,
    };
  }
}

/** What a message waiting for its spamd turn may hold of its prefix (see scanMessage). */
const HELD_WHILE_WAITING_BYTES = 128 * 1024;

/** A message's place among one scanner's messages in flight (clamd/spamd.max_parallel). */
class Turn {
  /** A slot is this message's now. */
  held: boolean;

  constructor(
    private readonly slots: Slots, private readonly scanner: 'clamd' | 'spamd',
    private readonly setting: string, private readonly deadline: Deadline,
  ) {
    this.held = slots.tryTake();
  }

  /** Waits for a slot within the deadline; throws the scanner's timeout when none came. */
  async wait(): Promise<void> {
    if (this.held) return;
    this.held = await this.slots.take(this.deadline.remaining());
    if (!this.held) {
      throw new ScannerError(this.scanner, 'timeout', null, `no turn within ${this.deadline.ms} `
        + `ms (${this.slots.queued} more waiting behind ${this.setting} in flight)`);
    }
  }

  /** Gives the slot back (once). */
  release(): void {
    if (!this.held) return;
    this.held = false;
    this.slots.give();
  }
}

/** A second read of the message for its spamd prefix, to the end (Haraka's stream is then
 * free for the next reader). */
async function readPrefix(stream: Readable, limit: number): Promise<PrefixCollector> {
  const collector = new PrefixCollector(limit);
  for await (const chunk of stream as AsyncIterable<Buffer>) collector.add(chunk);
  return collector;
}

/** Keeps the first `limit` octets; a longer message is cut after its last whole line. */
class PrefixCollector {
  private readonly chunks: Buffer[] = [];
  private length = 0;
  truncated = false;
  sentBytes = 0;

  constructor(private readonly limit: number) {}

  get full(): boolean {
    return this.truncated;
  }

  get size(): number {
    return this.length;
  }

  add(chunk: Buffer): void {
    if (this.truncated) return;
    const room = this.limit - this.length;
    if (chunk.length > room) {
      this.chunks.push(chunk.subarray(0, room));
      this.length += room;
      this.truncated = true;
      return;
    }
    this.chunks.push(chunk);
    this.length += chunk.length;
  }

  /** The prefix as one buffer; the chunks are let go (fifty 2 MB prefixes held twice was
   * 100 MB of a 50 x 20 MB burst). Called once. */
  message(): Buffer {
    let message = Buffer.concat(this.chunks, this.length);
    this.chunks.length = 0;
    if (this.truncated) {
      const lastLine = message.lastIndexOf('\r\n');
      if (lastLine > 0) message = message.subarray(0, lastLine + 2);
    }
    this.sentBytes = message.length;
    return message;
  }
}
