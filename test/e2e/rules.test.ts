/*
 * End to end: content-control rules over real SMTP.
 *
 * A real Moat with MOAT_RULES_DIR pointing at a temporary folder, a real SMTP server as the
 * internal mailbox server, and a raw client. Each condition kind is exercised by one rule that
 * adds an `X-Rule-Hit: <id>` header, so the delivered bytes show which rules matched. Then the
 * actions (reject, tempfail, quarantine, tag, headers, redirect, copy, notify), monitor mode,
 * expiry, precedence, the decision line and metrics, live reload of a good and a bad set, and
 * a bad set at start-up.
 */

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startDownstream, type Downstream } from '../harness/downstream';
import { REPO_ROOT, startGateway, type Gateway } from '../harness/gateway';
import { freePort } from '../harness/ports';
import { makeTempDir } from '../harness/process';
import { markerRule } from '../harness/rules';
import { messageWithAttachment, plainMessage, zipArchive } from '../harness/samples';
import { sendMail } from '../harness/smtp-talk';

const MAIN = join(REPO_ROOT, 'dist', 'src', 'runtime', 'main.js');

const CONDITION_RULES = `rules:
${markerRule('c-sender-domain', 'sender: { domain: partner.example }')}
${markerRule('c-recipient-list', 'recipient: { list: vips }')}
${markerRule('c-client-network', 'client: { network: [127.0.0.0/8] }')}
${markerRule('c-header-regex', 'header: { name: X-Campaign, regex: "^spring-\\\\d+$" }')}
${markerRule('c-header-exists', 'header: { name: X-Priority, exists: true }')}
${markerRule('c-header-equals', 'header: { name: X-Class, equals: [internal only] }')}
${markerRule('c-header-contains', 'header: { name: X-Mailer, contains: [bulkmail] }')}
${markerRule('c-sender-glob', 'sender: { glob: ["*@*.mailer.example"] }')}
${markerRule('c-recipient-every', 'recipient: { glob: ["team-*@example.com"], every: true }')}
${markerRule('c-client-elsewhere', 'client: { network: [198.51.100.0/24] }')}
${markerRule('c-body-html', 'body: { regex: "wire the funds to account \\\\d+" }')}
${markerRule('c-subject-keywords', 'subject: { keywords: [confidential, secret] }')}
${markerRule('c-body-dictionary', 'body: { list: insider-words, min_count: 2 }')}
${markerRule('c-detector-iban', 'detector: { name: iban }')}
${markerRule('c-attachment-in-zip', 'attachment: { name: "*.js" }')}
${markerRule('c-type-mismatch', 'attachment: { type_mismatch: true }')}
${markerRule('c-encrypted', 'attachment: { encrypted: true }')}
${markerRule('c-macros', 'attachment: { macros: true }')}
${markerRule('c-size', 'size: { over: 20k }')}
${markerRule('c-attachment-count', 'attachment_count: { min: 2 }')}
${markerRule('c-check-result',
    'all:\n  - check: { name: dirty-data, result: pass }\n  - subject: { contains: check-me }')}
${markerRule('c-not-any', 'not:\n  any:\n    - sender: { domain: partner.example }\n'
    + '    - subject: { contains: zzz-never }')}
`;

const ACTION_RULES = `rules:
  - id: a-reject
    description: refuse with our own text
    owner: test@example.com
    mode: enforce
    direction: any
    order: 10
    when: { subject: { contains: please-reject } }
    actions:
      - reject: "Policy 7 forbids this"
  - id: a-tempfail
    description: defer
    owner: test@example.com
    mode: enforce
    direction: any
    order: 10
    when: { subject: { contains: please-defer } }
    actions:
      - tempfail: { text: "Come back later", code: 450, enhanced: 4.7.0 }
  - id: a-quarantine
    description: hold
    owner: test@example.com
    mode: enforce
    direction: any
    order: 10
    when: { subject: { contains: please-hold } }
    actions:
      - quarantine: held for review
  - id: a-tag
    description: tag and headers
    owner: test@example.com
    mode: enforce
    direction: any
    order: 10
    when: { subject: { contains: please-tag } }
    actions:
      - tag_subject: "[TAGGED]"
      - add_header: { name: X-Policy, value: tagged }
      - remove_header: X-Internal-Secret
  - id: a-redirect
    description: redirect
    owner: test@example.com
    mode: enforce
    direction: any
    order: 10
    when: { subject: { contains: please-redirect } }
    actions:
      - redirect: review@example.com
  - id: a-copy-notify
    description: archive copy and a note to compliance
    owner: test@example.com
    mode: enforce
    direction: outbound
    order: 10
    when: { detector: { name: payment_card } }
    actions:
      - copy_to: archive@example.com
      - notify: { to: compliance@example.com, subject: "card number sent" }
  - id: a-monitor
    description: would refuse
    owner: test@example.com
    mode: monitor
    direction: any
    order: 10
    when: { subject: { contains: please-monitor } }
    actions:
      - reject: would refuse
  - id: a-expired
    description: expired long ago
    owner: test@example.com
    mode: enforce
    direction: any
    order: 10
    expires: 2020-01-31
    when: { subject: { contains: please-expired } }
    actions:
      - reject: expired rule
  - id: d-deliver
    description: stop evaluating here
    owner: test@example.com
    mode: enforce
    direction: any
    order: 10
    when: { subject: { contains: please-deliver } }
    actions:
      - deliver: true
  - id: d-after-reject
    description: after the deliver rule, never reached
    owner: test@example.com
    mode: enforce
    direction: any
    order: 15
    when: { subject: { contains: please-deliver } }
    actions:
      - reject: must not happen
  - id: d-after-monitor
    description: monitor rules still run after a final rule
    owner: test@example.com
    mode: monitor
    direction: any
    order: 15
    when: { subject: { contains: please-deliver } }
    actions:
      - reject: would refuse
  - id: q-held-tagged
    description: quarantine with a tag, headers and a redirect
    owner: test@example.com
    mode: enforce
    direction: any
    order: 10
    when: { subject: { contains: please-keep-tagged } }
    actions:
      - quarantine: held with a tag
      - tag_subject: "[HELD]"
      - add_header: { name: X-Held, value: "yes" }
      - remove_header: X-Remove-Me
      - redirect: review@example.com
  - id: m-regex-card
    description: a regex (not a detector) that matches a card number and an IBAN
    owner: test@example.com
    mode: enforce
    direction: any
    order: 10
    when:
      all:
        - subject: { contains: please-mask }
        - body: { regex: "(card|account) [A-Z0-9 ]+" }
    actions:
      - quarantine: account details
      - notify: { to: masked@example.com, subject: "account details held" }
  - id: p-first-tag
    description: precedence, first
    owner: test@example.com
    mode: enforce
    direction: any
    order: 20
    when: { subject: { contains: precedence } }
    actions:
      - add_header: { name: X-Seen, value: p-first-tag }
  - id: p-second-reject
    description: precedence, the final one
    owner: test@example.com
    mode: enforce
    direction: any
    order: 30
    when: { subject: { contains: precedence } }
    actions:
      - reject: second rule decides
  - id: p-third-quarantine
    description: precedence, never reached
    owner: test@example.com
    mode: enforce
    direction: any
    order: 40
    when: { subject: { contains: precedence } }
    actions:
      - quarantine: true
`;

let downstream: Downstream;
let gateway: Gateway;
let rulesDir: string;

before(async () => {
  downstream = await startDownstream();
  rulesDir = makeTempDir('moat-rules-');
  mkdirSync(join(rulesDir, 'lists'));
  writeFileSync(join(rulesDir, 'lists', 'vips.txt'), '# VIP recipients\nceo@example.com\n');
  writeFileSync(join(rulesDir, 'lists', 'insider-words.txt'),
    'merger\nproject falcon\nacquisition\n');
  writeFileSync(join(rulesDir, 'conditions.yaml'), CONDITION_RULES);
  writeFileSync(join(rulesDir, 'actions.yaml'), ACTION_RULES);
  gateway = await startGateway({
    env: { MOAT_DOWNSTREAM: downstream.address, MOAT_RULES_DIR: rulesDir },
    ini: '[rules]\nreload_delay = 100ms\n',
  });
});

after(async () => {
  await gateway?.stop();
  await downstream?.stop();
});

async function send(data: string, options: { from?: string; to?: string[] } = {}) {
  const before = downstream.messages.length;
  const steps = await sendMail({
    host: gateway.host, port: gateway.port, from: options.from ?? 'alice@sender.example',
    to: options.to ?? ['bob@example.com'], data,
  });
  const reply = steps.find((step) => step.step === 'message')?.reply;
  return { reply, text: reply?.lines.join(' ') ?? '', before };
}

async function deliveredHits(
  data: string, options: { from?: string; to?: string[] } = {},
): Promise<string[]> {
  const { reply, before } = await send(data, options);
  assert.equal(reply?.code, 250, JSON.stringify(reply));
  const messages = await downstream.waitForMessages(before + 1);
  const text = messages.at(-1)?.data.toString('latin1') ?? '';
  return [...text.matchAll(/^X-Rule-Hit: (\S+)/gm)].map((match) => match[1] ?? '');
}

describe('conditions over SMTP', () => {
  test('envelope, client, header, subject and check conditions', async () => {
    const hits = await deliveredHits(
      'From: <a@partner.example>\r\nTo: <ceo@example.com>\r\nSubject: Confidential: check-me\r\n'
      + 'X-Campaign: spring-2027\r\nX-Priority: 1\r\n\r\nhello\r\n',
      { from: 'a@partner.example', to: ['ceo@example.com'] });
    for (const id of ['c-sender-domain', 'c-recipient-list', 'c-client-network', 'c-header-regex',
      'c-header-exists', 'c-subject-keywords', 'c-check-result']) {
      assert.ok(hits.includes(id), `${id} did not fire: ${hits.join(',')}`);
    }
    assert.ok(!hits.includes('c-not-any'));
    assert.ok(!hits.includes('c-body-dictionary'));
    // From loopback, not from 198.51.100.0/24.
    assert.ok(!hits.includes('c-client-elsewhere'));
  });

  test('header equals and contains, a sender glob, every recipient', async () => {
    const message = 'From: <news@eu.mailer.example>\r\nSubject: weekly\r\n'
      + 'X-Class:  Internal Only \r\nX-Mailer: SuperBulkMail 9\r\n\r\nhello\r\n';
    const hits = await deliveredHits(message,
      { from: 'news@eu.mailer.example', to: ['team-a@example.com', 'team-b@example.com'] });
    for (const id of ['c-header-equals', 'c-header-contains', 'c-sender-glob',
      'c-recipient-every']) {
      assert.ok(hits.includes(id), `${id} did not fire: ${hits.join(',')}`);
    }
    const others = await deliveredHits('From: <a@sender.example>\r\nSubject: weekly\r\n'
      + 'X-Class: internal only, mostly\r\nX-Mailer: plain\r\n\r\nhello\r\n',
    { from: 'a@sender.example', to: ['team-a@example.com', 'bob@example.com'] });
    for (const id of ['c-header-equals', 'c-header-contains', 'c-sender-glob',
      'c-recipient-every']) {
      assert.ok(!others.includes(id), `${id} fired: ${others.join(',')}`);
    }
  });

  test('body text from an HTML part (tags, entities and scripts removed)', async () => {
    const html = '<html><head><style>b { color: red }</style></head><body>'
      + '<p>Please <b>wire</b> the&nbsp;funds to account <i>4711</i>.</p>'
      + '<script>document.write("x")</script></body></html>';
    const message = 'From: <a@sender.example>\r\nSubject: html\r\nMIME-Version: 1.0\r\n'
      + 'Content-Type: multipart/alternative; boundary="alt-1"\r\n\r\n'
      + '--alt-1\r\nContent-Type: text/html; charset=utf-8\r\n'
      + `Content-Transfer-Encoding: base64\r\n\r\n${Buffer.from(html).toString('base64')}\r\n`
      + '--alt-1--\r\n';
    const hits = await deliveredHits(message);
    assert.ok(hits.includes('c-body-html'), hits.join(','));
    // The raw HTML never reads "wire the funds": only its text does.
    const plain = await deliveredHits(plainMessage({ subject: 'html',
      body: '<b>wire</b> the funds to account 4711\r\n' }));
    assert.ok(!plain.includes('c-body-html'), plain.join(','));
  });

  test('body dictionary with a minimum count, and an IBAN detector', async () => {
    const hits = await deliveredHits(plainMessage({
      subject: 'notes',
      body: 'The merger talks and Project  Falcon go on.\r\n'
        + 'Pay to DE89 3704 0044 0532 0130 00 please.\r\n',
    }));
    assert.ok(hits.includes('c-body-dictionary'), hits.join(','));
    assert.ok(hits.includes('c-detector-iban'), hits.join(','));
    const fewer = await deliveredHits(plainMessage({
      subject: 'notes', body: 'Only the merger.\r\nDE89 3704 0044 0532 0130 01\r\n',
    }));
    assert.ok(!fewer.includes('c-body-dictionary'));
    assert.ok(!fewer.includes('c-detector-iban'), 'a bad IBAN checksum must not match');
  });

  test('attachments: a name inside a zip, a disguised type, an encrypted archive, '
    + 'macros', async () => {
    const zipped = zipArchive([{ name: 'tools/run.js', content: Buffer.from('alert(1)\n') }]);
    let hits = await deliveredHits(messageWithAttachment('bundle.zip', zipped, 'application/zip'));
    assert.ok(hits.includes('c-attachment-in-zip'), hits.join(','));
    assert.ok(!hits.includes('c-encrypted'));

    const png = Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex');
    hits = await deliveredHits(messageWithAttachment('report.pdf', png, 'application/pdf'));
    assert.ok(hits.includes('c-type-mismatch'), hits.join(','));

    const encrypted = zipArchive([{ name: 'secret.txt', content: Buffer.from('x') }],
      { stored: true });
    encrypted.writeUInt16LE(1, 6); // local header: encrypted
    encrypted.writeUInt16LE(1, encrypted.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02])) + 8);
    hits = await deliveredHits(messageWithAttachment('secret.zip', encrypted, 'application/zip'));
    assert.ok(hits.includes('c-encrypted'), hits.join(','));

    const docm = zipArchive([
      { name: '[Content_Types].xml', content: Buffer.from('<Types/>') },
      { name: 'word/document.xml', content: Buffer.from('<w:document/>') },
      { name: 'word/vbaProject.bin', content: Buffer.from('VBA') },
    ]);
    hits = await deliveredHits(messageWithAttachment('budget.docm', docm,
      'application/vnd.ms-word.document.macroEnabled.12'));
    assert.ok(hits.includes('c-macros'), hits.join(','));
    assert.ok(!hits.includes('c-type-mismatch'), hits.join(','));
  });

  test('message size and attachment count', async () => {
    const big = 'x'.repeat(70) + '\r\n';
    const hits = await deliveredHits(plainMessage({ subject: 'big', body: big.repeat(400) }));
    assert.ok(hits.includes('c-size'), hits.join(','));
    const small = await deliveredHits(plainMessage({ subject: 'small' }));
    assert.ok(!small.includes('c-size'));
    assert.ok(!small.includes('c-attachment-count'));
    const file = (name: string): string => `--f1\r\nContent-Type: text/plain; name="${name}"\r\n`
      + `Content-Disposition: attachment; filename="${name}"\r\n\r\n${name} content\r\n`;
    const two = 'From: <a@sender.example>\r\nSubject: two files\r\nMIME-Version: 1.0\r\n'
      + 'Content-Type: multipart/mixed; boundary="f1"\r\n\r\n'
      + `--f1\r\nContent-Type: text/plain\r\n\r\nsee both\r\n${file('a.txt')}${file('b.txt')}`
      + '--f1--\r\n';
    const counted = await deliveredHits(two);
    assert.ok(counted.includes('c-attachment-count'), counted.join(','));
  });
});

describe('actions over SMTP', () => {
  test('reject answers 550 with the rule text; nothing is delivered; the line names '
    + 'the rule', async () => {
    const { reply, text, before } = await send(plainMessage({ subject: 'please-reject now' }));
    assert.equal(reply?.code, 550);
    assert.match(text, /^5\.7\.1 Policy 7 forbids this/);
    await sleep(200);
    assert.equal(downstream.messages.length, before);
    const line = await gateway.waitForDecision((entry) => entry['reason'] === 'rule-reject');
    const rules = (line['evidence'] as Record<string, unknown>)['rules'] as Record<string, unknown>;
    assert.deepEqual(rules['fired'], ['a-reject(enforce:reject)']);
    assert.match(String(rules['version']), /^[0-9a-f]{12}$/);
  });

  test('tempfail answers the rule\'s own 4xx', async () => {
    const { reply, text } = await send(plainMessage({ subject: 'please-defer' }));
    assert.equal(reply?.code, 450);
    assert.match(text, /^4\.7\.0 Come back later/);
  });

  test('quarantine is the decision; its line names the rules like every other', async () => {
    await send(plainMessage({ subject: 'please-hold', messageId: '<hold@example.org>' }));
    const line = await gateway.waitForDecision((entry) => entry['action'] === 'quarantine'
      && JSON.stringify(entry).includes('rule:a-quarantine='));
    assert.equal(line['reason'], 'rule-quarantine');
    const evidence = line['evidence'] as Record<string, unknown>;
    const rules = evidence['rules'] as Record<string, unknown> | undefined;
    assert.deepEqual(rules?.['fired'], ['a-quarantine(enforce:quarantine)'], JSON.stringify(line));
    assert.match(String(rules?.['version']), /^[0-9a-f]{12}$/);
    assert.equal((evidence['detail'] as Record<string, unknown>)['rule'], 'a-quarantine');
  });

  test('tag_subject, add_header and remove_header change the delivered copy', async () => {
    const { before } = await send('From: <a@sender.example>\r\nSubject: please-tag me\r\n'
      + 'X-Internal-Secret: 42\r\n\r\nbody\r\n');
    const [message] = (await downstream.waitForMessages(before + 1)).slice(-1);
    const text = message?.data.toString('latin1') ?? '';
    assert.match(text, /^Subject: \[TAGGED\] please-tag me\r$/m);
    assert.equal((text.match(/^Subject:/gm) ?? []).length, 1);
    assert.match(text, /^X-Policy: tagged\r$/m);
    assert.doesNotMatch(text, /X-Internal-Secret/);
  });

  test('redirect replaces the recipients', async () => {
    const { before } = await send(plainMessage({ subject: 'please-redirect' }),
      { to: ['bob@example.com'] });
    const [message] = (await downstream.waitForMessages(before + 1)).slice(-1);
    assert.deepEqual(message?.rcptTo, ['review@example.com']);
  });

  test('outbound card number: delivered, copied to the archive, compliance notified '
    + '(masked)', async () => {
    // 127.0.0.1 is an internal network and example.com an accepted domain: outbound.
    const { reply, before } = await send(
      plainMessage({ subject: 'order', body: 'card 4111-1111-1111-1111\r\n' }),
      { from: 'alice@example.com', to: ['bob@example.com'] });
    assert.equal(reply?.code, 250);
    const messages = (await downstream.waitForMessages(before + 3)).slice(before);
    const copy = messages.find((entry) => entry.rcptTo.includes('archive@example.com'));
    const note = messages.find((entry) => entry.rcptTo.includes('compliance@example.com'));
    assert.ok(messages.some((entry) => entry.rcptTo.includes('bob@example.com')));
    assert.match(copy?.data.toString('latin1') ?? '',
      /^X-Moat-Rule-Copy: a-copy-notify; version=/m);
    assert.equal(note?.mailFrom, '');
    const noteText = note?.data.toString('latin1') ?? '';
    assert.match(noteText, /^Subject: card number sent/m);
    assert.match(noteText, /\*{12}1111/);
    assert.doesNotMatch(noteText, /4111-1111-1111-1111|4111111111111111/);
  });

  test('monitor mode only records what it would have done', async () => {
    const { reply } = await send(plainMessage({ subject: 'please-monitor' }));
    assert.equal(reply?.code, 250);
    const line = await gateway.waitForDecision((entry) => {
      const rules = (entry['evidence'] as Record<string, unknown> | undefined)?.['rules'] as
        Record<string, unknown> | undefined;
      return Array.isArray(rules?.['monitored'])
        && (rules['monitored'] as string[]).includes('a-monitor(monitor:reject)');
    });
    assert.equal(line['event'], 'delivery');
    const metrics = await gateway.metrics();
    assert.match(metrics,
      /moat_rule_hits_total\{rule="a-monitor",mode="monitor",action="reject"\} 1/);
  });

  test('deliver stops the rules: later enforce rules neither match nor act; monitor rules '
    + 'still record', async () => {
    const { reply, before } = await send(plainMessage({ subject: 'please-deliver now' }));
    assert.equal(reply?.code, 250, 'd-after-reject would have refused the message');
    const [message] = (await downstream.waitForMessages(before + 1)).slice(-1);
    // c-client-network (order 500) holds for every message from loopback, but comes after.
    assert.doesNotMatch(message?.data.toString('latin1') ?? '', /^X-Rule-Hit:/m);
    const line = await gateway.waitForDecision((entry) => {
      const rules = (entry['evidence'] as Record<string, unknown> | undefined)?.['rules'] as
        Record<string, unknown> | undefined;
      return Array.isArray(rules?.['fired'])
        && (rules['fired'] as string[]).includes('d-deliver(enforce:deliver)');
    });
    const rules = (line['evidence'] as Record<string, unknown>)['rules'] as
      Record<string, unknown>;
    assert.deepEqual(rules['fired'], ['d-deliver(enforce:deliver)']);
    assert.deepEqual(rules['monitored'], ['d-after-monitor(monitor:reject)']);
  });

  test('quarantine with a tag, headers and a redirect: the record holds the tag and the '
    + 'added headers, the stored message is as received, the redirect is its '
    + 'envelope', async () => {
    const { reply } = await send('From: <a@sender.example>\r\nSubject: please-keep-tagged\r\n'
      + 'X-Remove-Me: still here\r\n\r\nbody\r\n', { to: ['bob@example.com'] });
    assert.equal(reply?.code, 250);
    const line = await gateway.waitForDecision((entry) => entry['action'] === 'quarantine'
      && JSON.stringify(entry).includes('rule:q-held-tagged'));
    const id = String((line['evidence'] as Record<string, unknown>)['quarantine_id']);
    const folder = join(gateway.stateDir, 'quarantine');
    const record = JSON.parse(readFileSync(join(folder, `${id}.json`), 'utf8')) as {
      addedHeaders: Array<[string, string]>; envelope: { to: string[] };
    };
    assert.deepEqual(record.envelope.to, ['review@example.com']);
    assert.ok(record.addedHeaders.some(([name, value]) =>
      name === 'Subject' && value === '[HELD] please-keep-tagged'), JSON.stringify(record));
    assert.ok(record.addedHeaders.some(([name, value]) => name === 'X-Held' && value === 'yes'));
    const stored = readFileSync(join(folder, `${id}.eml`), 'latin1');
    assert.match(stored, /^Subject: please-keep-tagged\r$/m);
    assert.match(stored, /^X-Remove-Me: still here\r$/m);
    assert.doesNotMatch(stored, /X-Held|\[HELD\]/);
  });

  test('a regex that matches a card number or an IBAN is masked in the decision line, the '
    + 'quarantine record and the notification', async () => {
    const { reply, before } = await send(plainMessage({ subject: 'please-mask',
      body: 'Use account DE89 3704 0044 0532 0130 00 or card 4111 1111 1111 1111.\r\n' }));
    assert.equal(reply?.code, 250);
    const [note] = (await downstream.waitForMessages(before + 1)).slice(before);
    assert.deepEqual(note?.rcptTo, ['masked@example.com']);
    const line = await gateway.waitForDecision((entry) => entry['action'] === 'quarantine'
      && JSON.stringify(entry).includes('rule:m-regex-card'));
    const id = String((line['evidence'] as Record<string, unknown>)['quarantine_id']);
    const record = readFileSync(join(gateway.stateDir, 'quarantine', `${id}.json`), 'utf8');
    const noteText = note?.data.toString('latin1') ?? '';
    assert.match(noteText, /account DE89 \*{4} \*{4} \*{4} \*{2}30 00/);
    assert.match(JSON.stringify(line), /account DE89 \*{4} \*{4}/);
    for (const [what, text] of [['notification', noteText], ['decision line',
      JSON.stringify(line)], ['quarantine record', record]] as const) {
      assert.doesNotMatch(text, /3704 0044|4111 1111 1111|0532 0130/, `${what} shows a number`);
    }
  });

  test('an expired rule no longer runs', async () => {
    const { reply } = await send(plainMessage({ subject: 'please-expired' }));
    assert.equal(reply?.code, 250);
  });

  test('precedence: the first final rule in order decides; earlier non-final actions are '
    + 'kept', async () => {
    const { reply, text } = await send(plainMessage({ subject: 'precedence test' }));
    assert.equal(reply?.code, 550);
    assert.match(text, /second rule decides/);
    const line = await gateway.waitForDecision((entry) => {
      const rules = (entry['evidence'] as Record<string, unknown> | undefined)?.['rules'] as
        Record<string, unknown> | undefined;
      return Array.isArray(rules?.['fired'])
        && (rules['fired'] as string[]).includes('p-second-reject(enforce:reject)');
    });
    const fired = ((line['evidence'] as Record<string, unknown>)['rules'] as
      Record<string, unknown>)['fired'];
    assert.deepEqual(fired, ['p-first-tag(enforce:other)', 'p-second-reject(enforce:reject)']);
  });
});

describe('live reload', () => {
  test('a good set is picked up; a bad set is refused whole and the old one keeps '
    + 'running', async () => {
    writeFileSync(join(rulesDir, 'reload.yaml'), `rules:
  - id: r-new
    description: added at run time
    owner: test@example.com
    mode: enforce
    direction: any
    when: { subject: { contains: reload-probe } }
    actions:
      - reject: new rule active
`);
    await waitForLine((line) => line['msg'] === 'rule set reloaded');
    let result = await send(plainMessage({ subject: 'reload-probe' }));
    assert.equal(result.reply?.code, 550);
    assert.match(result.text, /new rule active/);

    // A bad file: unknown key and a bad regex. Refused, logged with positions, counted.
    writeFileSync(join(rulesDir, 'broken.yaml'), `rules:
  - id: r-broken
    description: bad
    owner: test@example.com
    mode: enforce
    direction: any
    when: { subject: { regex: "([a-z" } }
    actoins: []
`);
    const problem = await waitForLine(
      (line) => String(line['msg']).startsWith('rule problem: broken.yaml:'));
    assert.match(String(problem['problem']), /broken\.yaml:\d+:\d+: /);
    const metrics = await gateway.metrics();
    assert.match(metrics, /moat_rules_reloads_total\{outcome="refused"\} [1-9]/);
    result = await send(plainMessage({ subject: 'reload-probe' }));
    assert.equal(result.reply?.code, 550, 'the previous set must keep running');
  });
});

async function waitForLine(
  predicate: (line: Record<string, unknown>) => boolean,
): Promise<Record<string, unknown>> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const found = gateway.lines().find(predicate);
    if (found) return found;
    await sleep(50);
  }
  throw new Error('expected log line did not appear');
}

test('a bad rule set stops start-up with exit 2 and one line per problem', async () => {
  const [port, clamd, spamd] = [await freePort(), await freePort(), await freePort()];
  const dir = makeTempDir('moat-rules-bad-');
  writeFileSync(join(dir, 'bad.yaml'), 'rules:\n  - id: Bad_Id\n    description: x\n    owner: y\n'
    + '    mode: enforce\n    direction: sideways\n    when: { body: { regex: "(" } }\n'
    + '    actions: [ { reject: no } ]\n');
  const run = spawnSync(process.execPath, [MAIN], {
    env: { ...process.env, MOAT_ROOT: REPO_ROOT, MOAT_RULES_DIR: dir,
      MOAT_STATE_DIR: makeTempDir('moat-st-'),
      MOAT_LISTEN: `127.0.0.1:${port}`, MOAT_CONFIG_DIR: makeTempDir('moat-cf-'),
      MOAT_CLAMD: `127.0.0.1:${clamd}`, MOAT_SPAMD: `127.0.0.1:${spamd}` },
    encoding: 'utf8', timeout: 20_000,
  });
  assert.equal(run.status, 2, run.stderr);
  const lines = run.stderr.trim().split('\n')
    .filter((line) => line.startsWith('moat: configuration error: '));
  assert.equal(lines.length, 3, run.stderr);
  assert.match(lines[0] ?? '', /bad\.yaml:2:9: rule id "Bad_Id" is not allowed/);
  assert.match(lines[1] ?? '',
    /bad\.yaml:6:16: direction "sideways" is not known; expected one of inbound, outbound, any/);
  assert.match(lines[2] ?? '', /bad\.yaml:7:28: bad regular expression/);
});
