/*
 * The parts of the `dns-packet` package (5.x) that Moat uses: the resolver (src/dns) and the
 * test DNS server (test/harness/dns.ts). The package ships no type declarations and
 * @types/dns-packet is not installed. Decoded packets carry `rcode` as a name (NOERROR,
 * NXDOMAIN ...) and the header flags as booleans (`flag_tc` for truncation).
 */

declare module 'dns-packet' {
  export interface Question {
    name: string;
    type: string;
    class?: string;
  }

  export interface Answer {
    name: string;
    type: string;
    class?: string;
    ttl?: number;
    data?: unknown;
    udpPayloadSize?: number;
  }

  export interface Packet {
    type?: 'query' | 'response';
    id?: number;
    flags?: number;
    opcode?: string;
    rcode?: string;
    flag_rd?: boolean;
    flag_tc?: boolean;
    flag_qr?: boolean;
    questions?: Question[];
    answers?: Answer[];
    authorities?: Answer[];
    additionals?: Answer[];
  }

  export const AUTHORITATIVE_ANSWER: number;
  export const TRUNCATED_RESPONSE: number;
  export const RECURSION_DESIRED: number;
  export function encode(packet: Packet): Buffer;
  export function decode(message: Buffer): Packet;
}
