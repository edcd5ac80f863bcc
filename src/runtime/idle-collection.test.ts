/*
 * The idle collector: one collection after the last connection closed and the process stayed
 * quiet, none while a connection is open, none without traffic since the last one, and none
 * when switched off. Timers are the collector's own scheduler, driven by hand.
 */

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { IdleCollector } from './idle-collection';
import type { Schedule } from './timers';

/** A scheduler whose timers fire only when the test says so. */
function manualTimers() {
  const timers: Array<{ callback: () => void; ms: number; cancelled: boolean }> = [];
  const schedule: Schedule = (callback, ms) => {
    const timer = { callback, ms, cancelled: false };
    timers.push(timer);
    return { cancel: () => { timer.cancelled = true; } };
  };
  const fire = (): number => {
    const due = timers.filter((timer) => !timer.cancelled);
    timers.length = 0;
    for (const timer of due) timer.callback();
    return due.length;
  };
  return { schedule, fire, timers };
}

function collectorWith(idleMs = 5000) {
  const timers = manualTimers();
  let collections = 0;
  const collector = new IdleCollector(() => { collections += 1; }, idleMs, timers.schedule);
  return { collector, timers, collections: () => collections };
}

describe('idle collection', () => {
  test('collects once after the last connection closed and the quiet lasted', () => {
    const { collector, timers, collections } = collectorWith(5000);
    collector.connectionOpened();
    collector.connectionOpened();
    collector.connectionClosed(1);
    assert.equal(timers.timers.length, 0, 'one connection is still open');
    collector.connectionClosed(0);
    assert.deepEqual(timers.timers.map((timer) => timer.ms), [5000]);
    assert.equal(timers.fire(), 1);
    assert.equal(collections(), 1);

    // Quiet again without any traffic since: nothing more to give back.
    collector.connectionClosed(0);
    assert.equal(timers.fire(), 0);
    assert.equal(collections(), 1);
  });

  test('a connection arriving during the quiet cancels the collection', () => {
    const { collector, timers, collections } = collectorWith();
    collector.connectionOpened();
    collector.connectionClosed(0);
    collector.connectionOpened();
    assert.equal(timers.fire(), 0);
    assert.equal(collections(), 0);

    collector.connectionClosed(0);
    assert.equal(timers.fire(), 1);
    assert.equal(collections(), 1);
  });

  test('never runs before any traffic, when switched off, or after stop()', () => {
    const idle = collectorWith();
    idle.collector.connectionClosed(0);
    assert.equal(idle.timers.fire(), 0);

    const off = collectorWith(0);
    off.collector.connectionOpened();
    off.collector.connectionClosed(0);
    assert.equal(off.timers.fire(), 0);
    assert.equal(off.collections(), 0);

    const stopped = collectorWith();
    stopped.collector.connectionOpened();
    stopped.collector.connectionClosed(0);
    stopped.collector.stop();
    stopped.collector.connectionOpened();
    stopped.collector.connectionClosed(0);
    assert.equal(stopped.timers.fire(), 0);
    assert.equal(stopped.collections(), 0);
  });
});
