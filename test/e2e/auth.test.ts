/*
 * End to end: sender authentication over real SMTP against a real DNS server on loopback.
 *
 * One Moat process, one DNS server holding every record the scenarios need, one internal
 * server, and a second Moat for auth.spf_fail_stage = mail (a setting of the whole process).
 * The client presents 192.0.2.10 (TEST-NET-1) with a PROXY header, so SPF judges that
 * address. Keys and signatures are made here (node:crypto, mailauth's signer and sealer).
 * Each scenario sends to its own recipient, so the decision line and the delivered copy are
 * found by it; each uses its own domains, so cached DNS answers never leak between them.
 */

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startDns, type DnsServer } from '../harness/dns';
import { startDownstream, type Downstream, type DownstreamMessage } from '../harness/downstream';
import { startGateway, type Gateway } from '../harness/gateway';
import { messageDate } from '../harness/samples';
import { proxyV1Header, sendMail, type SendMailStep } from '../harness/smtp-talk';
import {
  arcSealed, dkimSigned, ed25519Key, REVOKED_KEY_RECORD, rsaKey, type TestKey,
} from '../fixtures/auth/signing';

const CLIENT_IP = '192.0.2.10';
const AUTHSERV_ID = 'mx.moat.example';
const SPF_PASS = 'v=spf1 ip4:192.0.2.0/24 -all';

let dns: DnsServer;
let downstream: Downstream;
let gateway: Gateway;
let key: TestKey;
let listKey: TestKey;

/**
 * A gateway as this file's tests need it: the test DNS server, the internal server, PROXY from
 * 127.0.0.1 (so SPF judges the presented TEST-NET address), Moat's authserv-id, one DNS attempt
 * with `dnsTimeout`, then the test's own `ini` lines.
 */
function startAuthGateway(domains: string, dnsTimeout: string, ini: string[]): Promise<Gateway> {
  return startGateway({
    env: {
      MOAT_DOWNSTREAM: downstream.address, MOAT_DNS_SERVERS: dns.address,
      MOAT_PROXY_HOSTS: '127.0.0.1', MOAT_DOMAINS: domains,
    },
    ini: ['[smtp]', `hostname = ${AUTHSERV_ID}`,
      '[dns]', `timeout = ${dnsTimeout}`, 'attempts = 1', ...ini, ''].join('\n'),
  });
}

before(async () => {
  key = rsaKey(2048);
  listKey = rsaKey(1024);
  dns = await startDns();
  downstream = await startDownstream();
  gateway = await startAuthGateway(
    'example.com,tagged.example,tempfail.example,unchecked.example', '300ms', [
      '[auth]', 'spf_fail_action = reject', 'arc_trusted_sealers = lists.example',
      'dkim_reject_rsa_sha1 = true',
      'dmarc_exempt_domains = partner.example',
      '[domain tagged.example]', 'auth_policy = tag',
      '[domain tempfail.example]', 'auth_temperror = tempfail',
      '[domain unchecked.example]', 'auth_policy = off',
    ]);
});

after(async () => {
  await gateway?.stop();
  await downstream?.stop();
  await dns?.stop();
});

// ---- Helpers -------------------------------------------------------------------------------

interface Outcome {
  steps: SendMailStep[];
  /** The reply to the final dot, or to the command that ended the transaction. */
  final: { code: number; text: string };
  decision: Record<string, unknown>;
  delivered: DownstreamMessage | undefined;
}

function message(headers: string[], body = 'Hello Bob.\r\n'): string {
  return `${headers.join('\r\n')}\r\n\r\n${body}`;
}

function basicMessage(from: string, id: string, extra: string[] = []): string {
  return message([`From: ${from}`, 'To: bob@example.com', `Subject: ${id}`,
    `Message-ID: <${id}@sender.example>`, `Date: ${messageDate()}`, ...extra]);
}

async function send(
  name: string, mailFrom: string, data: string, domain = 'example.com',
): Promise<Outcome> {
  const recipient = `${name}@${domain}`;
  const steps = await talk(gateway, mailFrom, recipient, data);
  const last = [...steps].reverse().find((step) => step.step !== 'QUIT');
  const final = { code: last?.reply.code ?? 0, text: last?.reply.lines.join(' ') ?? '' };
  const decision = await gateway.waitForDecision((line) => {
    const envelope = line['envelope'] as { to?: string[] } | undefined;
    return envelope?.to?.includes(recipient) === true;
  });
  const delivered = downstream.messages.find((entry) => entry.rcptTo.includes(recipient));
  return { steps, final, decision, delivered };
}

/** One transaction from CLIENT_IP (presented with a PROXY header) to `target`. */
function talk(
  target: Gateway, mailFrom: string, recipient: string, data: string,
): Promise<SendMailStep[]> {
  return sendMail({
    host: target.host, port: target.port, from: mailFrom, to: [recipient], data,
    helo: 'client.sender.example',
    proxy: proxyV1Header({ sourceAddress: CLIENT_IP, sourcePort: 40000,
      destinationAddress: '127.0.0.1', destinationPort: 25 }),
  });
}

/** The evidence of the check that decided the message (the decision line's `detail`). */
function decidingEvidence(outcome: Outcome): Record<string, unknown> {
  const evidence = outcome.decision['evidence'] as { detail?: Record<string, unknown> };
  return evidence.detail ?? {};
}

/** Every "check=result(reason)" of the decision line. */
function results(outcome: Outcome): string[] {
  const evidence = outcome.decision['evidence'] as { results?: string[] } | undefined;
  return evidence?.results ?? [];
}

/** Our Authentication-Results header of the delivered copy, unfolded. */
function ourAuthResults(outcome: Outcome): string {
  const text = outcome.delivered?.data.toString('utf8') ?? '';
  const match = /^Authentication-Results: mx\.moat\.example;(.*(?:\r\n[ \t].*)*)/m.exec(text);
  return match?.[1]?.replace(/\r\n[ \t]/g, ' ') ?? '';
}

function assertDelivered(outcome: Outcome): void {
  assert.equal(outcome.final.code, 250, JSON.stringify(outcome.steps));
  assert.ok(outcome.delivered, 'the internal server got the message');
}

function assertRefused(outcome: Outcome, code: number, enhanced: string): void {
  assert.equal(outcome.final.code, code, JSON.stringify(outcome.steps));
  assert.match(outcome.final.text, new RegExp(`^${enhanced.replace(/\./g, '\\.')} `));
  assert.equal(outcome.delivered, undefined, 'nothing reached the internal server');
}

// ---- SPF -----------------------------------------------------------------------------------

describe('SPF at MAIL FROM', () => {
  const cases: Array<[string, string | null, string]> = [
    ['pass', SPF_PASS, 'pass'],
    ['softfail', 'v=spf1 ip4:198.51.100.1 ~all', 'softfail'],
    ['neutral', 'v=spf1 ?all', 'neutral'],
    ['none', null, 'none'],
    ['permerror', 'v=spf1 ip4:192.0.2.0/24 bogus:mechanism -all', 'permerror'],
  ];
  for (const [name, record, word] of cases) {
    test(`${name}: recorded, in the header, delivered`, async () => {
      const domain = `spf-${name}.example`;
      if (record) dns.add(domain, 'TXT', record);
      else dns.add(domain, 'A', '192.0.2.99');
      const outcome = await send(`spf-${name}`, `alice@${domain}`,
        basicMessage(`alice@${domain}`, `spf-${name}`));
      assertDelivered(outcome);
      assert.ok(results(outcome).includes(`spf=${word}`), results(outcome).join(' '));
      assert.match(ourAuthResults(outcome), new RegExp(`spf=${word}\\b`));
    });
  }

  test('fail: refused at RCPT with 550 5.7.23 for an enforcing domain', async () => {
    dns.add('spf-fail.example', 'TXT', 'v=spf1 ip4:198.51.100.1 -all');
    const outcome = await send('spf-fail', 'alice@spf-fail.example',
      basicMessage('alice@spf-fail.example', 'spf-fail'));
    const rcpt = outcome.steps.find((step) => step.step.startsWith('RCPT'));
    assert.equal(rcpt?.reply.code, 550);
    assert.match(rcpt?.reply.lines.join(' ') ?? '', /^5\.7\.23 .*spf-fail\.example/);
    assert.equal(outcome.decision['reason'], 'spf-fail');
    assert.equal((outcome.decision['evidence'] as Record<string, unknown>)['domain'],
      'spf-fail.example');
    assert.equal(outcome.delivered, undefined);
  });

  test('fail: a domain whose policy is tag gets the message, tagged', async () => {
    dns.add('spf-fail-tag.example', 'TXT', 'v=spf1 ip4:198.51.100.1 -all');
    const outcome = await send('spf-fail-tag', 'alice@spf-fail-tag.example',
      basicMessage('alice@spf-fail-tag.example', 'spf-fail-tag'), 'tagged.example');
    assertDelivered(outcome);
    assert.equal(outcome.decision['action'], 'tag');
    assert.match(outcome.delivered?.data.toString() ?? '',
      /\r\nX-Moat-Auth: spf=fail smtp\.mailfrom=spf-fail-tag\.example\r\n/);
    assert.ok(results(outcome).includes('spf=fail(auth-tagged)'), results(outcome).join(' '));
  });

  test('the null sender is judged by its HELO name', async () => {
    dns.add('client.sender.example', 'TXT', SPF_PASS);
    const outcome = await send('spf-null', '', basicMessage('mailer-daemon@spf-null.example',
      'spf-null'));
    assertDelivered(outcome);
    assert.match(ourAuthResults(outcome), /spf=pass .*smtp\.helo=client\.sender\.example/);
  });

  test('temperror (the zone does not answer): recorded and delivered by default', async () => {
    dns.blackhole('spf-slow.example');
    const outcome = await send('spf-slow', 'alice@spf-slow.example',
      basicMessage('alice@spf-slow.example', 'spf-slow'));
    assertDelivered(outcome);
    assert.ok(results(outcome).includes('spf=temperror'), results(outcome).join(' '));
    assert.ok(results(outcome).includes('dmarc=temperror'), results(outcome).join(' '));
  });

  test('temperror: 451 4.4.3 where the domain asks for tempfail', async () => {
    dns.blackhole('spf-slow2.example');
    const outcome = await send('spf-slow2', 'alice@spf-slow2.example',
      basicMessage('alice@spf-slow2.example', 'spf-slow2'), 'tempfail.example');
    assertRefused(outcome, 451, '4.4.3');
    assert.equal(outcome.decision['reason'], 'auth-temperror');
  });
});

describe('SPF with auth.spf_fail_stage = mail', () => {
  let mailStage: Gateway;

  before(async () => {
    mailStage = await startAuthGateway('example.com,tagged.example', '300ms', [
      '[auth]', 'spf_fail_action = reject', 'spf_fail_stage = mail',
      '[domain tagged.example]', 'auth_policy = tag',
    ]);
  });

  after(async () => {
    await mailStage?.stop();
  });

  test('fail: 550 5.7.23 at MAIL FROM, before any RCPT, whatever the recipient domain',
    async () => {
      dns.add('spf-fail-mail.example', 'TXT', 'v=spf1 ip4:198.51.100.1 -all');
      const sender = 'alice@spf-fail-mail.example';
      // A tag-only recipient domain: at MAIL no recipient is known, so the global policy holds.
      const steps = await talk(mailStage, sender, 'spf-mail@tagged.example',
        basicMessage(sender, 'spf-fail-mail'));
      const mail = steps.find((step) => step.step === 'MAIL');
      assert.equal(mail?.reply.code, 550, JSON.stringify(steps));
      assert.match(mail?.reply.lines.join(' ') ?? '', /^5\.7\.23 .*spf-fail-mail\.example/);
      assert.ok(!steps.some((step) => step.step.startsWith('RCPT')), 'RCPT was sent');

      const line = await mailStage.waitForDecision((entry) => entry['reason'] === 'spf-fail'
        && (entry['envelope'] as { from?: string } | undefined)?.from === sender);
      assert.deepEqual([line['event'], line['phase'], line['action']],
        ['message', 'mail', 'reject']);
      assert.equal((line['evidence'] as Record<string, unknown>)['domain'],
        'spf-fail-mail.example');
      assert.ok(!downstream.messages.some((entry) =>
        entry.rcptTo.includes('spf-mail@tagged.example')));
    });
});

// ---- DKIM ----------------------------------------------------------------------------------

describe('DKIM, ARC and DMARC past auth.message_timeout', () => {
  let slow: Gateway;

  before(async () => {
    // The key lookup hangs longer than the message may take: the deadline decides.
    slow = await startAuthGateway('example.com', '3s', ['[auth]', 'message_timeout = 300ms']);
  });

  after(async () => {
    await slow?.stop();
  });

  test('temperror, and the message still reaches the internal server whole', async () => {
    const domain = 'dkim-deadline.example';
    dns.add(domain, 'TXT', SPF_PASS);
    dns.blackhole(`s1._domainkey.${domain}`);
    const data = await dkimSigned(basicMessage(`alice@${domain}`, 'dkim-deadline'),
      { domain, selector: 's1', key });
    const steps = await talk(slow, `alice@${domain}`, 'deadline@example.com', data);
    const final = steps.find((step) => step.step === 'message');
    assert.equal(final?.reply.code, 250, JSON.stringify(steps));

    const decision = await slow.waitForDecision((line) =>
      (line['envelope'] as { to?: string[] } | undefined)?.to?.includes('deadline@example.com')
      === true);
    const words = (decision['evidence'] as { results?: string[] }).results ?? [];
    for (const word of ['dkim=temperror', 'dmarc=temperror']) {
      assert.ok(words.includes(word), `${word} in ${words.join(' ')}`);
    }
    // ARC has no temperror (RFC 8617: none, pass, fail): unevaluated, it is left out, so it
    // can neither pass nor override DMARC.
    assert.ok(!words.some((word) => word.startsWith('arc=')), words.join(' '));
    // The deadline decided, not the key lookup's own 3 s DNS timeout (which would also be a
    // temperror): only the deadline says so.
    const warning = slow.lines().find((line) => line['msg'] === 'DKIM/ARC/DMARC not evaluated'
      && line['message_id'] === decision['message_id']);
    assert.match(String(warning?.['error']), /took longer than 300 ms/, 'no deadline warning');
    const delivered = downstream.messages.find((entry) =>
      entry.rcptTo.includes('deadline@example.com'));
    assert.ok(delivered?.data.includes('Subject: dkim-deadline'), 'not delivered whole');
    assert.ok(delivered?.data.includes('Hello'), 'body missing');
  });
});

describe('DKIM', () => {
  // SPF passes and aligns for these domains, so DMARC never hides a DKIM result.
  async function dkimCase(name: string, data: (domain: string) => Promise<string>) {
    const domain = `dkim-${name}.example`;
    dns.add(domain, 'TXT', SPF_PASS);
    return send(`dkim-${name}`, `alice@${domain}`, await data(domain));
  }

  function dkimEvidence(outcome: Outcome): string {
    return results(outcome).filter((entry) => entry.startsWith('dkim=')).join(' ');
  }

  test('good RSA signature: pass, with its domain and selector in the header', async () => {
    const outcome = await dkimCase('good', async (domain) => {
      dns.add(`s1._domainkey.${domain}`, 'TXT', key.record);
      return dkimSigned(basicMessage(`alice@${domain}`, 'dkim-good'),
        { domain, selector: 's1', key });
    });
    assertDelivered(outcome);
    assert.equal(dkimEvidence(outcome), 'dkim=pass');
    assert.match(ourAuthResults(outcome),
      /dkim=pass header\.i=@dkim-good\.example header\.s=s1 header\.a=rsa-sha256/);

    // The decision line carries every result's evidence, the signature's included.
    const evidence = outcome.decision['evidence'] as { checks?: Array<Record<string, unknown>> };
    const signature = evidence.checks?.find((entry) => entry['check'] === 'dkim');
    assert.deepEqual(signature?.['evidence'],
      { domain: 'dkim-good.example', selector: 's1', algorithm: 'rsa-sha256', result: 'pass',
        key_bits: 2048 },
      JSON.stringify(evidence.checks));
    for (const check of ['spf', 'dmarc', 'from']) {
      assert.ok(evidence.checks?.some((entry) => entry['check'] === check),
        `no ${check} evidence in ${JSON.stringify(evidence.checks)}`);
    }
  });

  test('Ed25519 signature: pass', async () => {
    const ed = ed25519Key();
    const outcome = await dkimCase('ed25519', async (domain) => {
      dns.add(`ed._domainkey.${domain}`, 'TXT', ed.record);
      return dkimSigned(basicMessage(`alice@${domain}`, 'dkim-ed25519'),
        { domain, selector: 'ed', key: ed });
    });
    assertDelivered(outcome);
    assert.equal(dkimEvidence(outcome), 'dkim=pass');
    assert.match(ourAuthResults(outcome), /dkim=pass .*header\.a=ed25519-sha256/);
  });

  const broken: Array<[string, (signed: string) => string, string | null, RegExp]> = [
    ['body-altered', (signed) => signed.replace('Hello Bob.', 'Hello Bob, pay now.'), 's1',
      /dkim=(neutral|fail) \(body hash did not verify\)/],
    ['header-altered', (signed) => signed.replace('Subject: dkim-header-altered',
      'Subject: changed'), 's1', /dkim=fail \(bad signature\)/],
    ['missing-key', (signed) => signed, null, /dkim=(neutral|permerror) \(no key\)/],
    ['revoked-key', (signed) => signed, REVOKED_KEY_RECORD, /dkim=(neutral|permerror|fail)/],
  ];
  for (const [name, tamper, record, expected] of broken) {
    test(`${name}: not a pass`, async () => {
      const outcome = await dkimCase(name, async (domain) => {
        if (record === 's1') dns.add(`s1._domainkey.${domain}`, 'TXT', key.record);
        else if (record) dns.add(`s1._domainkey.${domain}`, 'TXT', record);
        const signed = await dkimSigned(basicMessage(`alice@${domain}`, `dkim-${name}`),
          { domain, selector: 's1', key });
        return tamper(signed);
      });
      assertDelivered(outcome);
      assert.doesNotMatch(dkimEvidence(outcome), /dkim=pass/);
      assert.match(ourAuthResults(outcome), expected);
    });
  }

  test('rsa-sha1 signature (dkim_reject_rsa_sha1 = true): verified, but not a pass', async () => {
    const outcome = await dkimCase('rsa-sha1', async (domain) => {
      dns.add(`s1._domainkey.${domain}`, 'TXT', key.record);
      return dkimSigned(basicMessage(`alice@${domain}`, 'dkim-rsa-sha1'),
        { domain, selector: 's1', key, algorithm: 'rsa-sha1' });
    });
    assertDelivered(outcome);
    assert.doesNotMatch(dkimEvidence(outcome), /dkim=pass/);
    assert.ok(dkimEvidence(outcome).length > 0, results(outcome).join(' '));
    assert.match(ourAuthResults(outcome), /dkim=(?!pass)\w+ [^;]*header\.a=rsa-sha1/);
  });

  test('rsa-sha1 signature cannot satisfy DMARC: p=reject refuses what rsa-sha256 passes',
    async () => {
      async function signedBy(name: string, algorithm: string): Promise<Outcome> {
        const author = `dkim-${name}.example`;
        dns.add(`_dmarc.${author}`, 'TXT', 'v=DMARC1; p=reject');
        dns.add(`s1._domainkey.${author}`, 'TXT', key.record);
        dns.add(`bulk-${name}.example`, 'TXT', SPF_PASS);
        const data = await dkimSigned(basicMessage(`ceo@${author}`, `dkim-${name}`),
          { domain: author, selector: 's1', key, algorithm });
        return send(`dkim-${name}`, `bounce@bulk-${name}.example`, data);
      }
      const sha256 = await signedBy('sha256-dmarc', 'rsa-sha256');
      assertDelivered(sha256);
      assert.ok(results(sha256).includes('dmarc=pass'), results(sha256).join(' '));

      const sha1 = await signedBy('sha1-dmarc', 'rsa-sha1');
      assertRefused(sha1, 550, '5.7.1');
      assert.equal(sha1.decision['reason'], 'dmarc-reject');
      assert.ok(results(sha1).includes('dkim=fail'), results(sha1).join(' '));
    });

  test('l= with content appended: policy, and DMARC p=reject refuses the message', async () => {
    const domain = 'dkim-length.example';
    dns.add(`s1._domainkey.${domain}`, 'TXT', key.record);
    dns.add(`_dmarc.${domain}`, 'TXT', 'v=DMARC1; p=reject');
    dns.add('bulk-length.example', 'TXT', SPF_PASS);
    const original = basicMessage(`ceo@${domain}`, 'dkim-length');
    const signed = await dkimSigned(original,
      { domain, selector: 's1', key, bodyLength: 'Hello Bob.\r\n'.length });
    const outcome = await send('dkim-length', 'bounce@bulk-length.example',
      `${signed}Please wire 10000 to account 12345.\r\n`);
    assertRefused(outcome, 550, '5.7.1');
    assert.match(outcome.final.text, /dkim-length\.example/);
    assert.equal(outcome.decision['reason'], 'dmarc-reject');
    assert.ok(results(outcome).includes('dkim=fail'), results(outcome).join(' '));
  });
});

// ---- DMARC ---------------------------------------------------------------------------------

describe('DMARC', () => {
  /** From the author domain, enveloped by an unaligned bulk sender whose SPF passes. */
  async function unaligned(name: string, fromDomain: string, signWith?: string) {
    const bulk = `bulk-${name}.example`;
    dns.add(bulk, 'TXT', SPF_PASS);
    let data = basicMessage(`ceo@${fromDomain}`, `dmarc-${name}`);
    if (signWith) {
      dns.add(`s1._domainkey.${signWith}`, 'TXT', key.record);
      data = await dkimSigned(data, { domain: signWith, selector: 's1', key });
    }
    return send(`dmarc-${name}`, `bounce@${bulk}`, data);
  }

  test('p=reject: 550 5.7.1 naming the domain', async () => {
    dns.add('_dmarc.dmarc-reject.example', 'TXT', 'v=DMARC1; p=reject');
    const outcome = await unaligned('reject', 'dmarc-reject.example');
    assertRefused(outcome, 550, '5.7.1');
    assert.match(outcome.final.text, /DMARC policy of dmarc-reject\.example/);
    assert.equal(outcome.decision['reason'], 'dmarc-reject');
    const evidence = outcome.decision['evidence'] as Record<string, Record<string, unknown>>;
    const detail = evidence['detail'];
    assert.equal(detail?.['policy'], 'reject');
  });

  test('p=quarantine: the quarantine verdict, not the inbox', async () => {
    dns.add('_dmarc.dmarc-quarantine.example', 'TXT', 'v=DMARC1; p=quarantine');
    const outcome = await unaligned('quarantine', 'dmarc-quarantine.example');
    assert.equal(outcome.final.code, 250);
    assert.equal(outcome.delivered, undefined);
    assert.equal(outcome.decision['action'], 'quarantine');
  });

  test('p=none: recorded only, delivered with dmarc=fail in the header', async () => {
    dns.add('_dmarc.dmarc-none.example', 'TXT', 'v=DMARC1; p=none');
    const outcome = await unaligned('none', 'dmarc-none.example');
    assertDelivered(outcome);
    assert.equal(outcome.decision['reason'], 'downstream-accepted');
    assert.match(ourAuthResults(outcome), /dmarc=fail .*header\.from=dmarc-none\.example/);
  });

  test('no record: dmarc=none, delivered', async () => {
    const outcome = await unaligned('norecord', 'dmarc-norecord.example');
    assertDelivered(outcome);
    assert.ok(results(outcome).includes('dmarc=none'), results(outcome).join(' '));
  });

  test('relaxed alignment: a subdomain signature aligns', async () => {
    dns.add('_dmarc.dmarc-relaxed.example', 'TXT', 'v=DMARC1; p=reject');
    const outcome = await unaligned('relaxed', 'dmarc-relaxed.example',
      'mail.dmarc-relaxed.example');
    assertDelivered(outcome);
    assert.ok(results(outcome).includes('dmarc=pass'), results(outcome).join(' '));
  });

  test('strict alignment (aspf=s adkim=s): what aligns relaxed is refused strict', async () => {
    // Envelope and signature both from mail.<author>: SPF and DKIM pass, and both align only
    // under relaxed alignment. The two records differ in adkim/aspf alone.
    async function fromSubdomain(name: string, record: string): Promise<Outcome> {
      const author = `dmarc-${name}.example`;
      const sub = `mail.${author}`;
      dns.add(`_dmarc.${author}`, 'TXT', record);
      dns.add(sub, 'TXT', SPF_PASS);
      dns.add(`s1._domainkey.${sub}`, 'TXT', key.record);
      const data = await dkimSigned(basicMessage(`ceo@${author}`, `dmarc-${name}`),
        { domain: sub, selector: 's1', key });
      return send(`dmarc-${name}`, `bounce@${sub}`, data);
    }
    const relaxed = await fromSubdomain('strict-control', 'v=DMARC1; p=reject');
    assertDelivered(relaxed);
    assert.ok(results(relaxed).includes('dmarc=pass'), results(relaxed).join(' '));

    const strict = await fromSubdomain('strict', 'v=DMARC1; p=reject; adkim=s; aspf=s');
    assertRefused(strict, 550, '5.7.1');
    assert.equal(strict.decision['reason'], 'dmarc-reject');
    for (const passed of ['spf=pass', 'dkim=pass']) {
      assert.ok(results(strict).includes(passed), results(strict).join(' '));
    }
    const alignment = decidingEvidence(strict)['alignment'] as Record<string, unknown>;
    assert.equal(alignment['mode'], 'aspf=s adkim=s', JSON.stringify(alignment));
    assert.deepEqual([alignment['spf'], alignment['dkim']], ['none', 'none'],
      JSON.stringify(alignment));
  });

  test('SPF alignment alone: an unsigned message from the envelope domain passes p=reject',
    async () => {
      const domain = 'dmarc-spf-aligned.example';
      dns.add(`_dmarc.${domain}`, 'TXT', 'v=DMARC1; p=reject');
      dns.add(domain, 'TXT', SPF_PASS);
      const outcome = await send('dmarc-spf-aligned', `bounce@${domain}`,
        basicMessage(`ceo@${domain}`, 'dmarc-spf-aligned'));
      assertDelivered(outcome);
      for (const word of ['spf=pass', 'dkim=none', 'dmarc=pass']) {
        assert.ok(results(outcome).includes(word), results(outcome).join(' '));
      }
      assert.match(ourAuthResults(outcome), /dkim=none/);
      assert.match(ourAuthResults(outcome),
        /dmarc=pass [^;]*header\.from=dmarc-spf-aligned\.example/);
    });

  test('subdomain policy: sp=reject applies to a subdomain without its own record', async () => {
    dns.add('_dmarc.dmarc-sp.example', 'TXT', 'v=DMARC1; p=none; sp=reject');
    const outcome = await unaligned('sp', 'news.dmarc-sp.example');
    assertRefused(outcome, 550, '5.7.1');
    assert.match(outcome.final.text, /news\.dmarc-sp\.example/);
  });

  test('an exempt From domain is recorded, not refused, and the line says why', async () => {
    dns.add('_dmarc.partner.example', 'TXT', 'v=DMARC1; p=reject');
    const outcome = await unaligned('exempt', 'news.partner.example');
    assertDelivered(outcome);
    assert.ok(results(outcome).includes('dmarc=fail(dmarc-exempt)'), results(outcome).join(' '));
  });

  test('a domain whose policy is tag gets a p=reject failure, tagged', async () => {
    dns.add('_dmarc.dmarc-tagdomain.example', 'TXT', 'v=DMARC1; p=reject');
    dns.add('bulk-tagdomain.example', 'TXT', SPF_PASS);
    const outcome = await send('dmarc-tagdomain', 'bounce@bulk-tagdomain.example',
      basicMessage('ceo@dmarc-tagdomain.example', 'dmarc-tagdomain'), 'tagged.example');
    assertDelivered(outcome);
    assert.equal(outcome.decision['action'], 'tag');
    assert.match(outcome.delivered?.data.toString() ?? '', /\r\nX-Moat-Auth: dmarc=fail /);
  });

  test('a domain whose policy is off: SPF fail and a p=reject failure are only recorded',
    async () => {
      // For example.com both would refuse (SPF at RCPT, DMARC at the dot); here neither acts.
      const domain = 'dmarc-off.example';
      dns.add(domain, 'TXT', 'v=spf1 ip4:198.51.100.1 -all');
      dns.add(`_dmarc.${domain}`, 'TXT', 'v=DMARC1; p=reject');
      const outcome = await send('dmarc-off', `alice@${domain}`,
        basicMessage(`ceo@${domain}`, 'dmarc-off'), 'unchecked.example');
      assertDelivered(outcome);
      assert.equal(outcome.steps.find((step) => step.step.startsWith('RCPT'))?.reply.code, 250);
      assert.equal(outcome.decision['action'], 'deliver');
      assert.equal(outcome.decision['reason'], 'downstream-accepted');
      for (const word of ['spf=fail', 'dmarc=fail']) {
        assert.ok(results(outcome).includes(word), results(outcome).join(' '));
      }
      assert.doesNotMatch(outcome.delivered?.data.toString() ?? '', /\r\nX-Moat-Auth:/);
      assert.match(ourAuthResults(outcome), /spf=fail .*dmarc=fail /);
    });
});

// ---- ARC -----------------------------------------------------------------------------------

describe('ARC', () => {
  /** A p=reject author's signed message, changed by a mailing list, sealed by `sealer`. */
  async function forwarded(name: string, sealer: string, breakAfterSeal = false) {
    const author = `arc-${name}.example`;
    dns.add(`_dmarc.${author}`, 'TXT', 'v=DMARC1; p=reject');
    dns.add(`s1._domainkey.${author}`, 'TXT', key.record);
    dns.add(`arc._domainkey.${sealer}`, 'TXT', listKey.record);
    dns.add(sealer, 'TXT', SPF_PASS);

    const signed = await dkimSigned(basicMessage(`ceo@${author}`, `arc-${name}`),
      { domain: author, selector: 's1', key });
    const changed = signed.replace(`Subject: arc-${name}`, `Subject: [list] arc-${name}`);
    let sealed = await arcSealed(changed, {
      domain: sealer, selector: 'arc', key: listKey, cv: 'none',
      authResults: `${sealer}; dkim=pass header.d=${author}; dmarc=pass header.from=${author}`,
    });
    if (breakAfterSeal) sealed = sealed.replace('Hello Bob.', 'Hello Bob, changed later.');
    return send(`arc-${name}`, `list-bounce@${sealer}`, sealed);
  }

  test('a valid chain from a trusted sealer overrides the DMARC failure, and says so', async () => {
    const outcome = await forwarded('trusted', 'lists.example');
    assertDelivered(outcome);
    assert.ok(results(outcome).includes('dmarc=fail(dmarc-arc-override)'),
      results(outcome).join(' '));
    assert.ok(results(outcome).includes('arc=pass'), results(outcome).join(' '));
  });

  test('a valid chain from an untrusted sealer does not', async () => {
    const outcome = await forwarded('untrusted', 'other-list.example');
    assertRefused(outcome, 550, '5.7.1');
    assert.equal(outcome.decision['reason'], 'dmarc-reject');
    // The chain itself verified: only the sealer's standing kept it from overriding.
    assert.ok(results(outcome).includes('arc=pass'), results(outcome).join(' '));
    assert.equal(decidingEvidence(outcome)['override'], undefined);
  });

  test('a broken chain from a trusted sealer does not', async () => {
    const outcome = await forwarded('broken', 'lists.example', true);
    assertRefused(outcome, 550, '5.7.1');
    const detail = outcome.decision['evidence'] as { results?: string[] };
    assert.ok(detail.results?.includes('arc=fail'), JSON.stringify(detail.results));
  });
});

// ---- From and Authentication-Results -------------------------------------------------------

describe('From header ambiguity (RFC 7489 6.6.1)', () => {
  const cases: Array<[string, string[], string]> = [
    ['missing', ['To: bob@example.com', 'Subject: no from'], 'from-missing'],
    ['two-fields', ['From: alice@from-two.example', 'From: ceo@bank.example',
      'To: bob@example.com'], 'from-several-fields'],
    ['two-mailboxes', ['From: alice@from-two.example, ceo@bank.example',
      'To: bob@example.com'], 'from-several-mailboxes'],
    ['unparseable', ['From: Alice <alice@from-two.example', 'To: bob@example.com'],
      'from-unparseable'],
  ];
  for (const [name, headers, reason] of cases) {
    test(`${name}: 550 5.7.1 (${reason})`, async () => {
      dns.add('from-two.example', 'TXT', SPF_PASS);
      const outcome = await send(`from-${name}`, 'alice@from-two.example', message(headers));
      assertRefused(outcome, 550, '5.7.1');
      assert.equal(outcome.decision['reason'], reason);
    });
  }
});

describe('Authentication-Results', () => {
  test('one header of ours, on top; forged ones removed, others kept', async () => {
    dns.add('ar.example', 'TXT', SPF_PASS);
    const data = message([
      'Authentication-Results: mx.moat.example; dmarc=pass header.from=bank.example',
      'Authentication-Results: (sneaky) MX.MOAT.EXAMPLE.; dkim=pass header.d=bank.example',
      'Authentication-Results: other.example; spf=pass smtp.mailfrom=x@ar.example',
      'X-Moat-Auth: none', 'From: alice@ar.example', 'To: bob@example.com', 'Subject: ar']);
    const outcome = await send('ar', 'alice@ar.example', data);
    assertDelivered(outcome);
    const text = outcome.delivered?.data.toString('utf8') ?? '';
    assert.ok(text.startsWith('Authentication-Results: mx.moat.example;\r\n\t'),
      text.slice(0, 200));
    const header = text.slice(0, text.indexOf('\r\n\r\n'));
    const fields = header.split(/\r\n(?![ \t])/);
    const claimsUs = /^Authentication-Results:\s*(\(.*?\)\s*)?mx\.moat\.example/i;
    const ours = fields.filter((field) => claimsUs.test(field));
    assert.equal(ours.length, 1, header);
    assert.match(ours[0] ?? '', /spf=pass/);
    assert.ok(fields.some((field) => field.startsWith('Authentication-Results: other.example;')));
    assert.ok(!fields.some((field) => field.startsWith('X-Moat-Auth')), header);
    assert.ok(!/\r(?!\n)|(?<!\r)\n/.test(header), 'CRLF line endings only');
  });
});

describe('metrics', () => {
  test('results are counted by check and result', async () => {
    const text = await gateway.metrics();
    assert.match(text, /moat_auth_results_total\{check="dkim",result="pass"\} [1-9]/);
    assert.match(text, /moat_auth_results_total\{check="dkim",result="policy"\} [1-9]/);
    assert.match(text, /moat_auth_results_total\{check="spf",result="temperror"\} [1-9]/);
    assert.match(text, /moat_auth_results_total\{check="from",result="fail"\} [1-9]/);
    assert.match(text, /moat_check_duration_seconds_count\{check="dkim"\} [1-9]/);
    assert.match(text, /moat_check_duration_seconds_count\{check="dmarc"\} [1-9]/);
  });
});
