/*
 * The parts of Haraka 3.3.4's connection and transaction objects Moat uses, typed.
 *
 * Haraka ships no types. These interfaces list only what the plugins touch, so the compiler
 * catches a misspelt field, and a Haraka upgrade has one place to check.
 */

import type { Readable } from 'node:stream';

export interface HarakaAddress {
  user: string | null;
  host: string | null;
  address(): string;
  format(): string;
}

export interface HarakaMessageStream {
  pipe(destination: NodeJS.WritableStream, options?: Record<string, unknown>): void;
}

export interface HarakaHeader {
  get(name: string): string;
  get_all(name: string): string[];
}

export interface HarakaTransaction {
  uuid: string;
  mail_from: HarakaAddress | null;
  rcpt_to: HarakaAddress[];
  data_bytes: number;
  header: HarakaHeader;
  header_lines: string[];
  message_stream: HarakaMessageStream;
  notes: Record<string, unknown> & { moat?: unknown; data_line_length_exceeded?: boolean };
  add_data(line: Buffer): void;
  add_header(name: string, value: string): void;
  add_leading_header(name: string, value: string): void;
  remove_header(name: string): void;
}

export interface HarakaConnection {
  uuid: string;
  remote: { ip: string; port: number; host?: string; is_private?: boolean };
  local: { ip: string; port: number; host: string };
  proxy: { allowed: boolean; ip?: string | null; type?: string | null };
  hello: { verb: string | null; host: string | null };
  tls: { enabled: boolean };
  transaction: HarakaTransaction | null;
  notes: Record<string, unknown> & { moat?: unknown };
  current_line: string | null;
  early_talker: boolean;
  state: number;
  client: { destroy(): void; pause(): void; resume(): void; remoteAddress?: string };
  respond(code: number, message: string | string[], callback?: () => void): void;
  disconnect(): void;
  loginfo(...args: unknown[]): void;
}

export function describeConnection(connection: HarakaConnection): Record<string, unknown> {
  return {
    id: connection.uuid,
    ip: connection.remote?.ip,
    port: connection.remote?.port,
    helo: connection.hello?.host ?? undefined,
  };
}

export type { Readable };
