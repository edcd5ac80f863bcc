/*
 * One DNS question to one server, over UDP, and over TCP when the UDP answer is truncated.
 *
 * Each UDP exchange uses a fresh socket (a new random source port) and a random query id; an
 * answer is taken only if its id and question match ours, so a stray or spoofed datagram is
 * ignored rather than believed. The socket is connected, so an ICMP "port unreachable" ends the
 * wait at once with ECONNREFUSED instead of a timeout.
 *
 * LIMITATION: no DNSSEC validation and no 0x20 case randomisation; Moat trusts the configured
 * resolver (a local caching resolver on a trusted network, as the operations guide says).
 */

import { randomInt } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { connect, isIPv6 } from 'node:net';

import * as dnsPacket from 'dns-packet';

import { DnsExchangeError } from './errors';

export interface DnsServerAddress {
  host: string;
  port: number;
}

/** Our advertised EDNS buffer: the size the DNS flag day 2020 settled on. */
const EDNS_UDP_SIZE = 1232;

export function describeServer(server: DnsServerAddress): string {
  return isIPv6(server.host) ? `[${server.host}]:${server.port}` : `${server.host}:${server.port}`;
}

/** Asks server for name/rrtype; resolves with the decoded answer, whatever its rcode. */
export async function exchange(
  server: DnsServerAddress, name: string, rrtype: string, timeoutMs: number,
): Promise<dnsPacket.Packet> {
  const id = randomInt(0, 65536);
  const query = dnsPacket.encode({
    type: 'query', id, flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ name, type: rrtype, class: 'IN' }],
    additionals: [{ name: '.', type: 'OPT', udpPayloadSize: EDNS_UDP_SIZE }],
  });

  const answer = await exchangeUdp(server, query, id, name, rrtype, timeoutMs);
  if (!answer.flag_tc) return answer;
  return exchangeTcp(server, query, id, name, rrtype, timeoutMs);
}

function matches(packet: dnsPacket.Packet, id: number, name: string, rrtype: string): boolean {
  const question = packet.questions?.[0];
  return packet.type === 'response' && packet.id === id && question !== undefined
    && question.type === rrtype && question.name.toLowerCase() === name.toLowerCase();
}

function exchangeUdp(
  server: DnsServerAddress, query: Buffer, id: number, name: string, rrtype: string,
  timeoutMs: number,
): Promise<dnsPacket.Packet> {
  const where = describeServer(server);
  const socket = createSocket(isIPv6(server.host) ? 'udp6' : 'udp4');

  return new Promise<dnsPacket.Packet>((resolve, reject) => {
    const finish = (error: Error | null, packet?: dnsPacket.Packet): void => {
      clearTimeout(timer);
      socket.removeAllListeners('message');
      socket.on('error', () => undefined);
      try {
        socket.close();
      } catch {
        // Already closed: nothing to release.
      }
      if (error) reject(error);
      else resolve(packet as dnsPacket.Packet);
    };
    const timer = setTimeout(() => {
      finish(new DnsExchangeError('ETIMEOUT', where, `no UDP answer within ${timeoutMs} ms`));
    }, timeoutMs);

    socket.on('error', (error: NodeJS.ErrnoException) => {
      const code = error.code === 'ECONNREFUSED' ? 'ECONNREFUSED' : 'EBADRESP';
      finish(new DnsExchangeError(code, where, `UDP socket error ${error.code ?? ''}`,
        { cause: error }));
    });
    socket.on('message', (message: Buffer) => {
      let packet: dnsPacket.Packet;
      try {
        packet = dnsPacket.decode(message);
      } catch {
        return; // Not a DNS message: keep waiting for the real answer.
      }
      if (matches(packet, id, name, rrtype)) finish(null, packet);
    });
    socket.connect(server.port, server.host, () => socket.send(query));
  });
}

function exchangeTcp(
  server: DnsServerAddress, query: Buffer, id: number, name: string, rrtype: string,
  timeoutMs: number,
): Promise<dnsPacket.Packet> {
  const where = describeServer(server);
  const socket = connect({ host: server.host, port: server.port });
  const prefix = Buffer.alloc(2);
  prefix.writeUInt16BE(query.length, 0);

  return new Promise<dnsPacket.Packet>((resolve, reject) => {
    let received = Buffer.alloc(0);
    const finish = (error: Error | null, packet?: dnsPacket.Packet): void => {
      clearTimeout(timer);
      socket.destroy();
      if (error) reject(error);
      else resolve(packet as dnsPacket.Packet);
    };
    const timer = setTimeout(() => {
      finish(new DnsExchangeError('ETIMEOUT', where, `no TCP answer within ${timeoutMs} ms`));
    }, timeoutMs);

    socket.on('connect', () => socket.write(Buffer.concat([prefix, query])));
    socket.on('error', (error: NodeJS.ErrnoException) => {
      const code = error.code === 'ECONNREFUSED' ? 'ECONNREFUSED' : 'EBADRESP';
      finish(new DnsExchangeError(code, where, `TCP error ${error.code ?? ''}`, { cause: error }));
    });
    socket.on('end', () => {
      finish(new DnsExchangeError('EBADRESP', where, 'TCP connection closed before the answer'));
    });
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      if (received.length < 2) return;
      const length = received.readUInt16BE(0);
      if (received.length < 2 + length) return;
      let packet: dnsPacket.Packet;
      try {
        packet = dnsPacket.decode(received.subarray(2, 2 + length));
      } catch (error) {
        finish(new DnsExchangeError('EBADRESP', where, 'undecodable TCP answer', { cause: error }));
        return;
      }
      if (!matches(packet, id, name, rrtype)) {
        finish(new DnsExchangeError('EBADRESP', where, 'TCP answer for another question'));
        return;
      }
      finish(null, packet);
    });
  });
}
