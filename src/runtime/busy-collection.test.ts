/*
 * The busy collection runs only after intervals in which a connection was opened, never after
 * stop(), and not at all at 0. Timers are driven by hand.
 */

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { BusyCollector } from './busy-collection';
import type { Schedule } from './timers';

/** A repeating scheduler whose ticks happen only when the test says so. */
function manualInterval() {
  const timers: Array<{ callback: () => void; ms: number; cancelled: boolean }> = [];
  const schedule: Schedule = (callback, ms) => {
    const timer = { callback, ms, cancelled: false };
    timers.push(timer);
    return { cancel: () => { timer.cancelled = true; } };
  };
  const tick = (): void => {
    for (const timer of timers) if (!timer.cancelled) timer.callback();
  };
  return { schedule, tick, timers };
}

describe('busy collection', () => {
  test('collects after intervals with traffic only, and not after stop()', () => {
    const timers = manualInterval();
    let collections = 0;
    const busy = new BusyCollector(() => { collections += 1; }, 30_000, timers.schedule);
    assert.equal(timers.timers.length, 0, 'no timer before any traffic');

    busy.connectionOpened();
    busy.connectionOpened();
    assert.deepEqual(timers.timers.map((timer) => timer.ms), [30_000], 'one timer');
    timers.tick();
    assert.equal(collections, 1);
    timers.tick();
    assert.equal(collections, 1, 'an interval without a new connection: nothing');

    busy.connectionOpened();
    timers.tick();
    assert.equal(collections, 2);

    busy.stop();
    busy.connectionOpened();
    timers.tick();
    assert.equal(collections, 2, 'stopped');
    assert.equal(timers.timers.filter((timer) => !timer.cancelled).length, 0);
  });

  test('0 switches it off', () => {
    const timers = manualInterval();
    const busy = new BusyCollector(() => assert.fail('collected'), 0, timers.schedule);
    busy.connectionOpened();
    assert.equal(timers.timers.length, 0);
  });
});
