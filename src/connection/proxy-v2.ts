/*
 * PROXY protocol version 2 for Haraka, which only understands version 1.
 *
 * A load balancer listed in smtp.proxy_hosts may open its connection with the binary v2 header
 * instead of the v1 text line. For such peers this module reads the first bytes of the
 * connection; a v2 header is decoded and replaced by the equivalent v1 line before Haraka's own
 * connection handler sees the socket, so the presented address becomes the client address for
 * every check and log line. Anything else is handed to Haraka untouched.
 *
 * Untrusted input: the header bytes (only from listed hosts; everybody else is never read here).
 * Decides: a malformed v2 header closes the connection (Haraka would answer 421 for v1).
 * A LOCAL command (a balancer's health check) and an address family other than TCP over IPv4
 * or IPv6 carry no client address: the connection's own endpoints are presented instead, as the
 * specification asks. (Haraka 3.3.4 answers `PROXY UNKNOWN` with 421 Invalid PROXY format, so
 * that line would fail every health check that expects a greeting.)
 * LIMITATION: TLV extensions (e.g. the TLS information some balancers add) are skipped.
 */

import { isIP, type Server, type Socket } from 'node:net';
import { BlockList } from 'node:net';

const SIGNATURE = Buffer.from([
  0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
]);
const HEADER_BYTES = 16;
const MAX_BODY_BYTES = 512;
const FIRST_BYTES_DEADLINE_MS = 30_000;

export type ProxyV2Result =
  | { kind: 'incomplete' }
  | { kind: 'not-v2' }
  | { kind: 'invalid'; reason: string }
  /** LOCAL command or an untranslated family: use the connection's own endpoints. */
  | { kind: 'local'; consumed: number }
  | { kind: 'header'; line: string; consumed: number };

/** Decodes a v2 header at the start of `data`, as the v1 line Haraka understands. */
export function decodeProxyV2(data: Buffer): ProxyV2Result {
  const prefix = data.subarray(0, Math.min(data.length, SIGNATURE.length));
  if (!prefix.equals(SIGNATURE.subarray(0, prefix.length))) return { kind: 'not-v2' };
  if (data.length < HEADER_BYTES) return { kind: 'incomplete' };

  const versionCommand = data[12] ?? 0;
  const familyProtocol = data[13] ?? 0;
  const bodyLength = data.readUInt16BE(14);
  if (versionCommand >> 4 !== 2) return { kind: 'invalid', reason: 'version is not 2' };
  if (bodyLength > MAX_BODY_BYTES) return { kind: 'invalid', reason: 'header too long' };
  if (data.length < HEADER_BYTES + bodyLength) return { kind: 'incomplete' };

  const consumed = HEADER_BYTES + bodyLength;
  const body = data.subarray(HEADER_BYTES, consumed);
  const command = versionCommand & 0x0f;
  if (command === 0x0) return { kind: 'local', consumed };
  if (command !== 0x1) return { kind: 'invalid', reason: 'unknown command' };

  // Addresses: 0x11 TCP over IPv4, 0x21 TCP over IPv6; anything else names no usable client.
  if (familyProtocol === 0x11) {
    if (body.length < 12) return { kind: 'invalid', reason: 'IPv4 addresses truncated' };
    const source = [...body.subarray(0, 4)].join('.');
    const destination = [...body.subarray(4, 8)].join('.');
    return { kind: 'header', consumed,
      line: `PROXY TCP4 ${source} ${destination} `
        + `${body.readUInt16BE(8)} ${body.readUInt16BE(10)}\r\n` };
  }
  if (familyProtocol === 0x21) {
    if (body.length < 36) return { kind: 'invalid', reason: 'IPv6 addresses truncated' };
    const source = ipv6(body.subarray(0, 16));
    const destination = ipv6(body.subarray(16, 32));
    return { kind: 'header', consumed,
      line: `PROXY TCP6 ${source} ${destination} `
        + `${body.readUInt16BE(32)} ${body.readUInt16BE(34)}\r\n` };
  }
  return { kind: 'local', consumed };
}

/**
 * The v1 line naming the connection's own endpoints, or null when the socket has none left
 * (already closed). IPv4-mapped IPv6 addresses are presented as IPv4.
 */
export function endpointsLine(
  socket: Pick<Socket, 'remoteAddress' | 'remotePort' | 'localAddress' | 'localPort'>,
): string | null {
  const client = (socket.remoteAddress ?? '').replace(/^::ffff:/i, '');
  const server = (socket.localAddress ?? '').replace(/^::ffff:/i, '');
  const family = isIP(client);
  if (family === 0 || isIP(server) !== family) return null;
  if (socket.remotePort === undefined || socket.localPort === undefined) return null;
  return `PROXY TCP${family} ${client} ${server} ${socket.remotePort} ${socket.localPort}\r\n`;
}

/** RFC 5952 text form (the longest run of zero groups compressed), as Node writes addresses. */
function ipv6(bytes: Buffer): string {
  const groups: number[] = [];
  for (let index = 0; index < 16; index += 2) groups.push(bytes.readUInt16BE(index));

  // Find the longest run of two or more zero groups; the first one wins a tie.
  let bestStart = -1;
  let bestLength = 0;
  for (let start = 0; start < 8; start++) {
    let length = 0;
    while (start + length < 8 && groups[start + length] === 0) length++;
    if (length > bestLength && length >= 2) {
      bestStart = start;
      bestLength = length;
    }
  }
  const text = groups.map((group) => group.toString(16));
  if (bestStart === -1) return text.join(':');
  const head = text.slice(0, bestStart).join(':');
  const tail = text.slice(bestStart + bestLength).join(':');
  return `${head}::${tail}`;
}

/** A BlockList holding the configured proxy hosts (addresses or networks). */
export function proxyHostList(hosts: string[]): BlockList {
  const list = new BlockList();
  for (const entry of hosts) {
    const [address = '', bits] = entry.split('/');
    const family = isIP(address) === 6 ? 'ipv6' : 'ipv4';
    if (bits === undefined) list.addAddress(address, family);
    else list.addSubnet(address, Number(bits), family);
  }
  return list;
}

const installed = new WeakSet<object>();

/**
 * Puts the translation in front of Haraka's connection handler on each listener. Safe to call
 * more than once. Peers not in `proxyHosts` go straight to Haraka.
 */
export function installProxyV2Translation(listeners: unknown[], proxyHosts: string[]): void {
  if (proxyHosts.length === 0) return;
  const allowed = proxyHostList(proxyHosts);

  for (const candidate of listeners) {
    const server = candidate as Server;
    if (installed.has(server) || typeof server.listeners !== 'function') continue;
    installed.add(server);

    const harakaHandlers = server.listeners('connection') as Array<(socket: Socket) => void>;
    server.removeAllListeners('connection');
    server.on('connection', (socket: Socket) => {
      const handOver = (): void => {
        for (const handler of harakaHandlers) handler.call(server, socket);
      };
      const peer = (socket.remoteAddress ?? '').replace(/^::ffff:/, '');
      const family = isIP(peer) === 6 ? 'ipv6' : 'ipv4';
      if (!peer || !allowed.check(peer, family)) {
        handOver();
        return;
      }
      readFirstBytes(socket, handOver);
    });
  }
}

function readFirstBytes(socket: Socket, handOver: () => void): void {
  let buffered = Buffer.alloc(0);
  const timer = setTimeout(() => socket.destroy(), FIRST_BYTES_DEADLINE_MS);

  const done = (replacement: Buffer): void => {
    clearTimeout(timer);
    socket.removeListener('data', onData);
    socket.removeListener('error', onError);
    socket.pause();
    if (replacement.length) socket.unshift(replacement);
    handOver();
    socket.resume();
  };
  const onError = (): void => {
    clearTimeout(timer);
    socket.destroy();
  };
  const onData = (chunk: Buffer): void => {
    buffered = Buffer.concat([buffered, chunk]);
    const decoded = decodeProxyV2(buffered);
    switch (decoded.kind) {
      case 'incomplete':
        return;
      case 'not-v2':
        done(buffered);
        return;
      case 'invalid':
        clearTimeout(timer);
        socket.end('421 4.7.0 Invalid PROXY header\r\n');
        socket.destroy();
        return;
      case 'local': {
        const line = endpointsLine(socket);
        if (line === null) {
          onError();
          return;
        }
        done(Buffer.concat([Buffer.from(line, 'latin1'), buffered.subarray(decoded.consumed)]));
        return;
      }
      case 'header':
        done(Buffer.concat([
          Buffer.from(decoded.line, 'latin1'), buffered.subarray(decoded.consumed),
        ]));
    }
  };
  socket.on('data', onData);
  socket.on('error', onError);
}
