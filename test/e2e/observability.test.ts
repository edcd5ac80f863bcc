/*
 * End to end: what an operator's Prometheus and Grafana see while real mail flows.
 *
 * One real Moat with every dependency real and on loopback (the internal server, a DNS server,
 * Redis, clamd, spamd), a real Prometheus scraping its /metrics every second with Moat's alert
 * rules loaded, and two rounds of traffic that exercise every check and produce every kind of
 * event a dashboard shows: clean, tagged, quarantined, monitored and refused mail, a relay
 * attempt, a listed client, malware, a rate-limit hit, and one injected hook error (the first
 * message: MOAT_FAULT_INJECT=hook:data_post@1). Clients are presented through the PROXY
 * protocol as TEST-NET addresses so the reputation and authentication checks run.
 *
 * Then: every PromQL query of every panel in grafana/dashboards returns data, the scrape is
 * clean for `promtool check metrics` and fully catalogued, the alert rules load in Prometheus,
 * and MoatHookErrors fires for the injected fault while MoatScannerDown stays quiet.
 */

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { startClamd, type ClamdServer } from '../harness/clamd';
import { startDns, type DnsServer } from '../harness/dns';
import { startDownstream, type Downstream } from '../harness/downstream';
import { REPO_ROOT, startGateway, type Gateway } from '../harness/gateway';
import { makeTempDir } from '../harness/process';
import { startPrometheus, type PrometheusServer } from '../harness/prometheus';
import { startRedis, type RedisServer } from '../harness/redis';
import { EICAR_STRING, plainMessage } from '../harness/samples';
import { proxyV1Header, sendMail, type SendMailStep } from '../harness/smtp-talk';
import { startSpamd, type SpamdServer } from '../harness/spamd';
import { CATALOGUE, PROCESS_METRIC } from '../../src/observability/catalogue';

const CLIENT = '203.0.113.10';
const LISTED_CLIENT = '203.0.113.66';
/** A sender domain per round, so round 2 asks DNS again (round 1's answers are cached). */
const senderDomain = (round: number): string => `round${round}.example.org`;

const RULES = `rules:
  - id: obs-tag
    description: tags the subject
    owner: ops@example.com
    mode: enforce
    direction: any
    order: 10
    when: { subject: { contains: obs-tag } }
    actions:
      - tag_subject: "[OBS]"
  - id: obs-hold
    description: quarantines
    owner: ops@example.com
    mode: enforce
    direction: any
    order: 10
    when: { subject: { contains: obs-hold } }
    actions:
      - quarantine: held by the observability test
  - id: obs-refuse
    description: refuses
    owner: ops@example.com
    mode: enforce
    direction: any
    order: 10
    when: { subject: { contains: obs-refuse } }
    actions:
      - reject: "Refused by the observability test"
  - id: obs-watch
    description: would refuse, in monitor mode
    owner: ops@example.com
    mode: monitor
    direction: any
    order: 10
    when: { subject: { contains: obs-watch } }
    actions:
      - reject: would refuse
`;

let dns: DnsServer;
let downstream: Downstream;
let redis: RedisServer;
let clamd: ClamdServer;
let spamd: SpamdServer;
let gateway: Gateway;
let prometheus: PrometheusServer;
let senderCount = 0;

function reversed(ip: string): string {
  return ip.split('.').reverse().join('.');
}

function presenting(clientIp: string): string {
  return proxyV1Header({ sourceAddress: clientIp, sourcePort: 40000,
    destinationAddress: '192.0.2.25', destinationPort: 25 });
}

/** One transaction; the code of the last reply (the message's, or the refusal before it). */
async function send(options: { subject?: string; body?: string; from?: string; to?: string;
  client?: string; round?: number }): Promise<number> {
  senderCount += 1;
  const from = options.from ?? `user${senderCount}@${senderDomain(options.round ?? 1)}`;
  const to = options.to ?? 'bob@example.com';
  const steps: SendMailStep[] = await sendMail({
    host: gateway.host, port: gateway.port, proxy: presenting(options.client ?? CLIENT),
    from, to: [to], timeoutMs: 60_000,
    data: plainMessage({ from, to, subject: options.subject ?? 'observability',
      ...(options.body ? { body: options.body } : {}) }),
  });
  return steps.filter((step) => step.step !== 'QUIT').at(-1)?.reply.code ?? 0;
}

/** Every kind of event the dashboards show; the replies prove each one happened. */
async function trafficRound(round: number): Promise<void> {
  const replies: Record<string, number> = {
    clean: await send({ round }),
    tagged: await send({ round, subject: 'obs-tag please' }),
    monitored: await send({ round, subject: 'obs-watch please' }),
    quarantined: await send({ round, subject: 'obs-hold please' }),
    ruleRefused: await send({ round, subject: 'obs-refuse please' }),
    relayDenied: await send({ round, to: 'someone@elsewhere.example' }),
    listedClient: await send({ round, client: LISTED_CLIENT }),
    malware: await send({ round, body: `${EICAR_STRING}\r\n` }),
  };

  // messages_per_sender = 2/1h: the third message from one sender is refused.
  const flooder = `flood@${senderDomain(round)}`;
  const flood = [];
  for (let index = 0; index < 3; index++) flood.push(await send({ from: flooder }));

  assert.deepEqual({ ...replies, flood }, {
    clean: 250, tagged: 250, monitored: 250, quarantined: 250, ruleRefused: 550,
    relayDenied: 550, listedClient: 554, malware: 554, flood: [250, 250, 451],
  });
}

/** Decided messages by the gateway's own count, read from its /metrics now. */
async function decidedMessages(): Promise<number> {
  const text = await gateway.metrics();
  let total = 0;
  for (const match of text.matchAll(/^moat_messages_total\{[^}]*\} (\d+)$/gm)) {
    total += Number(match[1]);
  }
  return total;
}

/**
 * Waits until Prometheus has scraped every message the gateway has decided so far. The
 * gateway's count is the yardstick, not an earlier Prometheus answer: on a loaded machine
 * that answer can come from a scrape taken in the middle of a round, and a round's series
 * would then have only one sample when the dashboards' rate() asks for two.
 */
async function scrapedEverything(): Promise<void> {
  const decided = await decidedMessages();
  assert.ok(decided > 0, 'the gateway counted no message');
  await prometheus.waitFor('sum(moat_messages_total{job="moat"})',
    (samples) => (samples[0]?.value ?? 0) >= decided, 30_000);
}

before(async () => {
  [dns, downstream, redis, clamd, spamd] = await Promise.all([
    startDns(), startDownstream(), startRedis(), startClamd(), startSpamd(),
  ]);
  for (const round of [1, 2]) {
    dns.add(senderDomain(round), 'TXT', 'v=spf1 ip4:203.0.113.0/24 -all')
      .add(`_dmarc.${senderDomain(round)}`, 'TXT', 'v=DMARC1; p=none');
  }
  dns.add(`${reversed(LISTED_CLIENT)}.bl.example`, 'A', '127.0.0.2');

  const rulesDir = makeTempDir('moat-obs-rules-');
  writeFileSync(join(rulesDir, 'observability.yaml'), RULES);

  gateway = await startGateway({
    env: {
      MOAT_DOWNSTREAM: downstream.address, MOAT_DNS_SERVERS: dns.address,
      MOAT_REDIS_URL: redis.url, MOAT_CLAMD: clamd.address, MOAT_SPAMD: spamd.address,
      MOAT_PROXY_HOSTS: '127.0.0.1', MOAT_RULES_DIR: rulesDir,
      MOAT_FAULT_INJECT: 'hook:data_post@1',
    },
    ini: [
      '[domains]', 'recipients = verify',
      '[reputation]', 'zones = block:bl.example:1',
      '[ratelimit]', 'messages_per_sender = 2/1h',
      '[clamd]', 'timeout = 20s', '[spamd]', 'timeout = 30s', '',
    ].join('\n'),
    startTimeoutMs: 30_000,
  });

  prometheus = await startPrometheus({
    targets: [`${gateway.host}:${gateway.metricsPort}`],
    ruleFiles: [join(REPO_ROOT, 'prometheus', 'moat-alerts.yml')],
  });
  await prometheus.waitFor('up{job="moat"}', (samples) => samples[0]?.value === 1, 30_000);

  // The injected fault: the first message gets 451 4.3.0 and counts a hook error.
  assert.equal(await send({ subject: 'fault' }), 451);

  // Two rounds, with scrapes between them, so every rate and histogram has an increase.
  await trafficRound(1);
  await scrapedEverything();
  await trafficRound(2);
  await scrapedEverything();
  await prometheus.waitFor('sum(moat_ratelimit_hits_total{job="moat"})',
    (samples) => (samples[0]?.value ?? 0) >= 2);
});

after(async () => {
  await prometheus?.stop();
  await gateway?.stop();
  await Promise.all([downstream?.stop(), redis?.stop(), clamd?.stop(), spamd?.stop(),
    dns?.stop()]);
});

interface PanelQuery {
  dashboard: string;
  panel: string;
  expr: string;
}

/** Every target of every panel of every dashboard, with Grafana's variables filled in. */
function dashboardQueries(): PanelQuery[] {
  const folder = join(REPO_ROOT, 'grafana', 'dashboards');
  const queries: PanelQuery[] = [];
  for (const file of readdirSync(folder).filter((name) => name.endsWith('.json'))) {
    const board = JSON.parse(readFileSync(join(folder, file), 'utf8')) as {
      panels: Array<{ title: string; targets?: Array<{ expr: string }> }>;
    };
    for (const panel of board.panels) {
      for (const target of panel.targets ?? []) {
        const expr = target.expr
          .replaceAll('$instance', '.*')
          .replaceAll('$__rate_interval', '2m')
          .replaceAll('$__range', '5m');
        assert.doesNotMatch(expr, /\$/, `${file} "${panel.title}": a variable was not filled in`);
        queries.push({ dashboard: file, panel: panel.title, expr });
      }
    }
  }
  return queries;
}

describe('Prometheus scraping Moat while mail flows', () => {
  test('every dashboard query returns data', async () => {
    const queries = dashboardQueries();
    assert.ok(queries.length >= 60, `only ${queries.length} queries found`);

    const empty: string[] = [];
    for (const query of queries) {
      const samples = await prometheus.query(query.expr);
      const where = `${query.dashboard} "${query.panel}": ${query.expr}`;
      if (samples.length === 0) empty.push(`no series: ${where}`);
      else if (/histogram_quantile/.test(query.expr)
        && !samples.some((sample) => Number.isFinite(sample.value))) {
        empty.push(`only NaN (no observations): ${where}`);
      }
    }
    assert.deepEqual(empty, []);
  });

  test('the checks a message passes all show in the per-check latency', async () => {
    const samples = await prometheus.query(
      'sum by (check) (increase(moat_check_duration_seconds_count{job="moat"}[5m])) > 0');
    const checks = samples.map((sample) => sample.metric['check']).sort();
    assert.deepEqual(checks,
      ['arc', 'clamd', 'dkim', 'dmarc', 'dnsbl', 'rdns', 'rules', 'scan', 'spamd', 'spf']);
  });

  test('every dependency is up, probed at the scrape', async () => {
    const samples = await prometheus.query('moat_dependency_up{job="moat"}');
    const up = Object.fromEntries(samples.map((sample) => [sample.metric['dependency'],
      sample.value]));
    assert.deepEqual(up, { downstream: 1, clamd: 1, spamd: 1, redis: 1 });
  });

  test('a real scrape after traffic is clean for promtool and fully catalogued', async () => {
    const text = await gateway.metrics();
    const checked = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    assert.equal(checked.error, undefined, 'promtool runs (Debian package prometheus)');
    assert.equal(`${checked.stdout}${checked.stderr}`, '');
    assert.equal(checked.status, 0);

    const catalogued = new Set(CATALOGUE.flatMap((section) => section.metrics.map((m) => m.name)));
    const families = [...text.matchAll(/^# TYPE (\S+) /gm)].map((match) => match[1]!);
    const unknown = families.filter((name) => !catalogued.has(name) && !PROCESS_METRIC.test(name));
    assert.deepEqual(unknown, []);
    for (const name of catalogued) assert.ok(families.includes(name), `${name} is not served`);
  });

  test('the alert rules load, MoatHookErrors fires, MoatScannerDown does not', async () => {
    const rules = await prometheus.api('/api/v1/rules') as {
      groups: Array<{ rules: Array<{ name: string; health: string; lastError?: string }> }>;
    };
    const loaded = rules.groups.flatMap((group) => group.rules);
    assert.ok(loaded.length >= 14, `only ${loaded.length} rules loaded`);
    for (const rule of loaded) assert.equal(rule.health, 'ok', `${rule.name}: ${rule.lastError}`);

    const firing = await prometheus.waitFor('ALERTS{alertstate="firing"}',
      (samples) => samples.some((sample) => sample.metric['alertname'] === 'MoatHookErrors'));
    const hook = firing.find((sample) => sample.metric['alertname'] === 'MoatHookErrors');
    assert.equal(hook?.metric['hook'], 'data_post');
    const names = firing.map((sample) => sample.metric['alertname']);
    assert.ok(!names.includes('MoatScannerDown'), names.join(', '));
    assert.ok(!names.includes('MoatInternalServerDown'), names.join(', '));
  });
});
