/*
 * Forwards an accepted message to the downstream (internal) mail server and says what happened,
 * per recipient, so the queue plugin can answer the internet client truthfully: 250 only after
 * the downstream said 250.
 *
 * Decisions (the reply Moat should give):
 *   downstream unreachable, no greeting within the connect deadline, EHLO refused or stuck,
 *   TLS required but unavailable                                        -> tempfail 451 4.4.1
 *   MAIL refused                         -> its class: 4xx tempfail, 5xx rejected
 *   some RCPT refused with 4xx           -> RSET, no DATA: tempfail for all with that 4xx reply,
 *                                           so the client retries every recipient later
 *   some RCPT refused, all with 5xx      -> message goes to the others; partial, and the
 *                                           refused ones carry their 5xx reply
 *   every RCPT refused                   -> tempfail if any was 4xx, else rejected
 *   final dot 2xx / 4xx / 5xx            -> delivered (partial if some RCPT refused) / tempfail
 *                                           / rejected
 *   connection lost or deadline in the transaction, incl. the final dot -> tempfail 451 4.4.2
 *   our own fault (bad message bytes, unreadable message)               -> tempfail 451 4.3.0
 * A downstream 421 is relayed as 451: 421 would tell the client we are closing its session.
 *
 * Needs: the downstream from DownstreamConfig.address (see pool.ts and smtp-client.ts).
 *
 * LIMITATION: after DATA an SMTP client gets one reply for every recipient, so a recipient
 * refused permanently at delivery time (partial) is not told to the sender: Moat sends no DSN.
 * The caller logs and counts each one; `recipients = verify` refuses them at RCPT instead. And
 * a recipient the downstream keeps deferring holds back the others of the same message until
 * it is taken or the sender gives up (the sender then bounces all of them: nothing is lost
 * silently).
 *
 * LIMITATION: when the final-dot deadline (dataTimeoutMs) passes, Moat destroys the socket and
 * answers 4xx. A compliant downstream discards a message whose final reply it could not send,
 * but one that had already committed the message and was just slow to say 250 has delivered
 * it, and the client's retry becomes a duplicate. This window is inherent to SMTP (RFC 1047);
 * keep dataTimeoutMs well above the downstream's worst commit time and below the client's.
 */
import type { Readable } from 'node:stream';

import type { DownstreamConfig, HostPort } from '../config/types';
import { DeliveryConfigError, DownstreamError, MessageInputError } from './errors';
import { ConnectionPool } from './pool';
import { replyClass, safeReplyText, type SmtpReply } from './reply';
import type { EnvelopeReplies, SmtpClient } from './smtp-client';
import type {
  Delivery,
  DeliveryEnvelope,
  DeliveryObserver,
  DeliveryOutcome,
  DeliveryResult,
  MessageSource,
  RecipientResult,
} from './types';

export interface ForwarderOptions {
  observer?: DeliveryObserver;
}

export interface VerifyResult {
  result: 'accept' | 'reject' | 'tempfail';
  code: number;
  enhanced: string;
  text: string;
}

interface Answer {
  code: number;
  enhanced: string;
  text: string;
}

const UNREACHABLE: Answer = {
  code: 451, enhanced: '4.4.1', text: 'Internal mail server unavailable, try again later',
};
const CONNECTION_LOST: Answer = {
  code: 451, enhanced: '4.4.2', text: 'Connection to internal mail server lost, try again later',
};
const OWN_FAULT: Answer = {
  code: 451, enhanced: '4.3.0', text: 'Temporary local problem, try again later',
};
const VERIFY_UNAVAILABLE: Answer = {
  code: 451, enhanced: '4.4.3', text: 'Recipient check unavailable, try again later',
};

/** Longest envelope address we pass on; RFC 5321 allows 256 octets for a path. */
const MAX_ADDRESS_LENGTH = 512;

interface Transaction {
  client: SmtpClient;
  replies: EnvelopeReplies;
}

export class Forwarder implements Delivery {
  private readonly pool: ConnectionPool;
  private readonly downstream: string;
  private readonly observer: DeliveryObserver;

  constructor(config: DownstreamConfig, options: ForwarderOptions = {}) {
    if (config.address === null) {
      throw new DeliveryConfigError('downstream.address', 'required by the SMTP forwarder');
    }
    const address: HostPort = config.address;
    this.downstream = `${address.host}:${address.port}`;
    this.observer = options.observer ?? (() => undefined);
    this.pool = new ConnectionPool(config, address, (event, outcome, seconds) =>
      this.notify(event, outcome, seconds));
  }

  async deliver(
    envelope: DeliveryEnvelope,
    openMessage: MessageSource,
    sizeBytes: number,
  ): Promise<DeliveryResult> {
    const started = performance.now();
    const result = await this.forward(envelope, openMessage, sizeBytes, started);
    this.notify('deliver', result.outcome, result.durationMs / 1000);
    return result;
  }

  /** RCPT-time check of one address against the downstream (MAIL FROM:<>, RCPT TO, RSET). */
  async verifyRecipient(address: string): Promise<VerifyResult> {
    const started = performance.now();
    const verdict = await this.verify(address);
    this.notify('verify', verdict.result, (performance.now() - started) / 1000);
    return verdict;
  }

  /** Readiness: can we open a session (connect, greeting, EHLO, STARTTLS as configured)? */
  async probe(): Promise<{ ok: boolean; detail: string }> {
    try {
      const client = await this.pool.openFresh();
      const detail = `${this.downstream} answered EHLO${client.tls ? ' over TLS' : ''}`;
      await client.quit();
      return { ok: true, detail };
    } catch (error) {
      return { ok: false, detail: describe(error) };
    }
  }

  /** QUITs idle connections. Deliveries in flight finish on their own connections. */
  async close(): Promise<void> {
    await this.pool.close();
  }

  private async forward(
    envelope: DeliveryEnvelope,
    openMessage: MessageSource,
    sizeBytes: number,
    started: number,
  ): Promise<DeliveryResult> {
    const finish = (outcome: DeliveryOutcome, answer: Answer, recipients: RecipientResult[],
      tls: boolean, detail: string): DeliveryResult => ({
      outcome, ...answer, recipients, tls, detail,
      durationMs: Math.round(performance.now() - started), downstream: this.downstream,
    });
    const everyone = (answer: Answer): RecipientResult[] =>
      envelope.recipients.map((recipient) => ({ recipient, ...answer, accepted: false }));

    const unsafe = findUnsafeAddress([envelope.sender, ...envelope.recipients]);
    if (unsafe !== null || envelope.recipients.length === 0) {
      const detail = unsafe ?? 'no recipients';
      return finish('tempfail', OWN_FAULT, everyone(OWN_FAULT), false, detail);
    }

    // Envelope: MAIL and RCPTs, on a pooled connection (one retry if it had gone stale).
    let transaction: Transaction;
    try {
      transaction = await this.openTransaction(envelope.sender, envelope.recipients, sizeBytes);
    } catch (error) {
      const answer = answerForFailure(error);
      return finish('tempfail', answer, everyone(answer), false, describe(error));
    }
    const { client, replies } = transaction;
    const tls = client.tls;

    if (replyClass(replies.mail.code) !== 2) {
      this.pool.release(client, true);
      const answer = relayable(replies.mail);
      return finish(classOutcome(replies.mail.code), answer, everyone(answer), tls,
        `MAIL refused: ${replies.mail.code} ${replies.mail.text}`);
    }
    const rcptReplies = envelope.recipients.map((recipient, index) => {
      const reply = replies.rcpts[index];
      return { recipient, reply: reply ?? null };
    });
    const accepted = rcptReplies.filter(({ reply }) => reply && replyClass(reply.code) === 2);
    const refused = rcptReplies.filter(({ reply }) => !reply || replyClass(reply.code) !== 2);
    const refusedResults = refused.map(({ recipient, reply }): RecipientResult => ({
      recipient, ...(reply ? relayable(reply) : CONNECTION_LOST), accepted: false,
    }));

    const firstTemporary = refusedResults.find(({ code }) => replyClass(code) !== 5);
    if (accepted.length === 0) {
      this.pool.release(client, true);
      const chosen = firstTemporary ?? refusedResults[0] ?? CONNECTION_LOST;
      const answer = { code: chosen.code, enhanced: chosen.enhanced, text: chosen.text };
      return finish(firstTemporary ? 'tempfail' : 'rejected', answer, refusedResults, tls,
        'every recipient refused');
    }

    // A recipient deferred (4xx) while others were taken: after DATA the client can only get
    // one reply for all, so defer all. RSET first: nothing is delivered, the retry carries all.
    if (firstTemporary) {
      this.pool.release(client, await client.reset());
      const answer = { code: firstTemporary.code, enhanced: firstTemporary.enhanced,
        text: firstTemporary.text };
      const heldBack = accepted.map(({ recipient }): RecipientResult => ({
        recipient, ...answer, accepted: false,
      }));
      return finish('tempfail', answer, [...heldBack, ...refusedResults], tls,
        `${firstTemporary.recipient} deferred with ${firstTemporary.code}: message deferred `
        + `for all ${envelope.recipients.length} recipients (RSET before DATA)`);
    }

    // DATA: stream the message and wait for the reply to the final dot.
    let finalReply: SmtpReply;
    try {
      const message: Readable = openMessage();
      finalReply = await client.sendData(message);
    } catch (error) {
      // Only a failure before DATA was sent leaves the connection clean; be strict and drop it.
      this.pool.release(client, false);
      const answer = answerForFailure(error);
      return finish('tempfail', answer, everyone(answer), tls, describe(error));
    }
    this.pool.release(client, true);

    const answer = relayable(finalReply);
    const delivered = replyClass(finalReply.code) === 2;
    const acceptedResults = accepted.map(({ recipient }) => ({
      recipient, ...answer, accepted: delivered,
    }));
    const recipients = [...acceptedResults, ...refusedResults];
    let outcome = classOutcome(finalReply.code);
    if (delivered && refused.length > 0) outcome = 'partial';
    const detail = `final reply ${finalReply.code} ${finalReply.text}`;
    return finish(outcome, answer, recipients, tls, detail);
  }

  private async verify(address: string): Promise<VerifyResult> {
    if (findUnsafeAddress([address]) !== null) return { result: 'tempfail', ...OWN_FAULT };

    let transaction: Transaction;
    try {
      transaction = await this.openTransaction('', [address], null);
    } catch {
      return { result: 'tempfail', ...VERIFY_UNAVAILABLE };
    }
    const { client, replies } = transaction;
    this.pool.release(client, true);

    const rcpt = replies.rcpts[0];
    if (replyClass(replies.mail.code) !== 2 || !rcpt) {
      return { result: 'tempfail', ...VERIFY_UNAVAILABLE };
    }
    const answer = relayable(rcpt);
    if (replyClass(rcpt.code) === 2) return { result: 'accept', ...answer };
    if (replyClass(rcpt.code) === 5) return { result: 'reject', ...answer };
    return { result: 'tempfail', ...answer };
  }

  /**
   * Sends the envelope on a pooled connection. If a reused connection turns out stale before
   * our MAIL was accepted (closed, or 421), retries once on a fresh one: nothing was sent.
   */
  private async openTransaction(
    sender: string,
    recipients: string[],
    sizeBytes: number | null,
  ): Promise<Transaction> {
    const lease = await this.pool.acquire();
    try {
      const replies = await lease.client.sendEnvelope(sender, recipients, sizeBytes);
      if (!lease.reused || replies.mail.code !== 421) return { client: lease.client, replies };
      lease.client.destroy();
    } catch (error) {
      lease.client.destroy();
      const staleBeforeMail = error instanceof DownstreamError && error.stage === 'mail';
      if (!lease.reused || !staleBeforeMail) throw error;
    }

    const client = await this.pool.openFresh();
    try {
      return { client, replies: await client.sendEnvelope(sender, recipients, sizeBytes) };
    } catch (error) {
      client.destroy();
      throw error;
    }
  }

  private notify(event: Parameters<DeliveryObserver>[0], outcome: string, seconds: number): void {
    try {
      this.observer(event, outcome, seconds);
    } catch {
      // Metrics must never break delivery.
    }
  }
}

function answerForFailure(error: unknown): Answer {
  if (error instanceof MessageInputError) return OWN_FAULT;
  if (!(error instanceof DownstreamError)) return OWN_FAULT;
  return error.beforeSession ? UNREACHABLE : CONNECTION_LOST;
}

function classOutcome(code: number): DeliveryOutcome {
  if (replyClass(code) === 2) return 'delivered';
  return replyClass(code) === 4 ? 'tempfail' : 'rejected';
}

/** A downstream reply as we may repeat it: safe text, and 421 turned into 451. */
function relayable(reply: SmtpReply): Answer {
  return {
    code: reply.code === 421 ? 451 : reply.code,
    enhanced: reply.enhanced,
    text: safeReplyText(reply.text),
  };
}

/** Why an address cannot go on an SMTP command line, or null when it can. */
function findUnsafeAddress(addresses: string[]): string | null {
  for (const address of addresses) {
    if (address.length > MAX_ADDRESS_LENGTH) return 'envelope address too long';
    if (/[\x00-\x1f\x7f<>]/.test(address)) return 'envelope address with control or <>';
  }
  return null;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
