/*
 * Integration tests of connection reuse against a real SMTP server on 127.0.0.1: several
 * messages on one TCP connection, the per-connection message limit, a pool of size 0, a
 * pooled connection the server closed while idle, and RSET only where a transaction was left
 * open.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, it } from 'node:test';

import { startDownstream } from '../../test/harness/downstream';
import type { DownstreamConfig, HostPort } from '../config/types';
import { Forwarder } from './forwarder';
import { messageSource, RecordingServer, testDownstreamConfig } from './test-server';

const ENVELOPE = { sender: 'alice@sender.example', recipients: ['bob@corp.example'] };

describe('connection pool', () => {
  let server: RecordingServer | null = null;
  let forwarder: Forwarder | null = null;

  const setUp = async (
    overrides: Partial<DownstreamConfig>,
    serverIdleMs?: number,
  ): Promise<{ server: RecordingServer; forwarder: Forwarder; events: string[] }> => {
    server = await RecordingServer.start(serverIdleMs ? { idleTimeoutMs: serverIdleMs } : {});
    const events: string[] = [];
    forwarder = new Forwarder(testDownstreamConfig(server.address, overrides), {
      observer: (event, outcome) => events.push(`${event}:${outcome}`),
    });
    return { server, forwarder, events };
  };
  const sendNumbered = async (target: Forwarder, count: number): Promise<string[]> => {
    const outcomes: string[] = [];
    for (let index = 0; index < count; index++) {
      const raw = `Subject: message ${index}\r\n\r\nbody ${index}\r\n`;
      outcomes.push((await target.deliver(ENVELOPE, messageSource(raw), raw.length)).outcome);
    }
    return outcomes;
  };

  afterEach(async () => {
    await forwarder?.close();
    await server?.stop();
    forwarder = null;
    server = null;
  });

  it('sends several messages over one TCP connection, RSET between them', async () => {
    const setup = await setUp({});

    const outcomes = await sendNumbered(setup.forwarder, 4);

    assert.deepEqual(outcomes, ['delivered', 'delivered', 'delivered', 'delivered']);
    assert.equal(setup.server.connections, 1);
    assert.deepEqual(setup.server.messages.map(({ connection }) => connection), [0, 0, 0, 0]);
    assert.match(setup.server.messages[3]?.bytes.toString() ?? '', /body 3/);
    assert.deepEqual(setup.events.filter((event) => event.startsWith('reuse')),
      ['reuse:ok', 'reuse:ok', 'reuse:ok']);
  });

  it('replaces a connection after maxMessagesPerConnection messages', async () => {
    const setup = await setUp({ maxMessagesPerConnection: 2 });

    await sendNumbered(setup.forwarder, 5);

    assert.equal(setup.server.connections, 3);
    assert.deepEqual(setup.server.messages.map(({ connection }) => connection), [0, 0, 1, 1, 2]);
  });

  it('keeps no connection when poolSize is 0', async () => {
    const setup = await setUp({ poolSize: 0 });

    await sendNumbered(setup.forwarder, 3);

    assert.equal(setup.server.connections, 3);
  });

  it('opens a fresh connection when the server closed the idle one', async () => {
    const setup = await setUp({}, 150);

    await sendNumbered(setup.forwarder, 1);
    await sleep(400);
    const outcomes = await sendNumbered(setup.forwarder, 1);

    assert.deepEqual(outcomes, ['delivered']);
    assert.equal(setup.server.connections, 2);
    assert.equal(setup.server.messages.length, 2);
  });

  it('sends RSET before reuse only when the last transaction was left open', async () => {
    const downstream = await startDownstream();
    const target = new Forwarder(testDownstreamConfig(
      { host: downstream.host, port: downstream.port }, {}));
    try {
      const raw = 'Subject: one\r\n\r\nbody\r\n';
      const send = async (to: string): Promise<string> => (await target.deliver(
        { sender: 'alice@sender.example', recipients: [to] }, messageSource(raw), raw.length))
        .outcome;
      downstream.refuseRecipient('gone@corp.example', { code: 550, text: '5.1.1 No such user' });

      // delivered, delivered (no RSET: the final dot ended the transaction), refused (MAIL
      // accepted, the transaction stays open), delivered (RSET first).
      const outcomes = [await send('bob@corp.example'), await send('carol@corp.example'),
        await send('gone@corp.example'), await send('dave@corp.example')];
      assert.deepEqual(outcomes, ['delivered', 'delivered', 'rejected', 'delivered']);

      const messages = await downstream.waitForMessages(3);
      assert.equal(new Set(messages.map((message) => message.connectionNumber)).size, 1);
      const session = messages[2]?.wire.toString('latin1') ?? '';
      const commands = session.split('\r\n')
        .filter((line) => /^(MAIL|RSET|DATA)\b/.test(line)).map((line) => line.slice(0, 4));
      assert.deepEqual(commands, ['MAIL', 'DATA', 'MAIL', 'DATA', 'MAIL', 'RSET', 'MAIL', 'DATA']);
    } finally {
      await target.close();
      await downstream.stop();
    }
  });

  it('reuses a connection after a refused transaction', async () => {
    const setup = await setUp({});
    setup.server.refuse.set('bob@corp.example', { code: 550, message: 'No such user' });

    const refused = await sendNumbered(setup.forwarder, 1);
    setup.server.refuse.clear();
    const delivered = await sendNumbered(setup.forwarder, 1);

    assert.deepEqual([...refused, ...delivered], ['rejected', 'delivered']);
    assert.equal(setup.server.connections, 1);
  });
});

/**
 * A scripted downstream: plain SMTP without PIPELINING. `dropOn(connection, command, count)`
 * says whether to close the connection instead of answering the count-th such command.
 */
async function scriptedServer(
  dropOn: (connection: number, command: string, count: number) => boolean,
): Promise<{ address: HostPort; connections: () => number; delivered: string[];
  stop: () => Promise<void> }> {
  let connections = 0;
  const delivered: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    const connection = connections++;
    const counts = new Map<string, number>();
    let inData = false;
    let body = '';
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.write('220 scripted.corp.example\r\n');
    socket.on('data', (chunk) => {
      for (const line of chunk.toString('latin1').split('\r\n').slice(0, -1)) {
        if (inData) {
          if (line !== '.') {
            body += `${line}\n`;
            continue;
          }
          inData = false;
          if (dropOn(connection, '.', 1)) return void socket.destroy();
          delivered.push(body);
          socket.write('250 2.0.0 queued\r\n');
          continue;
        }
        const command = line.split(/[ :]/)[0]?.toUpperCase() ?? '';
        const count = (counts.get(command) ?? 0) + 1;
        counts.set(command, count);
        if (dropOn(connection, command, count)) return void socket.destroy();
        if (command === 'DATA') {
          inData = true;
          body = '';
          socket.write('354 go ahead\r\n');
        } else if (command === 'QUIT') socket.end('221 bye\r\n');
        else socket.write('250 ok\r\n');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    address: { host: '127.0.0.1', port: (server.address() as AddressInfo).port },
    connections: () => connections,
    delivered,
    stop: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('stale pooled connections', () => {
  it('retries once on a fresh connection when the reused one dies at MAIL', async () => {
    const downstream = await scriptedServer((connection, command, count) =>
      connection === 0 && command === 'MAIL' && count === 2);
    const forwarder = new Forwarder(testDownstreamConfig(downstream.address));
    try {
      const first = await forwarder.deliver(ENVELOPE, messageSource('one\r\n'), 5);
      const second = await forwarder.deliver(ENVELOPE, messageSource('two\r\n'), 5);

      assert.deepEqual([first.outcome, second.outcome], ['delivered', 'delivered']);
      assert.equal(downstream.connections(), 2);
      assert.deepEqual(downstream.delivered, ['one\n', 'two\n']);
    } finally {
      await forwarder.close();
      await downstream.stop();
    }
  });

  it('never resends when the connection dies after the message was sent', async () => {
    const downstream = await scriptedServer((connection, command) =>
      connection === 0 && command === '.');
    const forwarder = new Forwarder(testDownstreamConfig(downstream.address));
    try {
      const result = await forwarder.deliver(ENVELOPE, messageSource('one\r\n'), 5);

      assert.deepEqual([result.outcome, result.code, result.enhanced], ['tempfail', 451, '4.4.2']);
      assert.equal(downstream.connections(), 1);
      assert.deepEqual(downstream.delivered, []);
    } finally {
      await forwarder.close();
      await downstream.stop();
    }
  });
});
