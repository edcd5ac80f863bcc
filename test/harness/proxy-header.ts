/*
 * PROXY protocol headers (HAProxy's PROXY protocol, versions 1 and 2) for tests that present
 * a chosen client address to Moat, as a load balancer in front of it would.
 *
 * Version 1 is one text line; version 2 is a binary header: a 12-byte signature, the version
 * and command, the address family, the length, the addresses and ports, optional TLVs.
 */

import { isIPv4, isIPv6 } from 'node:net';

export interface ProxyAddresses {
  sourceAddress: string;
  sourcePort: number;
  destinationAddress: string;
  destinationPort: number;
}

export interface ProxyV2Options extends Partial<ProxyAddresses> {
  /** LOCAL: a health check from the proxy itself, no addresses. Default PROXY. */
  command?: 'PROXY' | 'LOCAL';
  /** Extra type-length-value entries appended after the addresses. */
  tlvs?: Array<{ type: number; value: Buffer }>;
}

const V2_SIGNATURE = Buffer.from([
  0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
]);

/** `PROXY TCP4 <src> <dst> <sport> <dport>\r\n` (TCP6 for IPv6 addresses). */
export function proxyV1Header(addresses: ProxyAddresses): string {
  const family = isIPv6(addresses.sourceAddress) ? 'TCP6' : 'TCP4';
  const { sourceAddress, destinationAddress, sourcePort, destinationPort } = addresses;
  const ports = `${sourcePort} ${destinationPort}`;
  return `PROXY ${family} ${sourceAddress} ${destinationAddress} ${ports}\r\n`;
}

function ipv6Bytes(address: string): Buffer {
  const [head = '', tail = ''] = address.split('::');
  const headGroups = head ? head.split(':') : [];
  const tailGroups = address.includes('::') && tail ? tail.split(':') : [];
  const zeroCount = address.includes('::') ? 8 - headGroups.length - tailGroups.length : 0;
  const groups = [...headGroups, ...Array<string>(zeroCount).fill('0'), ...tailGroups];
  const bytes = Buffer.alloc(16);
  groups.forEach((group, index) => bytes.writeUInt16BE(parseInt(group, 16), index * 2));
  return bytes;
}

/** The binary version 2 header. */
export function proxyV2Header(options: ProxyV2Options): Buffer {
  const command = options.command ?? 'PROXY';
  const tlvs = Buffer.concat(
    (options.tlvs ?? []).map(({ type, value }) => {
      const head = Buffer.alloc(3);
      head.writeUInt8(type, 0);
      head.writeUInt16BE(value.length, 1);
      return Buffer.concat([head, value]);
    }),
  );

  // Addresses: none for LOCAL, else IPv4 (12 bytes) or IPv6 (36 bytes), TCP over either.
  let familyByte = 0x00;
  let addressBlock = Buffer.alloc(0);
  if (command === 'PROXY') {
    const source = options.sourceAddress ?? '';
    const destination = options.destinationAddress ?? '';
    const ports = Buffer.alloc(4);
    ports.writeUInt16BE(options.sourcePort ?? 0, 0);
    ports.writeUInt16BE(options.destinationPort ?? 0, 2);
    if (isIPv4(source) && isIPv4(destination)) {
      familyByte = 0x11;
      const octets = [...source.split('.'), ...destination.split('.')].map(Number);
      addressBlock = Buffer.concat([Buffer.from(octets), ports]);
    } else if (isIPv6(source) && isIPv6(destination)) {
      familyByte = 0x21;
      addressBlock = Buffer.concat([ipv6Bytes(source), ipv6Bytes(destination), ports]);
    } else {
      const pair = `${source} ${destination}`;
      throw new TypeError(`PROXY v2 needs two IPv4 or two IPv6 addresses: ${pair}`);
    }
  }

  const fixed = Buffer.alloc(4);
  fixed.writeUInt8(command === 'PROXY' ? 0x21 : 0x20, 0); // version 2, command
  fixed.writeUInt8(familyByte, 1);
  fixed.writeUInt16BE(addressBlock.length + tlvs.length, 2);
  return Buffer.concat([V2_SIGNATURE, fixed, addressBlock, tlvs]);
}
