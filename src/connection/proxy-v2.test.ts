/*
 * Tests for proxy-v2.ts. The v2 headers are built byte by byte from the PROXY protocol
 * specification (section 2.2): 12-byte signature, version/command byte, family/protocol byte,
 * 16-bit body length, addresses, ports, then optional TLVs. The translation is then exercised
 * over real loopback sockets in front of a plain net.Server standing in for Haraka.
 */

import assert from 'node:assert/strict';
import net, { type AddressInfo, type Server, type Socket } from 'node:net';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import {
  decodeProxyV2, endpointsLine, installProxyV2Translation, proxyHostList,
} from './proxy-v2';

// Haraka's own PROXY v1 parser (haraka-net-utils, CommonJS without types).
// eslint-disable-next-line @typescript-eslint/no-require-imports
const harakaNetUtils = require('haraka-net-utils') as {
  parse_proxy_line(line: string): Record<string, string> | null;
};
const parseProxyLine = (line: string): Record<string, string> | null =>
  harakaNetUtils.parse_proxy_line(line);

const SIGNATURE = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];
const V2_PROXY = 0x21;
const V2_LOCAL = 0x20;
const TCP_OVER_IPV4 = 0x11;
const TCP_OVER_IPV6 = 0x21;
const UNSPEC = 0x00;

function v2Header(versionCommand: number, familyProtocol: number, body: number[]): Buffer {
  return Buffer.from([
    ...SIGNATURE, versionCommand, familyProtocol, body.length >> 8, body.length & 0xff, ...body,
  ]);
}

/** 203.0.113.7:40001 -> 198.51.100.25:25 (TEST-NET-3 and TEST-NET-2). */
const TCP4_BODY = [203, 0, 113, 7, 198, 51, 100, 25, 0x9c, 0x41, 0x00, 0x19];
const TCP4_LINE = 'PROXY TCP4 203.0.113.7 198.51.100.25 40001 25\r\n';

/** 2001:db8::7 port 40001 -> 2001:db8::19 port 587. */
const TCP6_BODY = [
  0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x07,
  0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x19,
  0x9c, 0x41, 0x02, 0x4b,
];

describe('decodeProxyV2', () => {
  it('decodes a TCP over IPv4 header into the v1 line', () => {
    const header = v2Header(V2_PROXY, TCP_OVER_IPV4, TCP4_BODY);
    assert.equal(header.length, 28);
    assert.deepEqual(decodeProxyV2(header), { kind: 'header', line: TCP4_LINE, consumed: 28 });
  });

  it('consumes only the header when SMTP data follows it', () => {
    const data = Buffer.concat([v2Header(V2_PROXY, TCP_OVER_IPV4, TCP4_BODY),
      Buffer.from('EHLO x\r\n')]);
    assert.deepEqual(decodeProxyV2(data), { kind: 'header', line: TCP4_LINE, consumed: 28 });
  });

  it('decodes a TCP over IPv6 header into addresses node accepts', () => {
    const decoded = decodeProxyV2(v2Header(V2_PROXY, TCP_OVER_IPV6, TCP6_BODY));
    assert.equal(decoded.kind, 'header');
    if (decoded.kind !== 'header') return;
    assert.equal(decoded.consumed, 16 + 36);
    const fields = decoded.line.trimEnd().split(' ');
    assert.equal(fields.length, 6);
    assert.deepEqual([fields[0], fields[1], fields[4], fields[5]],
      ['PROXY', 'TCP6', '40001', '587']);
    assert.equal(net.isIPv6(fields[2]!), true);
    assert.equal(net.isIPv6(fields[3]!), true);
    assert.equal(new net.SocketAddress({ address: fields[2]!, family: 'ipv6' }).address,
      new net.SocketAddress({ address: '2001:db8::7', family: 'ipv6' }).address);
    assert.equal(new net.SocketAddress({ address: fields[3]!, family: 'ipv6' }).address,
      new net.SocketAddress({ address: '2001:db8::19', family: 'ipv6' }).address);
    assert.ok(decoded.line.endsWith('\r\n'));
  });

  it('marks a LOCAL command (a health check) for the connection endpoints', () => {
    assert.deepEqual(decodeProxyV2(v2Header(V2_LOCAL, UNSPEC, [])),
      { kind: 'local', consumed: 16 });
    // A LOCAL command may still carry addresses; they are skipped, not used.
    assert.deepEqual(decodeProxyV2(v2Header(V2_LOCAL, TCP_OVER_IPV4, TCP4_BODY)),
      { kind: 'local', consumed: 28 });
  });

  it('marks the UNSPEC family, and UDP, for the connection endpoints', () => {
    assert.deepEqual(decodeProxyV2(v2Header(V2_PROXY, UNSPEC, [])),
      { kind: 'local', consumed: 16 });
    assert.deepEqual(decodeProxyV2(v2Header(V2_PROXY, 0x12, TCP4_BODY)),
      { kind: 'local', consumed: 28 });
  });

  it('skips TLVs counted in the length', () => {
    const alpn = [0x01, 0x00, 0x02, 0x68, 0x32];
    const noop = [0x04, 0x00, 0x03, 0x00, 0x00, 0x00];
    const header = v2Header(V2_PROXY, TCP_OVER_IPV4, [...TCP4_BODY, ...alpn, ...noop]);
    const data = Buffer.concat([header, Buffer.from('EHLO x\r\n')]);
    assert.deepEqual(decodeProxyV2(data),
      { kind: 'header', line: TCP4_LINE, consumed: 16 + 12 + alpn.length + noop.length });
  });

  it('asks for more bytes while the header is truncated', () => {
    const header = v2Header(V2_PROXY, TCP_OVER_IPV4, TCP4_BODY);
    for (const length of [0, 1, 5, 12, 13, 15, 16, 20, 27]) {
      assert.deepEqual(decodeProxyV2(header.subarray(0, length)), { kind: 'incomplete' },
        `after ${length} bytes`);
    }
  });

  it('refuses a version other than 2', () => {
    for (const versionCommand of [0x11, 0x31, 0x01]) {
      const decoded = decodeProxyV2(v2Header(versionCommand, TCP_OVER_IPV4, TCP4_BODY));
      assert.equal(decoded.kind, 'invalid', `byte 0x${versionCommand.toString(16)}`);
    }
  });

  it('refuses a declared length above the limit before the bytes arrive', () => {
    const header = Buffer.from([...SIGNATURE, V2_PROXY, TCP_OVER_IPV4, 0x02, 0x01]);
    assert.deepEqual(decodeProxyV2(header), { kind: 'invalid', reason: 'header too long' });
    const huge = Buffer.from([...SIGNATURE, V2_PROXY, TCP_OVER_IPV4, 0xff, 0xff]);
    assert.equal(decodeProxyV2(huge).kind, 'invalid');
  });

  it('refuses an unknown command and addresses shorter than their family needs', () => {
    assert.equal(decodeProxyV2(v2Header(0x22, TCP_OVER_IPV4, TCP4_BODY)).kind, 'invalid');
    assert.equal(decodeProxyV2(v2Header(V2_PROXY, TCP_OVER_IPV4, TCP4_BODY.slice(0, 8))).kind,
      'invalid');
    assert.equal(decodeProxyV2(v2Header(V2_PROXY, TCP_OVER_IPV6, TCP4_BODY)).kind, 'invalid');
  });

  it('recognises data that is not a v2 header', () => {
    for (const text of ['EHLO x\r\n', 'PROXY TCP4 203.0.113.7 198.51.100.25 40001 25\r\n',
      '\r\n\r\nX', 'Q']) {
      assert.deepEqual(decodeProxyV2(Buffer.from(text)), { kind: 'not-v2' }, JSON.stringify(text));
    }
  });
});

describe('the v1 lines as Haraka parses them', () => {
  it('Haraka accepts the translated TCP4 and TCP6 lines with the same addresses', () => {
    const tcp4 = parseProxyLine(TCP4_LINE);
    assert.equal(tcp4?.src_ip, '203.0.113.7');
    assert.equal(tcp4?.src_port, '40001');
    const decoded = decodeProxyV2(v2Header(V2_PROXY, TCP_OVER_IPV6, TCP6_BODY));
    assert.equal(decoded.kind, 'header');
    if (decoded.kind !== 'header') return;
    const tcp6 = parseProxyLine(decoded.line);
    assert.equal(tcp6?.proto, 'TCP6');
    assert.equal(tcp6?.dst_port, '587');
  });

  it('Haraka refuses PROXY UNKNOWN, which is why LOCAL uses the endpoints', () => {
    assert.equal(parseProxyLine('PROXY UNKNOWN\r\n'), null);
    const line = endpointsLine({
      remoteAddress: '192.0.2.10', remotePort: 51000, localAddress: '192.0.2.1', localPort: 25,
    });
    assert.equal(line, 'PROXY TCP4 192.0.2.10 192.0.2.1 51000 25\r\n');
    assert.equal(parseProxyLine(line!)?.src_ip, '192.0.2.10');
  });
});

describe('endpointsLine', () => {
  it('names IPv6 endpoints as TCP6 and mapped IPv4 as TCP4', () => {
    assert.equal(endpointsLine({
      remoteAddress: '2001:db8::7', remotePort: 40001, localAddress: '2001:db8::1', localPort: 25,
    }), 'PROXY TCP6 2001:db8::7 2001:db8::1 40001 25\r\n');
    assert.equal(endpointsLine({
      remoteAddress: '::ffff:192.0.2.10', remotePort: 40001,
      localAddress: '::ffff:192.0.2.1', localPort: 25,
    }), 'PROXY TCP4 192.0.2.10 192.0.2.1 40001 25\r\n');
  });

  it('returns null for a socket without endpoints', () => {
    const closed = {
      remoteAddress: undefined, remotePort: undefined,
      localAddress: undefined, localPort: undefined,
    };
    assert.equal(endpointsLine(closed), null);
    assert.equal(endpointsLine({ ...closed, remoteAddress: '192.0.2.10', localAddress: '::1' }),
      null);
  });
});

describe('proxyHostList', () => {
  it('holds single addresses and networks of both families', () => {
    const list = proxyHostList(['192.0.2.10', '10.0.0.0/8', '2001:db8::/32', '::1']);
    assert.equal(list.check('192.0.2.10', 'ipv4'), true);
    assert.equal(list.check('192.0.2.11', 'ipv4'), false);
    assert.equal(list.check('10.200.1.1', 'ipv4'), true);
    assert.equal(list.check('2001:db8::7', 'ipv6'), true);
    assert.equal(list.check('::1', 'ipv6'), true);
    assert.equal(list.check('2001:db9::7', 'ipv6'), false);
  });
});

/** A plain server standing in for Haraka: it records what each connection sends. */
class RecordingServer {
  readonly server: Server;
  readonly received: Array<Promise<string>> = [];
  private readonly sockets = new Set<Socket>();

  constructor() {
    this.server = net.createServer((socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      this.received.push(readUntilEhlo(socket));
    });
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return (this.server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/**
 * Collects the bytes of one connection until the EHLO line, the end, or a generous bound (so a
 * translation that loses bytes fails the comparison instead of hanging the test).
 */
function readUntilEhlo(socket: Socket): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    const finish = (): void => {
      clearTimeout(bound);
      resolve(text);
    };
    const bound = setTimeout(finish, 5000);
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
      if (text.includes('EHLO x\r\n')) finish();
    });
    socket.on('end', finish);
    socket.on('error', finish);
  });
}

async function connect(port: number): Promise<Socket> {
  const client = net.connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    client.once('connect', resolve);
    client.once('error', reject);
  });
  return client;
}

async function send(port: number, parts: Buffer[]): Promise<Socket> {
  const client = await connect(port);
  for (const [index, part] of parts.entries()) {
    if (index > 0) await sleep(30);
    client.write(part);
  }
  return client;
}

describe('installProxyV2Translation over loopback', () => {
  const servers: RecordingServer[] = [];
  const clients: Socket[] = [];
  after(async () => {
    for (const client of clients) client.destroy();
    for (const server of servers) await server.close();
  });

  async function start(proxyHosts: string[]): Promise<{ server: RecordingServer; port: number }> {
    const server = new RecordingServer();
    servers.push(server);
    installProxyV2Translation([server.server], proxyHosts);
    return { server, port: await server.listen() };
  }

  const header = v2Header(V2_PROXY, TCP_OVER_IPV4, TCP4_BODY);
  const ehlo = Buffer.from('EHLO x\r\n');

  it('hands a listed peer v1 line then its SMTP data', async () => {
    const { server, port } = await start(['127.0.0.1']);
    clients.push(await send(port, [Buffer.concat([header, ehlo])]));
    await waitFor(() => server.received.length === 1);
    const text = await server.received[0]!;
    assert.equal(text, `${TCP4_LINE}EHLO x\r\n`);
    assert.deepEqual(text.split('\r\n').slice(0, 2),
      ['PROXY TCP4 203.0.113.7 198.51.100.25 40001 25', 'EHLO x']);
  });

  it('reassembles a header split across two writes', async () => {
    const { server, port } = await start(['127.0.0.0/8']);
    // Once inside the signature, once inside the address block.
    for (const cut of [7, 20]) {
      clients.push(await send(port,
        [header.subarray(0, cut), Buffer.concat([header.subarray(cut), ehlo])]));
    }
    await waitFor(() => server.received.length === 2);
    assert.equal(await server.received[0]!, `${TCP4_LINE}EHLO x\r\n`);
    assert.equal(await server.received[1]!, `${TCP4_LINE}EHLO x\r\n`);
  });

  it('presents the real endpoints for a LOCAL command (a health check)', async () => {
    const { server, port } = await start(['127.0.0.1']);
    const client = await send(port, [Buffer.concat([v2Header(V2_LOCAL, UNSPEC, []), ehlo])]);
    clients.push(client);
    await waitFor(() => server.received.length === 1);
    assert.equal(await server.received[0]!,
      `PROXY TCP4 127.0.0.1 127.0.0.1 ${client.localPort} ${port}\r\nEHLO x\r\n`);
  });

  it('hands a listed peer that speaks plain SMTP its bytes untouched', async () => {
    const { server, port } = await start(['127.0.0.1']);
    clients.push(await send(port, [ehlo]));
    await waitFor(() => server.received.length === 1);
    assert.equal(await server.received[0]!, 'EHLO x\r\n');
  });

  it('passes a peer that is not listed through untouched, header and all', async () => {
    const { server, port } = await start(['192.0.2.10']);
    clients.push(await send(port, [Buffer.concat([header, ehlo])]));
    await waitFor(() => server.received.length === 1);
    assert.equal(await server.received[0]!, Buffer.concat([header, ehlo]).toString('latin1'));
  });

  it('answers a malformed header from a listed peer with 421, never reaching Haraka', async () => {
    const { server, port } = await start(['127.0.0.1']);
    const bad = v2Header(0x11, TCP_OVER_IPV4, TCP4_BODY);
    const client = await send(port, [Buffer.concat([bad, ehlo])]);
    clients.push(client);
    const answer = await new Promise<string>((resolve) => {
      let text = '';
      client.on('data', (chunk: Buffer) => { text += chunk.toString('latin1'); });
      client.on('close', () => resolve(text));
      client.on('error', () => undefined);
    });
    assert.match(answer, /^421 4\.7\.0 /);
    assert.equal(server.received.length, 0);
  });

  it('does nothing with an empty host list, and installs only once', async () => {
    const plain = new RecordingServer();
    servers.push(plain);
    installProxyV2Translation([plain.server], []);
    assert.equal(plain.server.listenerCount('connection'), 1);

    const twice = new RecordingServer();
    servers.push(twice);
    installProxyV2Translation([twice.server], ['127.0.0.1']);
    installProxyV2Translation([twice.server], ['127.0.0.1']);
    const port = await twice.listen();
    clients.push(await send(port, [Buffer.concat([header, ehlo])]));
    await waitFor(() => twice.received.length === 1);
    assert.equal(await twice.received[0]!, `${TCP4_LINE}EHLO x\r\n`);
  });
});

/** Polls a condition on the event loop; gives up after a generous bound instead of hanging. */
async function waitFor(condition: () => boolean): Promise<void> {
  for (let round = 0; round < 1000; round++) {
    if (condition()) return;
    await sleep(5);
  }
  assert.fail('the server never saw the connection');
}
