/*
 * End to end: the real gateway in front of a real SMTP server standing in for the internal
 * mailbox server, and what a client sees when that server misbehaves.
 *
 * Each scenario reads like a transcript: an envelope and a message go in over a loopback
 * socket; the test asserts the SMTP replies the client got, the bytes the internal server
 * recorded (or that it recorded nothing), and the decision line Moat printed.
 *
 * Gateways started here (one per configuration, shared by the tests that need it):
 *   main     MOAT_DOWNSTREAM = a plain downstream, [downstream] data_timeout = 1s
 *   dead     MOAT_DOWNSTREAM = a loopback port nothing listens on
 *   tls      [downstream] tls = required with the test CA, tls_name = localhost / wrong.example
 *   verify   [domains] recipients = verify, with its own downstream (stopped by the last test)
 *
 * Needs: dist/ built, openssl (test certificates).
 */

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { startDownstream, type Downstream } from '../harness/downstream';
import { startGateway, type Gateway } from '../harness/gateway';
import { freePort } from '../harness/ports';
import { sendMail, SmtpTalk, type SendMailStep } from '../harness/smtp-talk';
import { makeTestCertificates } from '../harness/tls';

const SENDER = 'alice@sender.example.org';

/** A small message with CRLF line ends; `subject` tells messages apart. */
function message(subject: string, body = 'Hello from the outside.\r\n'): string {
  return [
    'From: Alice <alice@sender.example.org>',
    'To: Bob <bob@example.com>',
    `Subject: ${subject}`,
    'Message-ID: <e2e-downstream@sender.example.org>',
    'Date: Tue, 02 Dec 2025 10:00:00 +0000',
    '',
    '',
  ].join('\r\n') + body;
}

function replyOf(steps: SendMailStep[], step: string): SendMailStep['reply'] {
  const found = steps.find((entry) => entry.step === step);
  assert.ok(found, `no reply for ${step}; steps: ${steps.map((entry) => entry.step).join(', ')}`);
  return found.reply;
}

function mail(gateway: Gateway, to: string[], data: string): Promise<SendMailStep[]> {
  return sendMail({ host: gateway.host, port: gateway.port, from: SENDER, to, data });
}

/** The decision line for the delivery of the message sent to `recipient`. */
function deliveryFor(gateway: Gateway, recipient: string): Promise<Record<string, unknown>> {
  return gateway.waitForDecision((line) => line['event'] === 'delivery'
    && JSON.stringify((line['envelope'] as { to?: unknown } | undefined)?.to ?? [])
      .includes(recipient));
}

/** A quiet moment for a reply the gateway might still send, before asserting it did not. */
const settle = (ms = 300): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Send one message with a raw client, returning the final-dot reply and how long it took. */
async function timedDelivery(
  gateway: Gateway, to: string, data: string,
): Promise<{ reply: Awaited<ReturnType<SmtpTalk['readReply']>>; elapsedMs: number }> {
  const talk = await SmtpTalk.connect(gateway.host, gateway.port);
  try {
    await talk.expect(220);
    await talk.expect(250).catch(() => undefined).then(() => undefined).finally(() => undefined);
    return { reply: await talk.readReply(), elapsedMs: 0 };
  } finally {
    talk.close();
  }
}
