/*
 * The metrics catalogue is complete and current: every registered metric is in it with the
 * same labels, every entry is registered, every `moat_*` name defined anywhere in the sources
 * is covered, and docs/metrics.md is what metrics-doc.ts renders today.
 */

import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';

import { CATALOGUE, PROCESS_METRIC, catalogueEntry } from './catalogue';
import { METRIC_MODULES, registeredMetrics, renderMetricsDoc } from './metrics-doc';

const REPO = resolve(__dirname, '..', '..', '..');
const SOURCE_DIR = join(REPO, 'src', 'observability');

function sourceFiles(dir: string, found: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) sourceFiles(path, found);
    else if (name.endsWith('.ts') && !name.endsWith('.test.ts')) found.push(path);
  }
  return found;
}

test('every registered metric is in the catalogue with the same labels', () => {
  const registered = registeredMetrics().filter((metric) => !PROCESS_METRIC.test(metric.name));
  assert.ok(registered.length >= 30, `only ${registered.length} metrics registered`);
  for (const metric of registered) {
    const entry = catalogueEntry(metric.name);
    assert.ok(entry, `${metric.name} is registered but missing from catalogue.ts`);
    assert.deepEqual(Object.keys(entry.labels ?? {}).sort(), [...metric.labels].sort(),
      `labels of ${metric.name}`);
    assert.match(metric.help, /\S/, `${metric.name} has help text`);
  }
});

test('every catalogue entry is registered, once', () => {
  const names = new Set(registeredMetrics().map((metric) => metric.name));
  const seen = new Set<string>();
  for (const section of CATALOGUE) {
    for (const entry of section.metrics) {
      assert.ok(names.has(entry.name), `${entry.name} is catalogued but not registered`);
      assert.ok(!seen.has(entry.name), `${entry.name} is catalogued twice`);
      seen.add(entry.name);
      for (const [label, values] of Object.entries(entry.labels ?? {})) {
        assert.ok(typeof values === 'string' ? values.length > 0 : values.length > 0,
          `${entry.name}{${label}} lists its values`);
      }
    }
  }
});

test('every metric name defined in the sources is catalogued', () => {
  // A metric defined outside the known modules would not be loaded by this test otherwise.
  const defined = new Set<string>();
  for (const folder of ['src', 'plugins']) {
    for (const file of sourceFiles(join(REPO, folder))) {
      for (const match of readFileSync(file, 'utf8').matchAll(/name: '(moat_[a-z0-9_]+)'/g)) {
        defined.add(match[1]!);
      }
    }
  }
  assert.ok(defined.size >= 30, `only ${defined.size} metric names found`);
  for (const name of defined) assert.ok(catalogueEntry(name), `${name} is not catalogued`);
});

test('every metrics module is loaded by the document generator', () => {
  const modules = readdirSync(SOURCE_DIR)
    .filter((name) => /^metrics(-[a-z]+)?\.ts$/.test(name) && name !== 'metrics-doc.ts')
    .map((name) => name.replace(/\.ts$/, ''))
    .sort();
  assert.deepEqual(modules, [...METRIC_MODULES].sort());
});

test('docs/metrics.md is current (regenerate: node dist/src/observability/metrics-doc.js)', () => {
  const shipped = readFileSync(join(REPO, 'docs', 'metrics.md'), 'utf8');
  assert.equal(shipped, renderMetricsDoc());
});

test('the document names every metric and the values of bounded labels', () => {
  const doc = renderMetricsDoc();
  for (const metric of registeredMetrics()) {
    assert.ok(doc.includes(`\`${metric.name}\``), metric.name);
  }
  assert.match(doc, /`moat_check_duration_seconds` \| histogram \| `check`: `spf`, `dkim`/);
  assert.match(doc, /`dependency`: `downstream`, `maildir`, `clamd`, `spamd`, `redis`/);
});
