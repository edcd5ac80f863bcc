/*
 * Quarantine housekeeping on a real folder: purge by retention, the gauges from a recount,
 * and the event counters read back from events.log (as written by another process).
 */

import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { registry } from '../observability/metrics';
import '../observability/metrics-quarantine';
import { QuarantineMaintenance } from './maintenance';
import { QuarantineStore } from './store';

async function metric(name: string, labels: Record<string, string> = {}): Promise<number> {
  const found = (await registry.getMetricsAsJSON()).find((entry) => entry.name === name);
  const value = found?.values.find((entry) => Object.entries(labels)
    .every(([key, wanted]) => (entry.labels as Record<string, unknown>)[key] === wanted));
  return Number(value?.value ?? NaN);
}

describe('QuarantineMaintenance', () => {
  const dir = mkdtempSync(join(tmpdir(), 'moat-maintenance-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  let clock = new Date('2026-12-01T00:00:00Z');
  const store = new QuarantineStore(dir, { node: 'gw1', now: () => clock });
  const keep = (text: string) => store.store({
    messageId: 'M', receivedAt: clock,
    envelope: { from: 'a@sender.example', to: ['b@example.com'] },
    client: {}, verdict: { action: 'quarantine', reason: 'clean',
      reply: { code: 250, enhanced: '2.0.0', text: 'ok' }, decidedBy: null },
    results: [], addedHeaders: [],
  }, () => Readable.from([Buffer.from(text)]));

  it('purges past retention, recounts the gauges, and counts new events only', async () => {
    await keep('old message\r\n');
    appendFileSync(store.eventsLog, '{"event":"released","id":"before-start"}\n');
    const maintenance = new QuarantineMaintenance(store,
      { retentionMs: 7 * 86_400_000, purgeIntervalMs: 3_600_000 });

    // First look: nothing purged yet (1 day old), the log's existing lines are history.
    clock = new Date('2026-12-02T00:00:00Z');
    assert.equal(await maintenance.purge(), 0);
    await maintenance.recount();
    assert.equal(await metric('moat_quarantine_messages', { status: 'held' }), 1);
    assert.equal(await metric('moat_quarantine_bytes', { status: 'held' }), 13);
    assert.equal(await metric('moat_quarantine_events_total', { event: 'released' }), 0);

    // A release and a delete by the command-line tool, half a line still being written.
    await keep('young\r\n');
    appendFileSync(store.eventsLog, '{"event":"released","id":"x"}\n{"event":"deleted","id":"y"}\n'
      + 'not json\n{"event":"purged"');
    await maintenance.recount();
    assert.equal(await metric('moat_quarantine_events_total', { event: 'released' }), 1);
    assert.equal(await metric('moat_quarantine_events_total', { event: 'deleted' }), 1);
    assert.equal(await metric('moat_quarantine_messages', { status: 'held' }), 2);

    // Seven and a half days on: the old one goes, and its purge line completes the half-written
    // one.
    clock = new Date('2026-12-08T12:00:00Z');
    appendFileSync(store.eventsLog, ',"id":"z"}\n');
    assert.equal(await maintenance.purge(), 1);
    await maintenance.recount();
    assert.equal(await metric('moat_quarantine_events_total', { event: 'purged' }), 2);
    assert.equal(await metric('moat_quarantine_messages', { status: 'held' }), 1);
    assert.equal(await metric('moat_quarantine_bytes', { status: 'held' }), 7);
  });

  it('never purges with a retention of 0', async () => {
    const keepForever = new QuarantineMaintenance(store, {
      retentionMs: 0, purgeIntervalMs: 10_000,
    });
    clock = new Date('2036-01-01T00:00:00Z');
    assert.equal(await keepForever.purge(), 0);
    assert.equal((await store.list()).length, 1);
  });
});
