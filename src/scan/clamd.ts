/*
 * The clamd client: streams content to clamd with INSTREAM through the `clamscan` package,
 * under an absolute deadline, with failover across several clamd addresses.
 *
 * clamscan 2.4 does the INSTREAM framing and reads clamd's answer; Moat supplies the socket
 * (its `_initSocket` is replaced per scan) so that it can: try the next address when one
 * refuses or does not connect within clamd.connect_timeout; pace writes on the socket's
 * buffer (clamscan ignores back-pressure, which would otherwise copy a large message into
 * memory when clamd is slow); and destroy the socket when the deadline passes (clamscan's own
 * timeout only measures inactivity).
 *
 * Answers: clean, or found with the signature names (Heuristics.* included, told apart by the
 * caller). Failures are ScannerError: unavailable, timeout, garbage, too-large.
 * Failover happens only before any byte was sent: a clamd that dies mid-stream fails the
 * scan (the caller answers 451 and the client retries).
 * LIMITATION: clamscan writes its own lines to stderr (console.error) when a socket fails.
 */

import { connect, type Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import { Deadline, ScannerError, socketTarget } from './errors';
import { Slots } from './slots';

// clamscan is CommonJS without types; only what Moat calls is typed here.
interface ClamscanResult {
  isInfected: boolean | null;
  viruses: string[];
  resultString?: string;
}
interface NodeClamInstance {
  init(options: Record<string, unknown>): Promise<NodeClamInstance>;
  scanStream(stream: NodeJS.ReadableStream): Promise<ClamscanResult>;
  ping(): Promise<Socket>;
  _initSocket(label?: string): Promise<Socket>;
}
// eslint-disable-next-line @typescript-eslint/no-require-imports
const NodeClam = require('clamscan') as new () => NodeClamInstance;

/** Bytes waiting in a clamd socket's buffer before writes pause. */
const SOCKET_HIGH_WATER = 256 * 1024;

export interface ClamdClientOptions {
  addresses: string[];
  connectTimeoutMs: number;
  /** Messages scanned at once by this process (clamd.max_parallel); the scheduler takes a
   * slot of `requests` before a message's scans start. Unbounded when absent. */
  maxParallel?: number;
}

export type ClamdVerdict =
  | { status: 'clean'; address: string }
  | { status: 'found'; signatures: string[]; address: string };

export class ClamdClient {
  private base: Promise<NodeClamInstance> | null = null;
  /** Index of the address tried first; moves on when one fails. */
  private preferred = 0;
  /** The turns of the messages being scanned (see ClamdClientOptions.maxParallel). */
  readonly requests: Slots;

  constructor(readonly options: ClamdClientOptions) {
    this.requests = new Slots(options.maxParallel ?? Number.POSITIVE_INFINITY);
    if (options.addresses.length === 0) {
      throw new ScannerError('clamd', 'unavailable', null, 'no clamd address configured');
    }
  }

  /** Starts one INSTREAM scan; write the content into it, then end() it. */
  scan(deadline: Deadline): ClamdScan {
    return new ClamdScan(this, deadline);
  }

  /** PING through clamscan; true when some address answers PONG before the deadline. */
  async ping(deadline: Deadline): Promise<{ ok: boolean; detail: string }> {
    const problems: string[] = [];
    for (const address of this.options.addresses) {
      try {
        let opened: Socket | null = null;
        const scanner = await this.scannerFor(address, deadline, (socket) => {
          opened = socket;
        });
        const socket = await withDeadline(scanner.ping(), deadline, () => opened?.destroy());
        socket.destroy();
        return { ok: true, detail: `${address} answers PONG` };
      } catch (error) {
        problems.push(`${address}: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    return { ok: false, detail: problems.join('; ') };
  }

  /** The addresses in the order to try them. */
  addressOrder(): string[] {
    const list = this.options.addresses;
    return list.map((_, index) => list[(this.preferred + index) % list.length] as string);
  }

  markFailed(address: string): void {
    const index = this.options.addresses.indexOf(address);
    if (index === this.preferred) this.preferred = (index + 1) % this.options.addresses.length;
  }

  /**
   * A clamscan object whose socket is ours: connected to `address` with our connect timeout,
   * handed to `onSocket` so the caller can pace and destroy it.
   */
  async scannerFor(
    address: string, deadline: Deadline, onSocket: (socket: Socket) => void,
  ): Promise<NodeClamInstance> {
    const base = await this.baseInstance();
    const scanner = Object.create(base) as NodeClamInstance;
    const connectTimeoutMs = Math.min(this.options.connectTimeoutMs, deadline.remaining());
    scanner._initSocket = () => new Promise<Socket>((resolve, reject) => {
      const socket = connect(socketTarget(address));
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new ScannerError('clamd', 'unavailable', address,
          `no connection within ${connectTimeoutMs} ms`));
      }, connectTimeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        onSocket(socket);
        resolve(socket);
      });
      // Stays attached: an error after connect must never be an unhandled 'error' event.
      socket.on('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
    });
    return scanner;
  }

  private baseInstance(): Promise<NodeClamInstance> {
    if (this.base) return this.base;
    const first = socketTarget(this.options.addresses[0] ?? '127.0.0.1:3310');
    this.base = new NodeClam().init({
      removeInfected: false,
      quarantineInfected: false,
      scanLog: null,
      debugMode: false,
      preference: 'clamdscan',
      clamscan: { active: false },
      clamdscan: {
        ...('path' in first ? { socket: first.path } : { host: first.host, port: first.port }),
        // Our deadline ends scans; clamscan's inactivity timer must never fire first.
        timeout: 24 * 3600 * 1000,
        localFallback: false,
        bypassTest: true,
        active: true,
      },
    });
    this.base.catch(() => {
      this.base = null;
    });
    return this.base;
  }
}

/** One INSTREAM scan in progress. */
export class ClamdScan {
  readonly result: Promise<ClamdVerdict>;
  private readonly input = new PassThrough({ highWaterMark: 64 * 1024 });
  private socket: Socket | null = null;
  private settled = false;
  private readonly settledSignal: Promise<void>;
  private markSettled: () => void = () => {};
  private timer: NodeJS.Timeout | null = null;
  private address: string | null = null;

  constructor(private readonly client: ClamdClient, private readonly deadline: Deadline) {
    this.settledSignal = new Promise((resolve) => {
      this.markSettled = resolve;
    });
    this.result = this.run();
    this.result.catch(() => {});
  }

  /** Resolves when more may be written; content written after the scan ended is dropped. */
  async write(chunk: Buffer): Promise<void> {
    if (this.settled) return;
    const room = this.input.write(chunk);
    const socket = this.socket;
    if (socket && socket.writableLength > SOCKET_HIGH_WATER) {
      await waitForAny(socket, ['drain', 'close'], this.settledSignal);
    } else if (!room) {
      await waitForAny(this.input, ['drain', 'close'], this.settledSignal);
    }
  }

  end(): void {
    if (!this.settled) this.input.end();
  }

  /** Stops the scan now (another check already decided, or the job's deadline passed). */
  abort(): void {
    this.finish();
  }

  private async run(): Promise<ClamdVerdict> {
    const timeout = new Promise<never>((_, reject) => {
      this.timer = setTimeout(() => {
        reject(new ScannerError('clamd', 'timeout', this.address,
          `no verdict within ${this.deadline.ms} ms`));
      }, this.deadline.remaining());
    });
    try {
      return await Promise.race([this.tryAddresses(), timeout]);
    } finally {
      this.finish();
    }
  }

  private async tryAddresses(): Promise<ClamdVerdict> {
    let lastError: unknown = null;
    for (const address of this.client.addressOrder()) {
      if (this.settled || this.deadline.expired) break;
      this.address = address;
      let connected = false;
      try {
        const scanner = await this.client.scannerFor(address, this.deadline, (socket) => {
          connected = true;
          this.socket = socket;
        });
        const answer = await scanner.scanStream(this.input);
        return verdictOf(answer, address);
      } catch (error) {
        lastError = error;
        if (error instanceof ScannerError && error.kind === 'garbage') throw error;
        const text = error instanceof Error ? error.message : String(error);
        if (/size limit exceeded/i.test(text)) {
          throw new ScannerError('clamd', 'too-large', address, 'INSTREAM size limit exceeded',
            { cause: error });
        }
        this.client.markFailed(address);
        // Bytes already went to this clamd: they cannot be sent again to another.
        if (connected) {
          throw new ScannerError('clamd', 'unavailable', address, `connection lost: ${text}`,
            { cause: error });
        }
      }
    }
    throw new ScannerError('clamd', 'unavailable', this.address,
      `no clamd answered (${this.client.options.addresses.length} address(es))`,
      { cause: lastError });
  }

  private finish(): void {
    if (this.settled) return;
    this.settled = true;
    if (this.timer) clearTimeout(this.timer);
    this.socket?.destroy();
    this.input.destroy();
    this.markSettled();
  }
}

function verdictOf(answer: ClamscanResult, address: string): ClamdVerdict {
  if (answer.isInfected === false) return { status: 'clean', address };
  if (answer.isInfected === true && answer.viruses.length > 0) {
    return { status: 'found', signatures: answer.viruses, address };
  }
  throw new ScannerError('clamd', 'garbage', address,
    `unreadable answer ${JSON.stringify((answer.resultString ?? '').slice(0, 80))}`);
}

/** Resolves on the first of `events`, or when `stop` resolves; leaves no listener behind. */
function waitForAny(emitter: NodeJS.EventEmitter, events: string[], stop: Promise<void>) {
  return new Promise<void>((resolve) => {
    const done = (): void => {
      for (const event of events) emitter.removeListener(event, done);
      resolve();
    };
    for (const event of events) emitter.once(event, done);
    void stop.then(done);
  });
}

async function withDeadline<T>(work: Promise<T>, deadline: Deadline, cleanup: () => void) {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      cleanup();
      reject(new ScannerError('clamd', 'timeout', null, `no answer within ${deadline.ms} ms`));
    }, deadline.remaining());
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
