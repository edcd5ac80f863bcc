/*
 * The operations files hold together: Prometheus' config and alert rules pass promtool and
 * their unit tests, every alert has a test case and a runbook entry, alerts and dashboards
 * only name metrics Moat serves, the Grafana provisioning points at the dashboards, the
 * compose file validates with `docker-compose config`, and the Dockerfile keeps its promises.
 *
 * Needs promtool (Debian package prometheus) and docker-compose (Debian package
 * docker-compose); scripts/ensure-deps.sh installs both. No Docker engine is used.
 */

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { parse as parseYaml } from 'yaml';

import { registeredMetrics } from '../../src/observability/metrics-doc';
import { GATEWAY_ENV, GATEWAY_NODE_FLAGS } from '../../src/runtime/node-flags';
import { REPO_ROOT } from '../harness/gateway';
import { requireExecutable } from '../harness/process';

const PROMETHEUS_DIR = join(REPO_ROOT, 'prometheus');
const DASHBOARD_DIR = join(REPO_ROOT, 'grafana', 'dashboards');
const COMPOSE_ENV = {
  MOAT_DOWNSTREAM: '10.0.0.5:25', MOAT_DOMAINS: 'example.org', GRAFANA_ADMIN_PASSWORD: 'secret',
};

interface AlertRule {
  alert: string;
  expr: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

function run(tool: string, args: string[], env: Record<string, string> = {}) {
  const result = spawnSync(requireExecutable(tool), args, {
    cwd: REPO_ROOT, encoding: 'utf8', env: { PATH: process.env['PATH'] ?? '', ...env },
  });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

function alertRules(): AlertRule[] {
  const doc = parseYaml(readFileSync(join(PROMETHEUS_DIR, 'moat-alerts.yml'), 'utf8')) as {
    groups: Array<{ rules: AlertRule[] }>;
  };
  return doc.groups.flatMap((group) => group.rules);
}

function dashboards(): Array<{ file: string; board: Record<string, unknown> }> {
  return readdirSync(DASHBOARD_DIR).filter((name) => name.endsWith('.json')).sort()
    .map((file) => ({ file, board: JSON.parse(readFileSync(join(DASHBOARD_DIR, file), 'utf8')) }));
}

/** The Moat metric names a PromQL expression reads (histogram suffixes taken off). */
function metricNames(expr: string): string[] {
  const served = new Set(registeredMetrics().map((metric) => metric.name));
  return [...expr.matchAll(/\b(moat_[a-z0-9_]+)/g)].map((match) => {
    const name = match[1]!;
    const base = name.replace(/_(bucket|count|sum)$/, '');
    return served.has(name) ? name : base;
  });
}

describe('Prometheus', () => {
  test('promtool accepts the example configuration and the alert rules', () => {
    const config = run('promtool', ['check', 'config', join(PROMETHEUS_DIR, 'prometheus.yml')]);
    assert.equal(config.status, 0, config.output);
    const rules = run('promtool', ['check', 'rules', join(PROMETHEUS_DIR, 'moat-alerts.yml')]);
    assert.equal(rules.status, 0, rules.output);
    assert.match(rules.output, /SUCCESS: \d+ rules found/);
  });

  test('the alert rules pass their unit tests (promtool test rules)', () => {
    const tested = run('promtool', ['test', 'rules', join(PROMETHEUS_DIR, 'moat-alerts.test.yml')]);
    assert.equal(tested.status, 0, tested.output);
    assert.match(tested.output, /SUCCESS/);
  });

  test('every alert has a unit test, a severity and a runbook entry', () => {
    const tests = readFileSync(join(PROMETHEUS_DIR, 'moat-alerts.test.yml'), 'utf8');
    const runbook = readFileSync(join(REPO_ROOT, 'docs', 'runbook.md'), 'utf8');
    const rules = alertRules();
    assert.ok(rules.length >= 10, `only ${rules.length} alerts`);
    for (const rule of rules) {
      assert.match(tests, new RegExp(`alertname: ${rule.alert}\\n`), `${rule.alert} has no test`);
      assert.match(rule.labels?.['severity'] ?? '', /^(critical|warning)$/, rule.alert);
      assert.equal(rule.annotations?.['runbook'], `docs/runbook.md#${rule.alert.toLowerCase()}`);
      assert.match(runbook, new RegExp(`^## ${rule.alert}$`, 'm'), `runbook has no ${rule.alert}`);
    }
  });

  test('alerts name only metrics Moat serves', () => {
    const served = new Set(registeredMetrics().map((metric) => metric.name));
    for (const rule of alertRules()) {
      for (const name of metricNames(rule.expr)) {
        assert.ok(served.has(name), `${rule.alert} reads ${name}, which Moat does not serve`);
      }
    }
  });
});

describe('Grafana', () => {
  test('provisioning loads the dashboards folder from the Prometheus the stack runs', () => {
    const provider = parseYaml(readFileSync(
      join(REPO_ROOT, 'grafana', 'provisioning', 'dashboards', 'moat.yaml'), 'utf8')) as {
      providers: Array<{ options: { path: string } }>;
    };
    const source = parseYaml(readFileSync(
      join(REPO_ROOT, 'grafana', 'provisioning', 'datasources', 'prometheus.yaml'), 'utf8')) as {
      datasources: Array<{ type: string; url: string }>;
    };
    const compose = readFileSync(join(REPO_ROOT, 'docker-compose.yml'), 'utf8');
    const path = provider.providers[0]?.options.path ?? '';
    assert.ok(compose.includes(`./grafana/dashboards:${path}:ro`), `compose mounts ${path}`);
    assert.equal(source.datasources[0]?.type, 'prometheus');
    assert.equal(source.datasources[0]?.url, 'http://prometheus:9090');
  });

  test('each dashboard is well formed and reads only metrics Moat serves', () => {
    const served = new Set(registeredMetrics().map((metric) => metric.name));
    const boards = dashboards();
    assert.deepEqual(boards.map((entry) => entry.file), [
      'moat-dependencies.json', 'moat-latency.json', 'moat-mail-flow.json', 'moat-policy.json',
      'moat-refusals.json',
    ]);
    const uids = new Set<string>();
    for (const { file, board } of boards) {
      assert.ok(typeof board['uid'] === 'string' && !uids.has(board['uid']), `${file}: uid`);
      uids.add(board['uid'] as string);
      const variables = (board['templating'] as { list: Array<{ name: string }> }).list
        .map((variable) => variable.name);
      assert.deepEqual(variables, ['datasource', 'instance'], file);

      const panels = board['panels'] as Array<{
        id: number; type: string; title: string; gridPos: { x: number; w: number };
        datasource?: { uid: string }; targets?: Array<{ expr: string }>;
      }>;
      assert.equal(new Set(panels.map((panel) => panel.id)).size, panels.length, `${file}: ids`);
      for (const panel of panels) {
        assert.ok(panel.gridPos.x + panel.gridPos.w <= 24, `${file} "${panel.title}": width`);
        if (panel.type === 'row') continue;
        assert.equal(panel.datasource?.uid, '${datasource}', `${file} "${panel.title}"`);
        assert.ok((panel.targets ?? []).length > 0, `${file} "${panel.title}" has no query`);
        for (const target of panel.targets ?? []) {
          assert.match(target.expr, /instance=~"\$instance"/, `${file} "${panel.title}"`);
          for (const name of metricNames(target.expr)) {
            assert.ok(served.has(name), `${file} "${panel.title}" reads ${name}: not served`);
          }
        }
      }
    }
  });
});

describe('Docker', () => {
  test('docker-compose config validates the stack', () => {
    const checked = run('docker-compose', ['-f', 'docker-compose.yml', 'config'], COMPOSE_ENV);
    assert.equal(checked.status, 0, checked.output);
    const stack = parseYaml(checked.output) as {
      services: Record<string, { healthcheck?: { test: string[] }; volumes?: string[] }>;
    };
    assert.deepEqual(Object.keys(stack.services).sort(),
      ['clamd', 'grafana', 'moat', 'prometheus', 'redis', 'spamd']);
    for (const [name, service] of Object.entries(stack.services)) {
      assert.ok(service.healthcheck?.test.length, `${name} has a health check`);
    }

    // Every file the stack mounts or builds from is in the repository.
    for (const path of ['Dockerfile', 'deploy/spamd/Dockerfile', 'prometheus/prometheus.yml',
      'prometheus/moat-alerts.yml', 'grafana/provisioning', 'grafana/dashboards', 'config',
      'rules']) {
      assert.ok(existsSync(join(REPO_ROOT, path)), path);
    }
  });

  test('docker-compose config refuses to run without the internal server', () => {
    const { MOAT_DOWNSTREAM: _unused, ...rest } = COMPOSE_ENV;
    const checked = run('docker-compose', ['-f', 'docker-compose.yml', 'config'], rest);
    assert.notEqual(checked.status, 0);
    assert.match(checked.output, /set MOAT_DOWNSTREAM to the internal mail server/);
  });

  test('the Dockerfile: multi-stage, Node 24, production dependencies, non-root, healthy', () => {
    const dockerfile = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8');
    const stages = [...dockerfile.matchAll(/^FROM (\S+)/gm)].map((match) => match[1]);
    assert.ok(stages.length >= 2, 'multi-stage');
    for (const image of stages) assert.match(image ?? '', /^node:24[-.]/);
    const runtime = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
    assert.match(runtime, /npm ci --omit=dev/);
    assert.match(runtime, /^USER (?!root)\S+$/m);
    assert.match(runtime, /^HEALTHCHECK .*\n?.*\/healthz/m);
    assert.doesNotMatch(runtime, /COPY (src|test|bench) /);
    const build = dockerfile.slice(0, dockerfile.lastIndexOf('\nFROM '));
    assert.match(build, /sh scripts\/build-native\.sh --required/, 'the allocator trim is built');
    assert.match(runtime, /COPY --from=build \/app\/dist \.\/dist/, 'and copied with dist/');
  });

  test('npm start and the container run the gateway with the Node flags the tests use', () => {
    const bootstrap = readFileSync(join(REPO_ROOT, 'scripts', 'bootstrap.sh'), 'utf8');
    const start = /^\s*start\) exec "\$NODE" (.*) dist\/src\/runtime\/main\.js/m.exec(bootstrap);
    assert.deepEqual(start?.[1]?.split(' '), [...GATEWAY_NODE_FLAGS], 'scripts/bootstrap.sh start');
    const dockerfile = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8');
    const cmd = /^CMD (\[.*\])$/m.exec(dockerfile);
    assert.deepEqual(JSON.parse(cmd?.[1] ?? '[]'),
      ['node', ...GATEWAY_NODE_FLAGS, 'dist/src/runtime/main.js'], 'Dockerfile CMD');
  });

  test('npm start and the container give the gateway the environment the tests use', () => {
    const bootstrap = readFileSync(join(REPO_ROOT, 'scripts', 'bootstrap.sh'), 'utf8');
    const runtime = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8').split('\nFROM ').at(-1);
    const envBlock = /^ENV ((?:.*\\\n)*.*)$/m.exec(runtime ?? '')?.[1] ?? '';
    for (const [name, value] of Object.entries(GATEWAY_ENV)) {
      assert.match(bootstrap, new RegExp(`^export ${name}="\\$\\{${name}:-${value}\\}"$`, 'm'),
        `scripts/bootstrap.sh exports ${name}`);
      assert.match(envBlock, new RegExp(`(^|\\s)${name}=${value}(\\s|$)`),
        `Dockerfile ENV sets ${name}`);
    }
  });
});
