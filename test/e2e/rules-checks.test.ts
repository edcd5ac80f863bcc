/*
 * End to end: rules that read the other checks' results, over real SMTP, with the real
 * services those checks use: the test DNS server (SPF, DKIM and DMARC records, a DNS list),
 * a real clamd with the repository's test signatures, a real spamd, the internal server.
 *
 * Clients are presented with the PROXY protocol as TEST-NET addresses (not internal, so every
 * check runs). Each rule only marks the delivered copy with `X-Rule-Hit: <id>`, except the
 * virus rule, which notifies security@example.com (a quarantined message is not delivered).
 *
 * Two gateways:
 *   held     clamd.action = quarantine, no spam reject score: a virus or GTUBE reaches the
 *            rules (the message is quarantined or tagged, not refused)
 *   refusing the defaults (clamd.action = reject, spamd.reject_score = 15): clamd or spamd
 *            refuses first and the rules never run (docs/rules.md, "How rules combine")
 * Each scenario sends to its own recipient, so its decision line is found by it.
 */

import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startClamd, type ClamdServer } from '../harness/clamd';
import { startDns, type DnsServer } from '../harness/dns';
import { startDownstream, type Downstream, type DownstreamMessage } from '../harness/downstream';
import { startGateway, type Gateway } from '../harness/gateway';
import { makeTempDir } from '../harness/process';
import {
  CLAMAV_EICAR_NAME, EICAR_STRING, GTUBE_STRING, messageDate, messageWithAttachment,
  plainMessage,
} from '../harness/samples';
import { markerRule } from '../harness/rules';
import { proxyV1Header, sendMail } from '../harness/smtp-talk';
import { startSpamd, type SpamdServer } from '../harness/spamd';
import { dkimSigned, rsaKey } from '../fixtures/auth/signing';

const CLIENT = '203.0.113.20';
const LISTED_CLIENT = '203.0.113.21';
const CLIENT_SPF = 'v=spf1 ip4:203.0.113.0/24 -all';


const RULES = `rules:
${markerRule('k-spf-fail', '{ check: { name: spf, result: [fail] } }')}
${markerRule('k-spf-pass', '{ check: { name: spf, result: [pass] } }')}
${markerRule('k-dkim-pass', '{ check: { name: dkim, result: [pass] } }')}
${markerRule('k-dmarc-fail', '{ check: { name: dmarc, result: [fail] } }')}
${markerRule('k-dmarc-pass', '{ check: { name: dmarc, result: [pass] } }')}
${markerRule('k-listed', '{ check: { name: dnsbl, result: [neutral] } }')}
${markerRule('k-spam', '{ spam_score: { at_least: 100 } }')}
${markerRule('k-not-spam', '{ spam_score: { below: 5 } }')}
${markerRule('k-clean', '{ virus: false }')}
  - id: k-virus
    description: tell security about malware, whatever clamd.action does with it
    owner: test@example.com
    mode: enforce
    direction: any
    when: { virus: true }
    actions:
      - notify: { to: security@example.com, subject: "malware held" }
`;

let dns: DnsServer;
let downstream: Downstream;
let clamd: ClamdServer;
let spamd: SpamdServer;
let held: Gateway;
let refusing: Gateway;

function reversed(ip: string): string {
  return ip.split('.').reverse().join('.');
}

before(async () => {
  [dns, downstream, clamd, spamd] = await Promise.all([
    startDns(), startDownstream(), startClamd(), startSpamd(),
  ]);
  dns.add(`${reversed(LISTED_CLIENT)}.half.example`, 'A', '127.0.0.2');
  const rulesDir = makeTempDir('moat-rules-checks-');
  mkdirSync(join(rulesDir, 'lists'));
  writeFileSync(join(rulesDir, 'checks.yaml'), RULES);

  const env = {
    MOAT_DOWNSTREAM: downstream.address, MOAT_DNS_SERVERS: dns.address,
    MOAT_PROXY_HOSTS: '127.0.0.1', MOAT_CLAMD: clamd.address, MOAT_SPAMD: spamd.address,
    MOAT_RULES_DIR: rulesDir,
  };
  const common = [
    '[dns]', 'timeout = 300ms', 'attempts = 1',
    // Half a listing: recorded (dnsbl=neutral), not refused, so the rules see it.
    '[reputation]', 'zones = block:half.example:0.5', 'threshold = 1', 'deadline = 1s',
  ];
  const scanners = (clamd: string[], spamd: string[]): string => [...common,
    '[clamd]', 'timeout = 10s', ...clamd, '[spamd]', 'timeout = 20s', ...spamd, ''].join('\n');
  [held, refusing] = await Promise.all([
    startGateway({ env, ini: scanners(['action = quarantine'], ['reject_score =']) }),
    startGateway({ env, ini: scanners([], []) }),
  ]);
});

after(async () => {
  await Promise.all([held?.stop(), refusing?.stop()]);
  await Promise.all([dns?.stop(), downstream?.stop(), clamd?.stop(), spamd?.stop()]);
});

interface Outcome {
  code: number;
  text: string;
  decision: Record<string, unknown>;
  delivered: DownstreamMessage | undefined;
  /** The rules that marked the delivered copy. */
  hits: string[];
  /** `rule:<id>=...` entries of the decision line. */
  ruleResults: string[];
}

async function send(gateway: Gateway, name: string, data: string,
  options: { from?: string; client?: string } = {}): Promise<Outcome> {
  const recipient = `${name}@example.com`;
  const steps = await sendMail({
    host: gateway.host, port: gateway.port, from: options.from ?? 'alice@sender.example',
    to: [recipient], data, helo: 'client.sender.example', timeoutMs: 60_000,
    proxy: proxyV1Header({ sourceAddress: options.client ?? CLIENT, sourcePort: 40000,
      destinationAddress: '192.0.2.25', destinationPort: 25 }),
  });
  const final = steps.find((step) => step.step === 'message');
  assert.ok(final, `no reply to the message: ${JSON.stringify(steps)}`);
  const decision = await gateway.waitForDecision((line) =>
    (line['envelope'] as { to?: string[] } | undefined)?.to?.includes(recipient) === true);
  const delivered = downstream.messages.find((entry) => entry.rcptTo.includes(recipient));
  const text = delivered?.data.toString('latin1') ?? '';
  const results = (decision['evidence'] as { results?: string[] } | undefined)?.results ?? [];
  return {
    code: final.reply.code, text: final.reply.lines.join(' '), decision, delivered,
    hits: [...text.matchAll(/^X-Rule-Hit: (\S+)/gm)].map((match) => match[1] ?? ''),
    ruleResults: results.filter((entry) => entry.startsWith('rule:')),
  };
}

function message(from: string, subject: string, body = 'Hello Bob.\r\n'): string {
  return `From: ${from}\r\nTo: bob@example.com\r\nSubject: ${subject}\r\n`
    + `Message-ID: <${subject}@sender.example>\r\nDate: ${messageDate()}\r\n`
    + `\r\n${body}`;
}

function assertHits(outcome: Outcome, fired: string[], notFired: string[]): void {
  assert.equal(outcome.code, 250, outcome.text);
  for (const id of fired) assert.ok(outcome.hits.includes(id), `${id}: ${outcome.hits}`);
  for (const id of notFired) assert.ok(!outcome.hits.includes(id), `${id}: ${outcome.hits}`);
}

describe('sender authentication results', () => {
  test('SPF fail (recorded, not refused by default) fires a rule; SPF pass does not', async () => {
    dns.add('spf-fail.example', 'TXT', 'v=spf1 ip4:198.51.100.1 -all');
    const outcome = await send(held, 'spf-fail', message('alice@spf-fail.example', 'spf-fail'),
      { from: 'alice@spf-fail.example' });
    assertHits(outcome, ['k-spf-fail'], ['k-spf-pass', 'k-dkim-pass']);
  });

  test('SPF, DKIM and DMARC pass fire the pass rules and not the fail rules', async () => {
    const key = rsaKey(1024);
    dns.add('good.example', 'TXT', CLIENT_SPF)
      .add('_dmarc.good.example', 'TXT', 'v=DMARC1; p=reject')
      .add('s1._domainkey.good.example', 'TXT', key.record);
    const signed = await dkimSigned(message('ceo@good.example', 'auth-pass'),
      { domain: 'good.example', selector: 's1', key });
    const outcome = await send(held, 'auth-pass', signed, { from: 'ceo@good.example' });
    assertHits(outcome, ['k-spf-pass', 'k-dkim-pass', 'k-dmarc-pass'],
      ['k-spf-fail', 'k-dmarc-fail']);
  });

  test('DMARC fail under p=none (delivered) fires the DMARC rule', async () => {
    dns.add('bulk.example', 'TXT', CLIENT_SPF)
      .add('_dmarc.dmarc-none.example', 'TXT', 'v=DMARC1; p=none');
    const outcome = await send(held, 'dmarc-fail', message('ceo@dmarc-none.example', 'dmarc'),
      { from: 'bounce@bulk.example' });
    assertHits(outcome, ['k-dmarc-fail', 'k-spf-pass'], ['k-dmarc-pass', 'k-dkim-pass']);
  });
});

describe('DNS lists', () => {
  test('a listing below the refusal threshold fires the rule; an unlisted client does '
    + 'not', async () => {
    const listed = await send(held, 'dnsbl-listed', plainMessage({ subject: 'listed' }),
      { client: LISTED_CLIENT });
    assertHits(listed, ['k-listed'], []);
    const clean = await send(held, 'dnsbl-clean', plainMessage({ subject: 'unlisted' }));
    assertHits(clean, [], ['k-listed']);
  });
});

describe('spam score', () => {
  test('GTUBE scored by spamd (tagged, not refused) fires the high-score rule', async () => {
    const outcome = await send(held, 'gtube', plainMessage({ body: `${GTUBE_STRING}\r\n` }));
    assertHits(outcome, ['k-spam'], ['k-not-spam']);
    assert.match(outcome.delivered?.data.toString('latin1') ?? '', /^X-Spam-Flag: YES\r$/m);
  });

  test('an ordinary message fires the low-score rule only', async () => {
    const outcome = await send(held, 'ham', plainMessage({ body: 'Minutes of the meeting.\r\n' }));
    assertHits(outcome, ['k-not-spam', 'k-clean'], ['k-spam']);
  });

  test('with the default reject score spamd refuses GTUBE and the rules never run', async () => {
    const outcome = await send(refusing, 'gtube-refused',
      plainMessage({ body: `${GTUBE_STRING}\r\n` }));
    assert.equal(outcome.code, 550, outcome.text);
    assert.equal(outcome.decision['reason'], 'spam-rejected');
    const rules = (outcome.decision['evidence'] as Record<string, unknown>)['rules'] as
      Record<string, unknown>;
    assert.equal(rules['skipped'], 'already refused');
    assert.deepEqual(outcome.ruleResults, []);
  });
});

describe('virus', () => {
  test('EICAR with clamd.action = quarantine: held, and the rule names the signature to '
    + 'security', async () => {
    const outcome = await send(held, 'virus-held',
      messageWithAttachment('eicar.com', Buffer.from(EICAR_STRING)));
    assert.equal(outcome.code, 250, outcome.text);
    assert.equal(outcome.decision['action'], 'quarantine');
    assert.equal(outcome.decision['reason'], 'malware-quarantined');
    assert.equal(outcome.delivered, undefined);
    assert.ok(outcome.ruleResults.some((entry) => entry.startsWith('rule:k-virus=')),
      outcome.ruleResults.join(' '));
    assert.ok(!outcome.ruleResults.some((entry) => entry.startsWith('rule:k-clean=')));

    const note = downstream.messages.find((entry) => entry.rcptTo.includes('security@example.com')
      && entry.data.toString('latin1').includes('virus-held@example.com'));
    assert.ok(note, 'no notification to security@example.com');
    const noteText = note.data.toString('latin1');
    assert.match(noteText, /^Subject: malware held\r$/m);
    assert.match(noteText, /^What happened: quarantined\r$/m);
    assert.ok(noteText.includes(`k-virus.when.virus: clamd: ${CLAMAV_EICAR_NAME}`), noteText);
  });

  test('EICAR with the default clamd.action = reject: 554 from clamd, the rules never '
    + 'run', async () => {
    const outcome = await send(refusing, 'virus-refused',
      messageWithAttachment('eicar.com', Buffer.from(EICAR_STRING)));
    assert.equal(outcome.code, 554, outcome.text);
    assert.ok(outcome.text.includes(CLAMAV_EICAR_NAME), outcome.text);
    const rules = (outcome.decision['evidence'] as Record<string, unknown>)['rules'] as
      Record<string, unknown>;
    assert.equal(rules['skipped'], 'already refused');
    assert.deepEqual(outcome.ruleResults, []);
  });
});
