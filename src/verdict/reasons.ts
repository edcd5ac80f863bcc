/*
 * The stable reason codes behind every refusal and every verdict.
 *
 * A code names one cause and is never reused for another: operators alert on them, the
 * decision log carries them, and metrics label by them (the set is bounded because it is this
 * table). Each code has the SMTP reply it gives by default. Codes for single envelope commands
 * (relay denied, unknown user, address tricks) live with them in src/envelope/decision.ts and
 * src/envelope/address.ts; together these tables are the whole vocabulary (docs/reasons.md).
 *
 * To add a reason: add a row, document it in docs/reasons.md, never rename an existing one.
 */

export type Action = 'deliver' | 'tag' | 'quarantine' | 'reject' | 'tempfail';

export interface SmtpReply {
  code: number;
  /** RFC 3463 enhanced status code, e.g. 5.7.1. */
  enhanced: string;
  text: string;
}

export interface ReasonSpec {
  action: Action;
  reply: SmtpReply;
  meaning: string;
}

const reply = (code: number, enhanced: string, text: string): SmtpReply => ({ code, enhanced, text });

export const REASONS = {
  // A message or recipient that passed everything.
  'clean': { action: 'deliver', reply: reply(250, '2.0.0', 'Message accepted'),
    meaning: 'no check objected' },

  // Connection stage.
  'too-many-connections-from-ip': { action: 'tempfail',
    reply: reply(421, '4.7.0', 'Too many connections from your address, try again later'),
    meaning: 'the client address already holds smtp.max_connections_per_ip connections' },
  'too-many-connections': { action: 'tempfail',
    reply: reply(421, '4.3.2', 'Too many connections, try again later'),
    meaning: 'this process already holds smtp.max_connections connections' },
  'early-talker': { action: 'reject',
    reply: reply(554, '5.5.0', 'Protocol violation: you talked before my greeting'),
    meaning: 'the client sent commands before the greeting (pipelining is not allowed there)' },
  'slow-data': { action: 'tempfail',
    reply: reply(421, '4.4.2', 'Data arriving too slowly, closing connection'),
    meaning: 'DATA arrived below smtp.min_data_rate after the grace period' },
  'draining': { action: 'tempfail',
    reply: reply(421, '4.3.2', 'Service shutting down, try again later'),
    meaning: 'the gateway is stopping; the client should retry (another node)' },

  // Envelope stage.
  'too-many-recipients': { action: 'tempfail',
    reply: reply(452, '4.5.3', 'Too many recipients'),
    meaning: 'more than smtp.max_recipients; the client sends the rest in another transaction' },
  'size-declared-too-big': { action: 'reject',
    reply: reply(552, '5.3.4', 'Message size exceeds fixed maximum message size'),
    meaning: 'the SIZE= declared at MAIL is above smtp.max_message_size' },

  // Content stage.
  'size-exceeded': { action: 'reject',
    reply: reply(552, '5.3.4', 'Message size exceeds fixed maximum message size'),
    meaning: 'the message data was larger than smtp.max_message_size' },
  'bare-cr': { action: 'reject',
    reply: reply(554, '5.6.0', 'Message refused: bare CR in data (SMTP smuggling defence)'),
    meaning: 'a CR not followed by LF: servers disagree on such lines, so none are forwarded' },
  'bare-lf': { action: 'reject',
    reply: reply(554, '5.6.0', 'Message refused: bare LF in data (SMTP smuggling defence)'),
    meaning: 'a line ending in LF without CR' },
  'nul': { action: 'reject',
    reply: reply(554, '5.6.0', 'Message refused: NUL byte in data'),
    meaning: 'a NUL octet, which RFC 5322 forbids and parsers treat differently' },
  'line-too-long': { action: 'reject',
    reply: reply(554, '5.6.0', 'Message refused: line longer than 998 octets'),
    meaning: 'a line over smtp.max_data_line_length (RFC 5322 2.1.1)' },
  'too-many-headers': { action: 'reject',
    reply: reply(554, '5.6.0', 'Message refused: too many header lines'),
    meaning: 'more header lines than smtp.max_header_lines' },
  'no-valid-recipients': { action: 'reject',
    reply: reply(554, '5.5.1', 'No valid recipients'),
    meaning: 'DATA without an accepted recipient' },

  // Delivery to the internal server.
  'downstream-accepted': { action: 'deliver', reply: reply(250, '2.0.0', 'Message accepted'),
    meaning: 'the internal server answered 250 for every recipient' },
  'downstream-partial': { action: 'deliver', reply: reply(250, '2.0.0', 'Message accepted'),
    meaning: 'the internal server took some recipients; the others are handled as documented' },
  'downstream-tempfail': { action: 'tempfail',
    reply: reply(451, '4.4.1', 'Internal server unavailable, try again later'),
    meaning: 'the internal server was down, slow, or answered 4xx' },
  'downstream-rejected': { action: 'reject',
    reply: reply(550, '5.0.0', 'Refused by the internal server'),
    meaning: 'the internal server answered 5xx; its text is passed on, made safe' },

  // Moat itself.
  'internal-error': { action: 'tempfail',
    reply: reply(451, '4.3.0', 'Internal error, try again later'),
    meaning: 'a check failed unexpectedly; the message was not accepted, the error is logged' },
} as const satisfies Record<string, ReasonSpec>;

export type ReasonCode = keyof typeof REASONS;

export function reasonReply(reason: ReasonCode): SmtpReply {
  return { ...REASONS[reason].reply };
}
