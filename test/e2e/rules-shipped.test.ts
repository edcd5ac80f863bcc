/*
 * End to end: every case of rules/tests/shipped.yaml, sent through a real gateway over SMTP.
 *
 * `moat rules test` runs the cases with the rules' own MIME reader; the gateway reads the
 * scanning stage's parse instead (docs/rules.md, "Limits"). This test holds the gateway to
 * the same answers: for each case, the rules that fire (enforce and monitor) must be exactly
 * those `moat rules test` finds, the case's expectations (fire, not_fire, final) must hold,
 * and every non-final action planned (subject tag, added header) must be on the delivered copy.
 *
 * The gateway runs the shipped rules folder unchanged, with the test file's accepted domains
 * and internal networks, and each case's client is presented with the PROXY protocol. Moat
 * relays only to its accepted domains, so the domains of the cases' outside recipients
 * (merchant.example ...) are accepted too; no shipped rule reads the recipient's domain.
 * Cases that give other checks' results, a date or a forced direction cannot be reproduced
 * over SMTP and must live in another test file.
 */

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { BlockList } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { parse } from 'yaml';
import { loadRuleSet } from '../../src/rules/loader';
import { DEFAULT_CLIENT_IP, runRuleTests, type CaseResult } from '../../src/rules/test-runner';
import { startDns, type DnsServer } from '../harness/dns';
import { startDownstream, type Downstream } from '../harness/downstream';
import { REPO_ROOT, startGateway, type Gateway } from '../harness/gateway';
import { proxyV1Header, sendMail } from '../harness/smtp-talk';

const RULES_DIR = join(REPO_ROOT, 'rules');
const TEST_FILE = join(RULES_DIR, 'tests', 'shipped.yaml');

interface ShippedCase {
  name: string;
  message: string;
  envelope: { from?: string; to: string[]; client?: string };
  checks?: unknown;
  now?: unknown;
  direction?: unknown;
  expect: { fire?: string[]; not_fire?: string[]; final?: string; actions?: string[] };
}

interface ShippedFile {
  accepted_domains: string[];
  internal_networks: string[];
  cases: ShippedCase[];
}

const shipped = parse(readFileSync(TEST_FILE, 'utf8')) as ShippedFile;

let dns: DnsServer;
let downstream: Downstream;
let gateway: Gateway;
let byName: Map<string, CaseResult>;

before(async () => {
  const set = loadRuleSet(RULES_DIR);
  const internal = new BlockList();
  for (const cidr of shipped.internal_networks) {
    const [address = '', bits = '32'] = cidr.split('/');
    internal.addSubnet(address, Number(bits), 'ipv4');
  }
  const run = runRuleTests(set, {
    acceptedDomains: new Set(shipped.accepted_domains), internalNetworks: internal,
    maxTextChars: 2_000_000,
  });
  assert.deepEqual(run.problems, []);
  byName = new Map(run.cases.map((result) => [result.name, result]));

  const recipientDomains = shipped.cases.flatMap((entry) => entry.envelope.to)
    .map((address) => address.slice(address.lastIndexOf('@') + 1).toLowerCase());
  const domains = [...new Set([...shipped.accepted_domains, ...recipientDomains])];
  [dns, downstream] = await Promise.all([startDns(), startDownstream()]);
  gateway = await startGateway({
    env: {
      MOAT_DOWNSTREAM: downstream.address, MOAT_DNS_SERVERS: dns.address,
      MOAT_PROXY_HOSTS: '127.0.0.1', MOAT_DOMAINS: domains.join(','), MOAT_RULES_DIR: RULES_DIR,
    },
    ini: ['[smtp]', `internal_networks = ${shipped.internal_networks.join(', ')}`,
      '[dns]', 'timeout = 300ms', 'attempts = 1', ''].join('\n'),
  });
});

after(async () => {
  await gateway?.stop();
  await Promise.all([downstream?.stop(), dns?.stop()]);
});

/** What the gateway decided for one case: the rules that fired and the rules' final word. */
function rulesOf(line: Record<string, unknown>): { fired: string[]; final: string } {
  const evidence = line['evidence'] as { results?: string[]; rules?: { fired?: string[] } };
  const fired = (evidence.results ?? []).filter((entry) => entry.startsWith('rule:'))
    .map((entry) => entry.slice('rule:'.length, entry.indexOf('=')));
  const finals: Record<string, string> = {
    'rule-reject': 'reject', 'rule-tempfail': 'tempfail', 'rule-quarantine': 'quarantine',
  };
  const byDeliver = (evidence.rules?.fired ?? []).some((entry) => entry.endsWith(':deliver)'));
  const final = finals[String(line['reason'])] ?? (byDeliver ? 'deliver' : 'none');
  return { fired: [...new Set(fired)].sort(), final };
}

test('the test file holds only cases an SMTP run can reproduce, with unique names', () => {
  for (const entry of shipped.cases) {
    assert.ok(entry.checks === undefined && entry.now === undefined
      && entry.direction === undefined, `${entry.name}: uses checks, now or direction`);
  }
  assert.equal(new Set(shipped.cases.map((entry) => entry.name)).size, shipped.cases.length);
});

for (const entry of shipped.cases) {
  test(`over SMTP: ${entry.name}`, async () => {
    const expected = byName.get(entry.name);
    assert.ok(expected?.outcome, 'moat rules test did not run this case');
    assert.ok(expected.passed, expected.failures.join('; '));
    const raw = readFileSync(join(RULES_DIR, 'tests', entry.message));

    // Send it as the case describes, and find its decision line (cases run one at a time).
    const seen = new Set(gateway.decisions());
    const deliveredBefore = downstream.messages.length;
    const steps = await sendMail({
      host: gateway.host, port: gateway.port, from: entry.envelope.from ?? '',
      to: entry.envelope.to, data: raw,
      proxy: proxyV1Header({ sourceAddress: entry.envelope.client ?? DEFAULT_CLIENT_IP,
        sourcePort: 40000, destinationAddress: '192.0.2.25', destinationPort: 25 }),
    });
    const refused = steps.filter((step) => step.step.startsWith('RCPT') && step.reply.code >= 400);
    assert.deepEqual(refused, [], 'a recipient was refused');
    const line = await gateway.waitForDecision((candidate) => !seen.has(candidate)
      && (candidate['event'] === 'message' || candidate['event'] === 'delivery'));
    const gatewayRules = rulesOf(line);

    // The same rules as `moat rules test`, and the case's own expectations.
    const outcome = expected.outcome;
    const inProcess = [...outcome.fired, ...outcome.monitored]
      .map((report) => report.rule.id).sort();
    assert.deepEqual(gatewayRules.fired, inProcess, JSON.stringify(line));
    for (const id of entry.expect.fire ?? []) assert.ok(gatewayRules.fired.includes(id), id);
    for (const id of entry.expect.not_fire ?? []) assert.ok(!gatewayRules.fired.includes(id), id);
    assert.equal(gatewayRules.final, outcome.final?.action.kind ?? 'none');
    if (entry.expect.final) assert.equal(gatewayRules.final, entry.expect.final);

    // Non-final actions are on the delivered copy.
    if (gatewayRules.final !== 'none' && gatewayRules.final !== 'deliver') return;
    const delivered = downstream.messages.slice(deliveredBefore)
      .find((message) => entry.envelope.to.every((to) => message.rcptTo.includes(to)));
    assert.ok(delivered, 'the message was not delivered');
    const head = delivered.data.toString('latin1').split('\r\n\r\n')[0] ?? '';
    for (const { action } of outcome.actions) {
      if (action.kind === 'tag_subject') {
        assert.match(head, new RegExp(`^Subject: ${literally(action.tag)} `, 'm'));
      }
      if (action.kind === 'add_header') {
        assert.ok(head.split('\r\n').includes(`${action.name}: ${action.value}`), head);
      }
    }
  });
}

function literally(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
