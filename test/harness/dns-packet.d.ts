/*
 * The parts of the `dns-packet` package (5.x) that test/harness/dns.ts uses. The package ships
 * no type declarations and @types/dns-packet is not installed.
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
