/*
 * Integration tests of the SMTP client's session setup against real servers on 127.0.0.1:
 * STARTTLS in opportunistic and required modes (certificate made with openssl at test time),
 * a downstream that never greets (given up at the connect deadline), and one that talks
 * nonsense.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';

import type { DownstreamConfig, HostPort } from '../config/types';
import { DownstreamError } from './errors';
import { Forwarder } from './forwarder';
import { SmtpClient } from './smtp-client';
import {
  makeSelfSignedCertificate,
  messageSource,
  RecordingServer,
  testDownstreamConfig,
} from './test-server';

const ENVELOPE = { sender: 'alice@sender.example', recipients: ['bob@corp.example'] };
const RAW = 'Subject: tls\r\n\r\n.secret line\r\n';

async function deliverOnce(address: HostPort, overrides: Partial<DownstreamConfig>) {
  const forwarder = new Forwarder(testDownstreamConfig(address, overrides));
  try {
    return await forwarder.deliver(ENVELOPE, messageSource(RAW), RAW.length);
  } finally {
    await forwarder.close();
  }
}

describe('STARTTLS to the downstream', () => {
  let certificate: ReturnType<typeof makeSelfSignedCertificate>;
  let tlsServer: RecordingServer;
  let plainServer: RecordingServer;

  before(async () => {
    certificate = makeSelfSignedCertificate();
    tlsServer = await RecordingServer.start({ tls: certificate });
    plainServer = await RecordingServer.start();
  });
  after(async () => {
    await tlsServer.stop();
    await plainServer.stop();
  });

  it('opportunistic: uses TLS when offered, without checking the certificate', async () => {
    const result = await deliverOnce(tlsServer.address, { tls: 'opportunistic' });
    assert.equal(result.outcome, 'delivered');
    assert.equal(result.tls, true);
    assert.equal(tlsServer.messages.at(-1)?.bytes.toString(), RAW);
  });

  it('opportunistic: stays in plain text when STARTTLS is not offered', async () => {
    const result = await deliverOnce(plainServer.address, { tls: 'opportunistic' });
    assert.deepEqual([result.outcome, result.tls], ['delivered', false]);
  });

  it('off: never upgrades even when offered', async () => {
    const result = await deliverOnce(tlsServer.address, { tls: 'off' });
    assert.deepEqual([result.outcome, result.tls], ['delivered', false]);
  });

  it('required: verifies the certificate against the CA file and the TLS name', async () => {
    const byName = await deliverOnce(tlsServer.address,
      { tls: 'required', caFile: certificate.certPath, tlsName: 'localhost' });
    const byAddress = await deliverOnce(tlsServer.address,
      { tls: 'required', caFile: certificate.certPath });

    assert.deepEqual([byName.outcome, byName.tls], ['delivered', true]);
    assert.deepEqual([byAddress.outcome, byAddress.tls], ['delivered', true]);
  });

  it('required: tempfails when the certificate does not match the TLS name', async () => {
    const before = tlsServer.messages.length;
    const result = await deliverOnce(tlsServer.address,
      { tls: 'required', caFile: certificate.certPath, tlsName: 'mail.wrong.example' });

    assert.deepEqual([result.outcome, result.code, result.enhanced], ['tempfail', 451, '4.4.1']);
    assert.match(result.detail, /tls during starttls.*mail\.wrong\.example/i);
    assert.equal(tlsServer.messages.length, before);
  });

  it('required: tempfails when the CA is not trusted (system CAs only)', async () => {
    const result = await deliverOnce(tlsServer.address, { tls: 'required', tlsName: 'localhost' });
    assert.deepEqual([result.outcome, result.enhanced], ['tempfail', '4.4.1']);
  });

  it('required: tempfails when STARTTLS is not offered', async () => {
    const before = plainServer.messages.length;
    const result = await deliverOnce(plainServer.address, { tls: 'required' });
    assert.deepEqual([result.outcome, result.enhanced], ['tempfail', '4.4.1']);
    assert.match(result.detail, /STARTTLS not offered/);
    assert.equal(plainServer.messages.length, before);
  });
});

describe('a misbehaving downstream', () => {
  const servers: net.Server[] = [];
  const rawServer = async (onSocket: (socket: net.Socket) => void): Promise<HostPort> => {
    const server = net.createServer(onSocket);
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return { host: '127.0.0.1', port: (server.address() as AddressInfo).port };
  };
  after(() => {
    for (const server of servers) server.close();
  });

  it('gives up on a server that accepts but never greets, at connectTimeoutMs', async () => {
    const sockets: net.Socket[] = [];
    const address = await rawServer((socket) => sockets.push(socket));

    // The error names the deadline that ended the wait: the connect one, not the command one.
    const config = testDownstreamConfig(address, { connectTimeoutMs: 150,
      commandTimeoutMs: 5000 });
    const failure = await SmtpClient.open(config, address).then(() => null,
      (error: unknown) => error);

    assert.ok(failure instanceof DownstreamError);
    assert.deepEqual([failure.failure, failure.stage], ['timeout', 'greeting']);
    assert.equal(failure.beforeSession, true);
    assert.match(failure.message, /within 1[0-5]\d ms/);
    assert.equal(sockets.length, 1, 'the server never saw the connection');
    for (const socket of sockets) socket.destroy();
  });

  it('refuses a server that answers with something that is not SMTP', async () => {
    const address = await rawServer((socket) => socket.end('HTTP/1.1 400 Bad Request\r\n\r\n'));

    const result = await deliverOnce(address, {});

    assert.deepEqual([result.outcome, result.enhanced], ['tempfail', '4.4.1']);
    assert.match(result.detail, /protocol|unparsable/);
  });

  it('falls back to HELO when EHLO is refused', async () => {
    const commands: string[] = [];
    const address = await rawServer((socket) => {
      socket.write('220 old.corp.example\r\n');
      socket.on('data', (chunk) => {
        for (const line of chunk.toString().split('\r\n').filter(Boolean)) {
          commands.push(line.split(' ')[0] ?? '');
          if (line.startsWith('EHLO')) socket.write('502 5.5.1 unknown command\r\n');
          else if (line.startsWith('HELO')) socket.write('250 old.corp.example\r\n');
          else if (line.startsWith('QUIT')) socket.end('221 bye\r\n');
        }
      });
    });

    const client = await SmtpClient.open(testDownstreamConfig(address), address);
    await client.quit();

    assert.deepEqual(commands, ['EHLO', 'HELO', 'QUIT']);
    assert.equal(client.extensions.size, 0);
  });
});

describe('the message body on the wire', () => {
  let plain: RecordingServer;
  let secure: RecordingServer;
  before(async () => {
    plain = await RecordingServer.start();
    secure = await RecordingServer.start({ tls: makeSelfSignedCertificate() });
  });
  after(async () => {
    await plain.stop();
    await secure.stop();
  });

  // The client holds each chunk until the next arrives and sends the last with the final dot.
  const lines = Array.from({ length: 400 }, (_, index) => (index % 7 === 0
    ? `.dot line ${index}` : `line ${index} ${'x'.repeat(index % 50)}`));
  const raw = `Subject: chunks\r\n\r\n${lines.join('\r\n')}\r\n..\r\n.\r\n`;
  for (const chunkSize of [1, 7, 1000, raw.length]) {
    for (const tls of ['off', 'opportunistic'] as const) {
      it(`arrives byte for byte in chunks of ${chunkSize} (${tls === 'off' ? 'plain' : 'TLS'})`,
        async () => {
          const server = tls === 'off' ? plain : secure;
          const forwarder = new Forwarder(testDownstreamConfig(server.address, { tls }));
          try {
            const result = await forwarder.deliver(ENVELOPE, messageSource(raw, chunkSize),
              raw.length);
            assert.deepEqual([result.outcome, result.tls], ['delivered', tls !== 'off']);
          } finally {
            await forwarder.close();
          }
          assert.equal(server.messages.at(-1)?.bytes.toString('latin1'), raw);
        });
    }
  }
});
