/*
 * Proves the raw SMTP client: multi-line replies, bytes sent exactly as given, dot-stuffing in
 * sendMail, and PROXY headers laid out as the PROXY protocol specification says.
 */

import assert from 'node:assert/strict';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { after, before, describe, it } from 'node:test';

import { dotStuff, proxyV1Header, proxyV2Header, SmtpTalk } from './smtp-talk';

describe('smtp-talk', () => {
  let server: Server;
  let port = 0;
  let received = Buffer.alloc(0);

  // A scripted server: greets with a multi-line 220, answers every line but PROXY with 250.
  before(async () => {
    server = createServer((socket) => {
      socket.write('220-first line\r\n220-second line\r\n220 ready\r\n');
      socket.on('data', (chunk: Buffer) => {
        received = Buffer.concat([received, chunk]);
        const lines = chunk
          .toString('latin1')
          .split('\r\n')
          .filter((line) => line && !line.startsWith('PROXY'));
        for (const line of lines) socket.write(line === 'QUIT' ? '221 bye\r\n' : '250 ok\r\n');
        if (lines.includes('QUIT')) socket.end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  after(() => {
    server.close();
  });

  it('reads a multi-line reply whole and sends bytes exactly as given', async () => {
    const talk = await SmtpTalk.connect('127.0.0.1', port, { proxy: 'PROXY UNKNOWN\r\n' });
    const greeting = await talk.expect(220);
    assert.deepEqual(greeting.lines, ['first line', 'second line', 'ready']);
    assert.equal(greeting.raw, '220-first line\r\n220-second line\r\n220 ready\r\n');

    assert.equal((await talk.command('NOOP\rBARE')).code, 250);
    assert.equal((await talk.command('QUIT')).code, 221);
    assert.equal(await talk.waitForClose(2000), true);
    assert.equal(received.toString('latin1'), 'PROXY UNKNOWN\r\nNOOP\rBARE\r\nQUIT\r\n');
  });

  it('fails expect() on another code and readReply() on a closed connection', async () => {
    const talk = await SmtpTalk.connect('127.0.0.1', port);
    await assert.rejects(talk.expect(250), /expected 250; got: 220-first line/);
    await talk.command('QUIT');
    await talk.waitForClose(2000);
    await assert.rejects(talk.readReply(500), /connection closed/);
  });

  it('dot-stuffs lines that start with a dot and ends with the final dot', () => {
    assert.equal(dotStuff('.a\r\nb\r\n..c').toString(), '..a\r\nb\r\n...c\r\n.\r\n');
    assert.equal(dotStuff('x\r\n').toString(), 'x\r\n.\r\n');
  });

  it('builds a PROXY v1 line for IPv4 and IPv6', () => {
    const v4 = {
      sourceAddress: '192.0.2.1',
      sourcePort: 54321,
      destinationAddress: '198.51.100.2',
    };
    assert.equal(
      proxyV1Header({ ...v4, destinationPort: 25 }),
      'PROXY TCP4 192.0.2.1 198.51.100.2 54321 25\r\n',
    );
    assert.equal(
      proxyV1Header({
        sourceAddress: '2001:db8::1', sourcePort: 1, destinationAddress: '2001:db8::2',
        destinationPort: 25,
      }),
      'PROXY TCP6 2001:db8::1 2001:db8::2 1 25\r\n',
    );
  });

  it('builds PROXY v2 headers byte for byte', () => {
    const signature = '0d0a0d0a000d0a515549540a';
    const v4 = proxyV2Header({
      sourceAddress: '192.0.2.1', sourcePort: 54321,
      destinationAddress: '198.51.100.2', destinationPort: 25,
    });
    assert.equal(v4.toString('hex'), `${signature}2111000cc0000201c6336402d4310019`);

    const v6 = proxyV2Header({
      sourceAddress: '2001:db8::1', sourcePort: 1, destinationAddress: '::1', destinationPort: 25,
    });
    assert.equal(
      v6.toString('hex'),
      `${signature}21210024` + '20010db8000000000000000000000001' +
        '00000000000000000000000000000001' + '00010019',
    );

    const tlvs = [{ type: 0x04, value: Buffer.from('x') }];
    const local = proxyV2Header({ command: 'LOCAL', tlvs });
    assert.equal(local.toString('hex'), `${signature}2000000404000178`);
  });
});
