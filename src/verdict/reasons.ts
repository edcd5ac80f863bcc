/*
 * The stable reason codes behind every refusal and every verdict.
 *
 * A code names one cause and is never reused for another: operators alert on them, the
 * decision log carries them, and metrics label by them (the set is bounded because it is this
 * table). Each code has the SMTP reply it gives by default. Address-syntax codes come from
 * src/envelope/address.ts and are mapped to `address.*` here.
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
  'connection.too_many_from_ip': { action: 'tempfail',
    reply: reply(421, '4.7.0', 'Too many connections from your address, try again later'),
    meaning: 'the client address already holds smtp.max_connections_per_ip connections' },
  'connection.too_many': { action: 'tempfail',
    reply: reply(421, '4.3.2', 'Too many connections, try again later'),
    meaning: 'this process already holds smtp.max_connections connections' },
  'connection.early_talker': { action: 'reject',
    reply: reply(554, '5.5.0', 'Protocol violation: you talked before my greeting'),
    meaning: 'the client sent commands before the greeting (pipelining is not allowed there)' },
  'connection.slow_data': { action: 'tempfail',
    reply: reply(421, '4.4.2', 'Data arriving too slowly, closing connection'),
    meaning: 'DATA arrived below smtp.min_data_rate after the grace period' },
  'connection.draining': { action: 'tempfail',
    reply: reply(421, '4.3.2', 'Service shutting down, try again later'),
    meaning: 'the gateway is stopping; the client should retry (another node)' },

  // Envelope stage.
  'relay.denied': { action: 'reject', reply: reply(550, '5.7.1', 'Relay access denied'),
    meaning: 'the recipient domain is not one of domains.accepted' },
  'address.invalid': { action: 'reject', reply: reply(501, '5.1.3', 'Bad address syntax'),
    meaning: 'the address does not parse as an RFC 5321 mailbox' },
  'address.relay_trick': { action: 'reject',
    reply: reply(550, '5.7.1', 'Relay access denied: address form not accepted'),
    meaning: 'percent hack, bang path, source route, quoted @, or address literal' },
  'recipient.unknown': { action: 'reject',
    reply: reply(550, '5.1.1', 'Recipient address rejected: user unknown'),
    meaning: 'not in the recipient list, or the internal server does not know the mailbox' },
  'recipient.verify_unavailable': { action: 'tempfail',
    reply: reply(450, '4.4.3', 'Recipient verification unavailable, try again later'),
    meaning: 'the internal server could not be asked whether the mailbox exists' },
  'recipient.tempfail': { action: 'tempfail',
    reply: reply(450, '4.2.0', 'Recipient temporarily refused, try again later'),
    meaning: 'the internal server refused the recipient temporarily at verification' },
  'recipients.too_many': { action: 'tempfail',
    reply: reply(452, '4.5.3', 'Too many recipients'),
    meaning: 'more than smtp.max_recipients; the client sends the rest in another transaction' },
  'sender.invalid': { action: 'reject', reply: reply(553, '5.1.7', 'Bad sender address syntax'),
    meaning: 'MAIL FROM does not parse as an RFC 5321 path' },
  'size.declared_too_big': { action: 'reject',
    reply: reply(552, '5.3.4', 'Message size exceeds fixed maximum message size'),
    meaning: 'the SIZE= declared at MAIL is above smtp.max_message_size' },

  // Content stage.
  'size.exceeded': { action: 'reject',
    reply: reply(552, '5.3.4', 'Message size exceeds fixed maximum message size'),
    meaning: 'the message data was larger than smtp.max_message_size' },
  'data.bare_cr': { action: 'reject',
    reply: reply(554, '5.6.0', 'Message refused: bare CR in data (SMTP smuggling defence)'),
    meaning: 'a CR not followed by LF: servers disagree on such lines, so none are forwarded' },
  'data.bare_lf': { action: 'reject',
    reply: reply(554, '5.6.0', 'Message refused: bare LF in data (SMTP smuggling defence)'),
    meaning: 'a line ending in LF without CR' },
  'data.nul': { action: 'reject',
    reply: reply(554, '5.6.0', 'Message refused: NUL byte in data'),
    meaning: 'a NUL octet, which RFC 5322 forbids and parsers treat differently' },
  'data.line_too_long': { action: 'reject',
    reply: reply(554, '5.6.0', 'Message refused: line longer than 998 octets'),
    meaning: 'a line over smtp.max_data_line_length (RFC 5322 2.1.1)' },
  'data.too_many_headers': { action: 'reject',
    reply: reply(554, '5.6.0', 'Message refused: too many header lines'),
    meaning: 'more header lines than smtp.max_header_lines' },
  'data.no_valid_recipients': { action: 'reject',
    reply: reply(554, '5.5.1', 'No valid recipients'),
    meaning: 'DATA without an accepted recipient' },

  // Delivery to the internal server.
  'downstream.accepted': { action: 'deliver', reply: reply(250, '2.0.0', 'Message accepted'),
    meaning: 'the internal server answered 250 for every recipient' },
  'downstream.partial': { action: 'deliver', reply: reply(250, '2.0.0', 'Message accepted'),
    meaning: 'the internal server took some recipients; the others are handled as documented' },
  'downstream.tempfail': { action: 'tempfail',
    reply: reply(451, '4.4.1', 'Internal server unavailable, try again later'),
    meaning: 'the internal server was down, slow, or answered 4xx' },
  'downstream.rejected': { action: 'reject',
    reply: reply(550, '5.0.0', 'Refused by the internal server'),
    meaning: 'the internal server answered 5xx; its text is passed on, made safe' },

  // Moat itself.
  'internal.error': { action: 'tempfail',
    reply: reply(451, '4.3.0', 'Internal error, try again later'),
    meaning: 'a check failed unexpectedly; the message was not accepted, the error is logged' },
} as const satisfies Record<string, ReasonSpec>;

export type ReasonCode = keyof typeof REASONS;

export function reasonReply(reason: ReasonCode): SmtpReply {
  return { ...REASONS[reason].reply };
}
