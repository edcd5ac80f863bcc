/*
 * The clamd and spamd clients against small fake daemons on loopback: failover past a dead
 * address, the absolute deadline against a daemon that never answers, garbage answers, EX_
 * error codes, negative scores, and the half-close spamd needs. The real daemons are
 * exercised end to end in test/e2e/scan.test.ts.
 */

import assert from 'node:assert/strict';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { after, describe, it } from 'node:test';

import { ClamdClient } from './clamd';
import { Deadline, ScannerError } from './errors';
import { parseSpamdReply, SpamdClient, SpamdReplyError } from './spamd';

const servers: Server[] = [];
after(() => {
  for (const server of servers) server.close();
});

async function fakeDaemon(onRequest: (request: Buffer, socket: Socket) => void,
  complete: (request: Buffer, ended: boolean) => boolean): Promise<string> {
  // Half-open allowed: spamd clients half-close after sending and read the answer after.
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    const chunks: Buffer[] = [];
    let answered = false;
    let ended = false;
    const check = (): void => {
      const request = Buffer.concat(chunks);
      if (answered || !complete(request, ended)) return;
      answered = true;
      onRequest(request, socket);
    };
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      check();
    });
    socket.on('end', () => {
      ended = true;
      check();
    });
    socket.on('error', () => {});
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function deadAddress(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return address;
}

const instreamEnd = (request: Buffer): boolean =>
  request.length >= 14 && request.subarray(-4).equals(Buffer.alloc(4));

async function clamdScan(client: ClamdClient, content: string, ms = 2000) {
  const scan = client.scan(new Deadline(ms));
  await scan.write(Buffer.from(content));
  scan.end();
  return scan.result;
}

describe('ClamdClient', () => {
  it('fails over past a dead address and reads a finding', async () => {
    const live = await fakeDaemon((request, socket) => {
      assert.ok(request.subarray(0, 10).equals(Buffer.from('zINSTREAM\0')));
      socket.end('stream: Test.Sig FOUND\0');
    }, instreamEnd);
    const client = new ClamdClient({
      addresses: [await deadAddress(), live], connectTimeoutMs: 500,
    });
    const verdict = await clamdScan(client, 'hello');
    assert.deepEqual(verdict, { status: 'found', signatures: ['Test.Sig'], address: live });
    assert.equal((await clamdScan(client, 'again')).address, live, 'the dead address stays second');
  });

  it('reads a clean answer', async () => {
    const live = await fakeDaemon((_request, socket) => socket.end('stream: OK\0'), instreamEnd);
    const client = new ClamdClient({ addresses: [live], connectTimeoutMs: 500 });
    assert.equal((await clamdScan(client, 'hello')).status, 'clean');
  });

  it('ends with a timeout at the deadline when clamd never answers', async () => {
    const silent = await fakeDaemon(() => {}, instreamEnd);
    const client = new ClamdClient({ addresses: [silent], connectTimeoutMs: 500 });
    const error = await clamdScan(client, 'hello', 300)
      .then(() => null, (caught: unknown) => caught);
    assert.ok(error instanceof ScannerError);
    assert.equal(error.kind, 'timeout');
  });

  it('calls a garbage answer garbage, and a size refusal too-large', async () => {
    const garbage = await fakeDaemon((_request, socket) => socket.end('hello there\0'),
      instreamEnd);
    const client = new ClamdClient({ addresses: [garbage], connectTimeoutMs: 500 });
    const error = await clamdScan(client, 'x').then(() => null, (caught: unknown) => caught);
    assert.ok(error instanceof ScannerError && error.kind === 'garbage', String(error));

    const tooBig = await fakeDaemon((_request, socket) =>
      socket.end('INSTREAM size limit exceeded. ERROR\0'), instreamEnd);
    const sized = new ClamdClient({ addresses: [tooBig], connectTimeoutMs: 500 });
    const refused = await clamdScan(sized, 'x').then(() => null, (caught: unknown) => caught);
    assert.ok(refused instanceof ScannerError && refused.kind === 'too-large', String(refused));
  });

  it('says unavailable when no address connects', async () => {
    const client = new ClamdClient({ addresses: [await deadAddress()], connectTimeoutMs: 500 });
    const error = await clamdScan(client, 'x').then(() => null, (caught: unknown) => caught);
    assert.ok(error instanceof ScannerError && error.kind === 'unavailable', String(error));
  });
});

const SPAM_REPLY = 'SPAMD/1.1 0 EX_OK\r\nContent-length: 20\r\nSpam: True ; 1002.3 / 5.0\r\n\r\n'
  + 'GTUBE,MISSING_DATE\r\n';

describe('SpamdClient', () => {
  it('sends SYMBOLS with Content-length and User, half-closes, fails over', async () => {
    let seen = '';
    const live = await fakeDaemon((request, socket) => {
      seen = request.toString('latin1');
      socket.end(SPAM_REPLY);
    }, (_request, ended) => ended);
    const client = new SpamdClient({
      addresses: [await deadAddress(), live], connectTimeoutMs: 500, user: 'filter',
    });
    // No newline at the end: only the half-close tells the daemon the message is complete.
    const verdict = await client.check(Buffer.from('Subject: x\r\n\r\nbody'), new Deadline(2000));
    assert.equal(seen, 'SYMBOLS SPAMC/1.5\r\nContent-length: 18\r\nUser: filter\r\n\r\n'
      + 'Subject: x\r\n\r\nbody');
    assert.deepEqual(verdict, {
      isSpam: true, score: 1002.3, threshold: 5, symbols: ['GTUBE', 'MISSING_DATE'], address: live,
    });
  });

  it('ends with a timeout at the deadline when spamd never answers', async () => {
    const silent = await fakeDaemon(() => {}, (_request, ended) => ended);
    const client = new SpamdClient({ addresses: [silent], connectTimeoutMs: 500, user: null });
    const error = await client.check(Buffer.from('x\r\n'), new Deadline(300))
      .then(() => null, (caught: unknown) => caught);
    assert.ok(error instanceof ScannerError && error.kind === 'timeout', String(error));
  });

  it('tries the next address after an EX_ error', async () => {
    const failing = await fakeDaemon((_request, socket) =>
      socket.end('SPAMD/1.0 75 EX_TEMPFAIL\r\n\r\n'), (_request, ended) => ended);
    const live = await fakeDaemon((_request, socket) => socket.end(SPAM_REPLY),
      (_request, ended) => ended);
    const client = new SpamdClient({
      addresses: [failing, live], connectTimeoutMs: 500, user: null,
    });
    assert.equal((await client.check(Buffer.from('x\r\n'), new Deadline(2000))).address, live);

    const alone = new SpamdClient({ addresses: [failing], connectTimeoutMs: 500, user: null });
    const error = await alone.check(Buffer.from('x\r\n'), new Deadline(2000))
      .then(() => null, (caught: unknown) => caught);
    assert.ok(error instanceof ScannerError && error.kind === 'unavailable', String(error));
    assert.match(error.message, /EX_TEMPFAIL/);
  });
});

describe('parseSpamdReply', () => {
  it('reads negative scores and thresholds', () => {
    const reply = parseSpamdReply(Buffer.from(
      'SPAMD/1.1 0 EX_OK\r\nSpam: False ; -3.5 / 5.0\r\n\r\nALL_TRUSTED,BAYES_00\r\n'));
    assert.deepEqual(reply, {
      isSpam: false, score: -3.5, threshold: 5, symbols: ['ALL_TRUSTED', 'BAYES_00'],
    });
  });

  it('refuses answers that are not a verdict', () => {
    for (const text of ['HTTP/1.1 200 OK\r\n\r\n', 'SPAMD/1.1 0 EX_OK\r\nSpam: maybe\r\n\r\n',
      'SPAMD/1.1 0 EX_OK\r\n\r\n']) {
      assert.throws(() => parseSpamdReply(Buffer.from(text)),
        (error: unknown) => error instanceof SpamdReplyError && error.kind === 'garbage', text);
    }
    assert.throws(() => parseSpamdReply(Buffer.from('SPAMD/1.0 76 Bad header line\r\n\r\n')),
      (error: unknown) => error instanceof SpamdReplyError && error.kind === 'unavailable');
  });

  it('drops rule names that are not rule names', () => {
    const reply = parseSpamdReply(Buffer.from(
      'SPAMD/1.1 0 EX_OK\r\nSpam: Yes ; 6 / 5\r\n\r\nRULE_A,<script>,RULE_B\r\n'));
    assert.deepEqual(reply.symbols, ['RULE_A', 'RULE_B']);
  });
});
