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

import { MIME_PROBLEMS, type MimeProblemCode } from '../scan/mime/problems';

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

const reply = (code: number, enhanced: string, text: string): SmtpReply => ({
  code, enhanced, text,
});

/** Each MIME structure problem (src/scan/mime/problems.ts) refuses with 554 5.6.0 naming it. */
const MIME_REASONS = Object.fromEntries(Object.entries(MIME_PROBLEMS).map(([code, meaning]) => [
  code, { action: 'reject' as const, meaning: `${meaning} (scan.mime_strictness = strict)`,
    reply: reply(554, '5.6.0', `Message refused: ambiguous or malformed MIME (${code})`) },
])) as Record<MimeProblemCode, ReasonSpec>;

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

  // Reputation (DNS blocklists), at connect or at each RCPT (reputation.refuse_at).
  'dnsbl-listed': { action: 'reject',
    reply: reply(554, '5.7.1', 'Service refused: your address is on a blocklist'),
    meaning: 'the client address is listed by DNS blocklists whose weights reach '
      + 'reputation.threshold; the reply names the lists' },

  // Rate limits ([ratelimit] in config/moat.ini; the reply names the limit, window and retry
  // time, and its code is the limit's configured answer, 421 or 451).
  'ratelimit-concurrent-connections-per-ip': { action: 'tempfail',
    reply: reply(421, '4.7.0', 'Too many open connections from your address, try again later'),
    meaning: 'the client address holds ratelimit.concurrent_connections_per_ip connections '
      + 'across all nodes' },
  'ratelimit-connections-per-ip': { action: 'tempfail',
    reply: reply(421, '4.7.0', 'Too many connections from your address, try again later'),
    meaning: 'the client address opened ratelimit.connections_per_ip connections in the window' },
  'ratelimit-messages-per-ip': { action: 'tempfail',
    reply: reply(451, '4.7.0', 'Too many messages from your address, try again later'),
    meaning: 'the client address started ratelimit.messages_per_ip messages in the window' },
  'ratelimit-messages-per-sender': { action: 'tempfail',
    reply: reply(451, '4.7.0', 'Too many messages from this sender, try again later'),
    meaning: 'the envelope sender started ratelimit.messages_per_sender messages in the window' },
  'ratelimit-messages-per-sender-domain': { action: 'tempfail',
    reply: reply(451, '4.7.0', "Too many messages from this sender's domain, try again later"),
    meaning: "the sender's domain started ratelimit.messages_per_sender_domain messages "
      + 'in the window' },
  'ratelimit-recipients-per-message': { action: 'tempfail',
    reply: reply(451, '4.5.3', 'Too many recipients in this message, try again later'),
    meaning: 'the message already has ratelimit.recipients_per_message recipients' },
  'ratelimit-recipients-per-sender': { action: 'tempfail',
    reply: reply(451, '4.5.3', 'Too many recipients from this sender, try again later'),
    meaning: 'the envelope sender addressed ratelimit.recipients_per_sender recipients '
      + 'in the window' },
  'ratelimit-messages-per-recipient': { action: 'tempfail',
    reply: reply(451, '4.7.0', 'Too many messages for this recipient, try again later'),
    meaning: 'the recipient received ratelimit.messages_per_recipient messages in the window '
      + '(a mailbox being bombed)' },

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

  // Sender authentication (SPF, DKIM, DMARC, ARC, From).
  'spf-fail': { action: 'reject',
    reply: reply(550, '5.7.23', 'SPF check failed: sender domain does not authorise your address'),
    meaning: 'SPF fail for MAIL FROM (HELO for the null sender), auth.spf_fail_action = reject' },
  'dmarc-reject': { action: 'reject',
    reply: reply(550, '5.7.1', 'Message refused: DMARC policy rejects unauthenticated mail'),
    meaning: 'DMARC fail under p=reject (or sp=); the reply names the From domain' },
  'dmarc-quarantine': { action: 'quarantine',
    reply: reply(250, '2.0.0', 'Message accepted'),
    meaning: 'DMARC fail under p=quarantine, with auth.dmarc_quarantine_action = quarantine' },
  'dmarc-arc-override': { action: 'deliver',
    reply: reply(250, '2.0.0', 'Message accepted'),
    meaning: 'DMARC failed, but a valid ARC chain sealed last by a trusted sealer vouches for it' },
  'dmarc-exempt': { action: 'deliver',
    reply: reply(250, '2.0.0', 'Message accepted'),
    meaning: 'DMARC failed for a From domain or client network listed as a local exception' },
  'auth-tagged': { action: 'tag',
    reply: reply(250, '2.0.0', 'Message accepted'),
    meaning: 'an auth check failed where the policy is tag: delivered with an X-Moat-Auth header' },
  'auth-temperror': { action: 'tempfail',
    reply: reply(451, '4.4.3', 'Sender authentication lookups failed, try again later'),
    meaning: 'DNS failures left DMARC undecided and auth.temperror_action is tempfail' },
  'from-missing': { action: 'reject',
    reply: reply(550, '5.7.1', 'Message refused: no From header naming the author'),
    meaning: 'no From header field, or one without a mailbox (RFC 7489 6.6.1)' },
  'from-several-fields': { action: 'reject',
    reply: reply(550, '5.7.1', 'Message refused: more than one From header'),
    meaning: 'several From header fields: readers may show another author than the one checked' },
  'from-several-mailboxes': { action: 'reject',
    reply: reply(550, '5.7.1', 'Message refused: more than one address in From'),
    meaning: 'a From header with several mailboxes: DMARC cannot judge one author' },
  'from-unparseable': { action: 'reject',
    reply: reply(550, '5.7.1', 'Message refused: From header does not parse'),
    meaning: 'a From header Moat cannot parse, or that parsers read differently' },

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

  // Malware and spam scanning (src/scan, plugins/scan.ts). A reject naming a signature
  // replaces the default text with one that names it.
  'malware-found': { action: 'reject',
    reply: reply(554, '5.7.0', 'Message refused: malware found'),
    meaning: 'clamd found a signature in the message or in a decoded attachment (clamd.action)' },
  'malware-quarantined': { action: 'quarantine', reply: reply(250, '2.0.0', 'Message accepted'),
    meaning: 'clamd found a signature and clamd.action = quarantine' },
  'scan-limit-exceeded': { action: 'reject',
    reply: reply(554, '5.7.0', 'Message refused: content could not be scanned completely'),
    meaning: 'clamd reported Heuristics.* (scan limits exceeded, encrypted archive...), '
      + 'clamd.heuristics_action = reject' },
  'scan-limit-quarantined': { action: 'quarantine',
    reply: reply(250, '2.0.0', 'Message accepted'),
    meaning: 'clamd reported Heuristics.* and clamd.heuristics_action = quarantine' },
  'scanner-size-exceeded': { action: 'reject',
    reply: reply(552, '5.3.4', 'Message larger than the virus scanner accepts'),
    meaning: 'the message is larger than clamd.stream_max_length (clamd StreamMaxLength)' },
  'clamd-unavailable': { action: 'tempfail',
    reply: reply(451, '4.7.1', 'Virus scanner unavailable, try again later'),
    meaning: 'no clamd gave a verdict before clamd.timeout (down, hanging or garbled answer)' },
  'spamd-unavailable': { action: 'tempfail',
    reply: reply(451, '4.7.1', 'Spam scanner unavailable, try again later'),
    meaning: 'no spamd gave a verdict before spamd.timeout and spamd.on_failure = tempfail' },
  'spam-rejected': { action: 'reject',
    reply: reply(550, '5.7.1', 'Message refused as spam'),
    meaning: 'the spam score reached spamd.reject_score (or the domain\'s spam_reject_score)' },
  'spam-quarantined': { action: 'quarantine', reply: reply(250, '2.0.0', 'Message accepted'),
    meaning: 'the spam score reached spamd.quarantine_score' },
  'spam-tagged': { action: 'tag', reply: reply(250, '2.0.0', 'Message accepted'),
    meaning: 'the spam score reached spamd.tag_score: X-Spam-* headers were added' },
  ...MIME_REASONS,

  // Quarantine.
  'quarantine-store-failed': { action: 'tempfail',
    reply: reply(451, '4.3.0', 'Temporary local problem, try again later'),
    meaning: 'the verdict was quarantine but the message could not be written and fsynced' },

  // Content-control rules (rules/*.yaml, docs/rules.md). A rule may give its own reply text.
  'rule-reject': { action: 'reject',
    reply: reply(550, '5.7.1', 'Message refused by policy'),
    meaning: 'an enforce rule with a reject action matched; the decision line names the rule' },
  'rule-tempfail': { action: 'tempfail',
    reply: reply(451, '4.7.1', 'Message deferred by policy, try again later'),
    meaning: 'an enforce rule with a tempfail action matched' },
  'rule-quarantine': { action: 'quarantine',
    reply: reply(250, '2.0.0', 'Message accepted'),
    meaning: 'an enforce rule with a quarantine action matched: held, not delivered to the '
      + 'mailbox' },
  'rule-tag': { action: 'tag',
    reply: reply(250, '2.0.0', 'Message accepted'),
    meaning: 'an enforce rule tagged the subject of the delivered copy' },

  // Moat itself.
  'internal-error': { action: 'tempfail',
    reply: reply(451, '4.3.0', 'Internal error, try again later'),
    meaning: 'a check failed unexpectedly; the message was not accepted, the error is logged' },
} as const satisfies Record<string, ReasonSpec>;

export type ReasonCode = keyof typeof REASONS;

export function reasonReply(reason: ReasonCode): SmtpReply {
  return { ...REASONS[reason].reply };
}
