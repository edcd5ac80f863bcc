/*
 * What the full-pipeline gateway of the benchmark knows as spamd: a front on loopback that
 * either forwards each connection to the real spamd, byte for byte, or answers every request
 * itself at once with a clean verdict. The benchmark switches it; the gateway cannot tell.
 *
 * Why: the real spamd spends 170-250 ms of CPU on each message here, so the full pipeline moves
 * about ten messages a second. Answering at once lets the benchmark
 *   - warm the full gateway with as many messages as the relay gets before its runs (4000):
 *     after the 60 messages of the first warm-up, the full pipeline's first 300 messages cost
 *     11.0 ms of Moat's CPU each, after 4000 more 6.8-7.4 ms (probe of 2026-12-04, c=10):
 *     V8 optimises code by how often it ran, and a message's code runs once a message;
 *   - measure the `full-stand-in` rows: the same gateway at the relay's pace, a diagnostic of
 *     how much of its CPU per message is its code and how much the pace spamd sets.
 * The measured runs of the `full` rows and the memory runs are forwarded.
 *
 * It speaks just enough SPAMC to stand in: it reads the request head and Content-length octets
 * of body, then answers SYMBOLS / CHECK / REPORT with a clean verdict (score 0.0 of 5.0, one
 * symbol) and PING with PONG. Forwarding keeps half-closes (the client shuts its side after the
 * body) and ends both sides when either fails. It counts what it answered and what it
 * forwarded, so the benchmark shows which spamd each run met.
 */

import { connect, createServer, type AddressInfo, type Socket } from 'node:net';

export interface SpamdFront {
  /** host:port on 127.0.0.1. */
  address: string;
  /** From now on, new connections are answered here at once. */
  answerAtOnce(): void;
  /** From now on, new connections go to the real spamd (the default). */
  forward(): void;
  /** Message requests answered here (PING not counted). */
  answered(): number;
  /** Connections forwarded to the real spamd. */
  forwarded(): number;
  stop(): Promise<void>;
}

const HEAD_END = Buffer.from('\r\n\r\n');
const SYMBOLS = 'MOAT_BENCH_STAND_IN';

/** A front for the spamd at `spamdAddress` (host:port), forwarding until told otherwise. */
export async function startSpamdFront(spamdAddress: string): Promise<SpamdFront> {
  const [spamdHost = '127.0.0.1', spamdPort = '0'] = spamdAddress.split(':');
  let forwarding = true;
  let answered = 0;
  let forwarded = 0;
  const sockets = new Set<Socket>();
  const track = (socket: Socket): void => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  };

  const answer = (client: Socket): void => {
    let received: Buffer = Buffer.alloc(0);
    let done = false;
    client.on('error', () => client.destroy());
    client.on('data', (chunk: Buffer) => {
      if (done) return;
      received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
      const reply = answerFor(received);
      if (reply === null) return;
      done = true;
      if (!reply.startsWith('SPAMD/1.5 0 PONG')) answered += 1;
      client.end(reply);
    });
  };

  const pass = (client: Socket): void => {
    forwarded += 1;
    const spamd = connect({ host: spamdHost, port: Number(spamdPort), allowHalfOpen: true });
    track(spamd);
    const both = (): void => {
      client.destroy();
      spamd.destroy();
    };
    client.on('error', both);
    spamd.on('error', both);
    // pipe() ends the other side when one side ends: the half-close travels on.
    client.pipe(spamd);
    spamd.pipe(client);
  };

  const server = createServer({ allowHalfOpen: true }, (client) => {
    track(client);
    if (forwarding) pass(client);
    else answer(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    address: `127.0.0.1:${port}`,
    answerAtOnce: () => { forwarding = false; },
    forward: () => { forwarding = true; },
    answered: () => answered,
    forwarded: () => forwarded,
    stop: () => new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      server.close(() => resolve());
    }),
  };
}

/** The reply once `request` is whole, null while more is to come. */
export function answerFor(request: Buffer): string | null {
  const headEnd = request.indexOf(HEAD_END);
  if (headEnd === -1) return null;
  const head = request.subarray(0, headEnd).toString('latin1');
  const verb = /^(\w+) SPAMC\/\d+\.\d+/.exec(head)?.[1];
  if (verb === 'PING') return 'SPAMD/1.5 0 PONG\r\n';
  const length = /\r\nContent-length: *(\d+)/i.exec(head)?.[1];
  if (verb === undefined || length === undefined) {
    return 'SPAMD/1.5 76 Bad header line\r\n';
  }
  if (request.length - (headEnd + HEAD_END.length) < Number(length)) return null;
  const body = verb === 'SYMBOLS' ? `${SYMBOLS}\r\n` : '';
  return `SPAMD/1.1 0 EX_OK\r\nContent-length: ${body.length}\r\nSpam: False ; 0.0 / 5.0\r\n`
    + `\r\n${body}`;
}
