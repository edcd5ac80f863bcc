/*
 * End to end: malware and spam scanning with a real clamd (the repository's test signatures)
 * and a real spamd, through a real Moat, to a real internal server.
 *
 * Each scenario is an envelope and a message in, the SMTP reply, the decision and what the
 * internal server received out. The main gateway lists a dead clamd and a dead spamd address
 * before the live ones, so every scan also goes through failover. Scanner failures (stopped,
 * hanging) are tested under both configured behaviours: tempfail and deliver-marked.
 */

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { startClamd, type ClamdServer } from '../harness/clamd';
import { startDownstream, type Downstream, type DownstreamMessage } from '../harness/downstream';
import { REPO_ROOT, startGateway, type Gateway } from '../harness/gateway';
import { freePort, LOOPBACK } from '../harness/ports';
import {
  CLAMAV_EICAR_NAME, EICAR_STRING, GTUBE_STRING, messageWithAttachment, plainMessage,
  withCurrentDate, zipArchive,
} from '../harness/samples';
import { sendMail } from '../harness/smtp-talk';
import { startSpamd, type SpamdServer } from '../harness/spamd';

const CORPUS = join(REPO_ROOT, 'test', 'fixtures', 'mime');

let downstream: Downstream;
let clamd: ClamdServer;
let spamd: SpamdServer;
let gateway: Gateway;

before(async () => {
  [downstream, clamd, spamd] = await Promise.all([startDownstream(), startClamd(), startSpamd()]);
  const deadClamd = `${LOOPBACK}:${await freePort()}`;
  const deadSpamd = `${LOOPBACK}:${await freePort()}`;
  gateway = await startGateway({
    env: {
      MOAT_DOWNSTREAM: downstream.address,
      MOAT_CLAMD: `${deadClamd},${clamd.address}`,
      MOAT_SPAMD: `${deadSpamd},${spamd.address}`,
    },
    ini: '[clamd]\ntimeout = 3s\n[spamd]\ntimeout = 20s\n',
  });
});

after(async () => {
  await gateway?.stop();
  await Promise.all([downstream?.stop(), clamd?.stop(), spamd?.stop()]);
});

interface Outcome {
  code: number;
  text: string;
  delivered: DownstreamMessage | undefined;
}

/** Sends one message with a unique marker and says what happened to it. */
async function send(target: Gateway, message: string, wait = 300): Promise<Outcome> {
  const marker = `moat-scan-${Math.random().toString(36).slice(2)}`;
  const withMarker = message.replace(/\r\n\r\n/, `\r\nX-Test-Marker: ${marker}\r\n\r\n`);
  const steps = await sendMail({
    host: target.host, port: target.port, from: 'alice@sender.example',
    to: ['bob@example.com'], data: withMarker, timeoutMs: 60_000,
  });
  const final = steps.find((step) => step.step === 'message');
  assert.ok(final, `no reply to the message: ${JSON.stringify(steps)}`);
  await sleep(wait);
  const delivered = downstream.messages.find((entry) => entry.data.includes(marker));
  return { code: final.reply.code, text: final.reply.lines.join(' '), delivered };
}

interface CheckEntry { check: string; result: string; evidence?: Record<string, unknown> }

function checksOf(line: Record<string, unknown>): CheckEntry[] {
  return (line['evidence'] as { checks?: CheckEntry[] } | undefined)?.checks ?? [];
}

/** The first decision line written after the first `since` lines that satisfies `predicate`. */
function decisionSince(since: number, predicate: (line: Record<string, unknown>) => boolean) {
  return gateway.waitForDecision((line) => gateway.decisions().indexOf(line) >= since
    && predicate(line));
}

function header(message: DownstreamMessage | undefined, name: string): string[] {
  const head = message?.data.toString('latin1').split('\r\n\r\n')[0] ?? '';
  return head.replace(/\r\n[ \t]+/g, ' ').split('\r\n')
    .filter((line) => line.toLowerCase().startsWith(`${name.toLowerCase()}:`))
    .map((line) => line.slice(name.length + 1).trim());
}

describe('malware', () => {
  test('clean mail passes both scanners and is delivered unmarked', async () => {
    const since = gateway.decisions().length;
    const outcome = await send(gateway, plainMessage({ body: 'Minutes of the meeting.\r\n' }));
    assert.equal(outcome.code, 250, outcome.text);
    assert.ok(outcome.delivered);
    assert.deepEqual(header(outcome.delivered, 'X-Spam-Flag'), []);
    assert.deepEqual(header(outcome.delivered, 'X-Moat-Unscanned'), []);
    // The decision line alone tells both scanners' results, spamd's rules included.
    const line = await decisionSince(since, (entry) => entry['action'] === 'deliver');
    const scanners = Object.fromEntries(checksOf(line).map((entry) => [entry.check, entry]));
    assert.equal(scanners['clamd']?.result, 'pass');
    assert.equal(scanners['clamd']?.evidence?.['scans'], 1);
    assert.equal(scanners['spamd']?.result, 'pass');
    const rules = scanners['spamd']?.evidence?.['rules'];
    assert.ok(Array.isArray(rules) && rules.length > 0, JSON.stringify(scanners['spamd']));
    // An ordinary message writes its decision and no scanner line of its own.
    assert.equal(gateway.lines().filter((entry) => entry['msg'] === 'message scanned').length, 0);
  });

  const infected: Array<[string, () => string]> = [
    ['EICAR as a plain body', () => plainMessage({ body: `${EICAR_STRING}\r\n` })],
    ['EICAR as a base64 attachment',
      () => messageWithAttachment('eicar.com', Buffer.from(EICAR_STRING))],
    ['EICAR inside a zip', () => messageWithAttachment('files.zip', zipArchive([
      { name: 'readme.txt', content: Buffer.from('nothing\r\n') },
      { name: 'eicar.com', content: Buffer.from(EICAR_STRING) },
    ]), 'application/zip')],
    ['EICAR inside a zip inside a zip', () => messageWithAttachment('outer.zip', zipArchive([
      { name: 'inner.zip',
        content: zipArchive([{ name: 'eicar.com', content: Buffer.from(EICAR_STRING) }]) },
    ]), 'application/zip')],
  ];
  for (const [name, build] of infected) {
    test(`${name} is refused with 554 5.7.0 naming the signature`, async () => {
      const outcome = await send(gateway, build());
      assert.equal(outcome.code, 554, outcome.text);
      assert.match(outcome.text, /^5\.7\.0 .*malware found/);
      assert.ok(outcome.text.includes(CLAMAV_EICAR_NAME), outcome.text);
      assert.equal(outcome.delivered, undefined, 'an infected message reached the internal server');
      const line = await gateway.waitForDecision((entry) => entry['reason'] === 'malware-found'
        && JSON.stringify(entry).includes(CLAMAV_EICAR_NAME));
      assert.equal(line['action'], 'reject');
    });
  }

  test('a payload in a base64 attachment is also found in the decoded part', async () => {
    const since = gateway.decisions().length;
    const message = messageWithAttachment('eicar.com', Buffer.from(EICAR_STRING));
    await send(gateway, message);
    const line = await decisionSince(since, (entry) => entry['reason'] === 'malware-found');
    const clamdCheck = checksOf(line).find((entry) => entry.check === 'clamd');
    assert.ok(JSON.stringify(clamdCheck).includes(CLAMAV_EICAR_NAME), JSON.stringify(clamdCheck));
    assert.ok(Number(clamdCheck?.evidence?.['scans']) >= 2,
      'the decoded attachment was not scanned on its own');
  });

  test('a message an earlier check refused is not scanned at all', async () => {
    // A bare CR: refused by the content checks, which run before the scanners.
    const message = plainMessage({ body: `${EICAR_STRING}\r\nbare\rCR\r\n` });
    const outcome = await send(gateway, message);
    assert.equal(outcome.code, 554, outcome.text);
    assert.match(outcome.text, /^5\.6\.0 /);
    assert.doesNotMatch(outcome.text, /malware/);
    assert.equal(outcome.delivered, undefined);
    const line = await gateway.waitForDecision((entry) => entry['reason'] === 'bare-cr'
      && JSON.stringify(entry).includes('already refused'));
    assert.doesNotMatch(JSON.stringify(line), /Eicar/i, 'clamd was asked after all');
    const scanners = checksOf(line).filter((entry) => entry.check === 'clamd'
      || entry.check === 'spamd');
    assert.deepEqual(scanners, [], 'a scan ran for a refused message');
  });
});

describe('spam', () => {
  test('GTUBE is refused with 550 5.7.1', async () => {
    const outcome = await send(gateway, plainMessage({ body: `${GTUBE_STRING}\r\n` }));
    assert.equal(outcome.code, 550, outcome.text);
    assert.match(outcome.text, /^5\.7\.1 /);
    assert.equal(outcome.delivered, undefined);
    const line = await gateway.waitForDecision((entry) => entry['reason'] === 'spam-rejected');
    assert.ok(JSON.stringify(line).includes('GTUBE'), 'the decision does not name the rule');
  });
});

describe('MIME strictness (corpus test/fixtures/mime)', () => {
  const files = readdirSync(CORPUS).filter((name) => name.endsWith('.eml')).sort();
  for (const name of files) {
    const expected = name.startsWith('clean-') ? null : (name.split('--')[0] ?? name);
    test(`${name}: ${expected ? `554 5.6.0 ${expected}` : '250'}`, async () => {
      const outcome = await send(gateway,
        withCurrentDate(readFileSync(join(CORPUS, name), 'latin1')), 100);
      if (expected === null) {
        assert.equal(outcome.code, 250, outcome.text);
        return;
      }
      assert.equal(outcome.code, 554, outcome.text);
      assert.ok(outcome.text.startsWith('5.6.0 ') && outcome.text.includes(expected), outcome.text);
      assert.equal(outcome.delivered, undefined);
    });
  }
});

describe('clamd down or hanging (clamd.on_failure = tempfail)', () => {
  test('clamd stopped: 451 4.7.1, nothing delivered; after a restart the retry is '
    + 'delivered', async () => {
    await clamd.kill();
    const message = plainMessage({ body: 'Retry me.\r\n' });
    const count = downstream.messages.length;
    const refused = await send(gateway, message);
    assert.equal(refused.code, 451, refused.text);
    assert.match(refused.text, /^4\.7\.1 /);
    assert.equal(downstream.messages.length, count,
      'a message reached the internal server unscanned');

    await clamd.start();
    const retried = await send(gateway, message);
    assert.equal(retried.code, 250, retried.text);
    assert.ok(retried.delivered);
  });

  test('clamd hanging: 451 4.7.1 once clamd.timeout passes, nothing delivered', async () => {
    clamd.pause();
    try {
      const count = downstream.messages.length;
      const outcome = await send(gateway, plainMessage({ body: 'Stuck scanner.\r\n' }));
      assert.equal(outcome.code, 451, outcome.text);
      assert.equal(downstream.messages.length, count);
      const line = await gateway.waitForDecision((entry) => entry['reason'] === 'clamd-unavailable'
        && JSON.stringify(entry).includes('timeout'));
      assert.equal(line['action'], 'tempfail');
    } finally {
      clamd.resume();
    }
  });
});

describe('spamd down (spamd.on_failure = tempfail)', () => {
  test('spamd stopped: 451 4.7.1 and nothing delivered', async () => {
    await spamd.kill();
    try {
      const count = downstream.messages.length;
      const outcome = await send(gateway, plainMessage({ body: 'No spam scanner.\r\n' }));
      assert.equal(outcome.code, 451, outcome.text);
      assert.match(outcome.text, /^4\.7\.1 Spam scanner/);
      assert.equal(downstream.messages.length, count);
    } finally {
      await spamd.start();
    }
  });
});

describe('fail-open, lenient MIME and per-domain spam thresholds', () => {
  let open: Gateway;

  before(async () => {
    open = await startGateway({
      env: {
        MOAT_DOWNSTREAM: downstream.address, MOAT_CLAMD: clamd.address, MOAT_SPAMD: spamd.address,
      },
      ini: [
        '[scan]', 'mime_strictness = lenient',
        '[clamd]', 'on_failure = deliver', 'timeout = 3s',
        '[spamd]', 'on_failure = deliver', 'timeout = 20s',
        '[domain example.com]', 'spam_reject_score =', 'spam_subject_prefix = [SPAM]', '',
      ].join('\n'),
    });
  });
  after(async () => {
    await open?.stop();
  });

  test('GTUBE with no reject score for the domain is tagged, its Subject prefixed', async () => {
    const outcome = await send(open,
      plainMessage({ subject: 'Cheap', body: `${GTUBE_STRING}\r\n` }));
    assert.equal(outcome.code, 250, outcome.text);
    assert.deepEqual(header(outcome.delivered, 'X-Spam-Flag'), ['YES']);
    assert.match(header(outcome.delivered, 'X-Spam-Status')[0] ?? '', /^Yes, score=\d+.*GTUBE/);
    assert.ok(Number(header(outcome.delivered, 'X-Spam-Score')[0]) >= 100);
    assert.deepEqual(header(outcome.delivered, 'Subject'), ['[SPAM] Cheap']);
  });

  test('a forged verdict header from the sender is removed', async () => {
    const message = plainMessage({ body: 'Hello.\r\n' })
      .replace('\r\n\r\n', '\r\nX-Spam-Flag: NO\r\nX-Moat-Unscanned: nothing\r\n\r\n');
    const outcome = await send(open, message);
    assert.equal(outcome.code, 250, outcome.text);
    assert.deepEqual(header(outcome.delivered, 'X-Spam-Flag'), []);
    assert.deepEqual(header(outcome.delivered, 'X-Moat-Unscanned'), []);
  });

  test('lenient: an ambiguous structure is delivered and logged', async () => {
    const message = readFileSync(join(CORPUS, 'mime-boundary-unclosed--no-close.eml'), 'latin1');
    const outcome = await send(open, message);
    assert.equal(outcome.code, 250, outcome.text);
    assert.ok(outcome.delivered);
  });

  test('clamd stopped with on_failure = deliver: delivered, marked, counted', async () => {
    await clamd.kill();
    try {
      const outcome = await send(open, plainMessage({ body: 'Unscanned malware check.\r\n' }));
      assert.equal(outcome.code, 250, outcome.text);
      assert.match(header(outcome.delivered, 'X-Moat-Unscanned')[0] ?? '', /^malware \(clamd /);
      const warned = open.lines().some((line) => line['level'] === 'warn'
        && String(line['msg']).includes('UNSCANNED'));
      assert.ok(warned, 'no warning line for the unscanned message');
      const metrics = await open.metrics();
      assert.match(metrics, /moat_unscanned_total\{scanner="clamd",why="failure"\} [1-9]/);
    } finally {
      await clamd.start();
    }
  });

  test('spamd stopped with on_failure = deliver: delivered marked X-Moat-Unscanned: '
    + 'spam', async () => {
    await spamd.kill();
    try {
      const outcome = await send(open, plainMessage({ body: 'Unscanned spam check.\r\n' }));
      assert.equal(outcome.code, 250, outcome.text);
      assert.match(header(outcome.delivered, 'X-Moat-Unscanned')[0] ?? '', /^spam \(spamd /);
      assert.deepEqual(header(outcome.delivered, 'X-Spam-Flag'), []);
      const metrics = await open.metrics();
      assert.match(metrics, /moat_unscanned_total\{scanner="spamd",why="failure"\} [1-9]/);
    } finally {
      await spamd.start();
    }
  });
});

describe('scan limits (Heuristics.*)', () => {
  let limited: ClamdServer;
  let strictLimits: Gateway;

  before(async () => {
    limited = await startClamd({ settings: { MaxFileSize: '2K', MaxScanSize: '2K' } });
    strictLimits = await startGateway({
      env: { MOAT_DOWNSTREAM: downstream.address, MOAT_CLAMD: limited.address },
      // No local spamd either: this gateway shows what happens without one.
      ini: '[clamd]\ntimeout = 10s\n[scanners]\nlocal = off\n',
    });
  });
  after(async () => {
    await strictLimits?.stop();
    await limited?.stop();
  });

  test('a file over the scan limits is a finding: 554 5.7.0 naming Heuristics.Limits', async () => {
    const big = Buffer.alloc(16 * 1024, 'clean but large ');
    const outcome = await send(strictLimits, messageWithAttachment('big.bin', big));
    assert.equal(outcome.code, 554, outcome.text);
    assert.match(outcome.text, /^5\.7\.0 .*Heuristics\.Limits\.Exceeded/);
    assert.equal(outcome.delivered, undefined);
    await strictLimits.waitForDecision((entry) => entry['reason'] === 'scan-limit-exceeded');
  });

  test('without spamd configured, mail is marked as not spam-scanned', async () => {
    const outcome = await send(strictLimits, plainMessage({ body: 'small\r\n' }));
    assert.equal(outcome.code, 250, outcome.text);
    assert.deepEqual(header(outcome.delivered, 'X-Moat-Unscanned'),
      ['spam (spamd not configured)']);
  });
});
