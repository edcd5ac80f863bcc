/*
 * A stand-in for spamd that answers every request at once, for one diagnostic of the
 * benchmark (bench/run.ts, "Moat's CPU without spamd's"): nothing else uses it.
 *
 * Why it exists: on this 2-core machine the real spamd spends 220-250 ms of CPU on each
 * message, so the full pipeline runs at ~7 messages a second with both cores taken by spamd's
 * children. Moat's own code then runs in short slices between them, on caches spamd has just
 * emptied, and its CPU per message is about twice what the same code costs when spamd answers
 * at once (probe of 2026-12-04: 8-9 ms with spamd, 4.0-4.8 ms with this stand-in, everything
 * else real). The target is still judged on the real spamd; this row says how much of the gap
 * is the machine rather than Moat.
 *
 * It speaks just enough SPAMC: it reads the request head and Content-length octets of body,
 * then answers SYMBOLS / CHECK / REPORT with a clean verdict (score 0.0 of 5.0, one symbol)
 * and PING with PONG. It counts what it answered, so the benchmark can show the gateway really
 * talked to it.
 */

import { createServer, type AddressInfo, type Socket } from 'node:net';

export interface SpamdStandIn {
  /** host:port on 127.0.0.1. */
  address: string;
  /** Message requests answered (PING not counted). */
  answered(): number;
  stop(): Promise<void>;
}

const HEAD_END = Buffer.from('\r\n\r\n');
const SYMBOLS = 'MOAT_BENCH_STAND_IN';

export async function startSpamdStandIn(): Promise<SpamdStandIn> {
  let answered = 0;
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    let received: Buffer = Buffer.alloc(0);
    let done = false;
    socket.on('data', (chunk: Buffer) => {
      if (done) return;
      received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
      const reply = answerFor(received);
      if (reply === null) return;
      done = true;
      if (!reply.startsWith('SPAMD/1.5 0 PONG')) answered += 1;
      socket.end(reply);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    address: `127.0.0.1:${port}`,
    answered: () => answered,
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
