/*
 * The high-water collection: checks run only while connections are open, a collection happens
 * only above the mark, waits twice as long after one that left the process above it, and starts
 * over once a reading is below. The clock, the resident size and the timer are driven by hand.
 */

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import type { Schedule } from './timers';
import { CHECK_EVERY_MS, HighWaterCollector } from './memory-high-water';

const MB = 1024 * 1024;

/** A collector whose clock, resident size and timer are the test's. */
function rig(highMb: number) {
  const state = { now: 0, rssMb: 100, rssAfterCollectMb: 100, collections: [] as number[] };
  let timer: { callback: () => void; cancelled: boolean } | null = null;
  let timersStarted = 0;
  const schedule: Schedule = (callback, ms) => {
    assert.equal(ms, CHECK_EVERY_MS);
    timersStarted += 1;
    const current = { callback, cancelled: false };
    timer = current;
    return { cancel: () => { current.cancelled = true; } };
  };
  const collector = new HighWaterCollector(
    () => {
      state.collections.push(state.now);
      state.rssMb = state.rssAfterCollectMb;
    },
    () => state.rssMb * MB, highMb * MB, () => state.now, schedule,
  );
  /** Lets `seconds` checks happen, one a second. */
  const run = (seconds: number): void => {
    for (let i = 0; i < seconds; i += 1) {
      state.now += CHECK_EVERY_MS;
      if (timer && !timer.cancelled) timer.callback();
    }
  };
  return {
    collector, state, run,
    running: () => timer !== null && !timer.cancelled,
    timersStarted: () => timersStarted,
  };
}

describe('high-water collection', () => {
  test('no check before a connection; after the last one closed, one check for the second it '
    + 'came in, then none', () => {
    const { collector, state, run, running } = rig(256);
    state.rssMb = 400;
    run(5);
    assert.deepEqual(state.collections, []);
    collector.connectionOpened();
    collector.connectionOpened();
    assert.ok(running());
    collector.connectionClosed(1);
    collector.connectionClosed(0);
    run(1);
    assert.deepEqual(state.collections, [6000], 'the second in which traffic came is checked');
    run(1);
    assert.ok(!running(), 'quiet: the checks stop');
    run(5);
    assert.deepEqual(state.collections, [6000]);
  });

  test('short connections one after another, none open at a check, keep the checks going', () => {
    const { collector, state, run, running, timersStarted } = rig(256);
    state.rssMb = 300;
    state.rssAfterCollectMb = 200;
    for (let second = 0; second < 5; second += 1) {
      collector.connectionOpened();
      collector.connectionClosed(0);
      run(1);
      state.rssMb = 300;
    }
    assert.deepEqual(state.collections, [1000, 2000, 3000, 4000, 5000]);
    assert.ok(running());
    assert.equal(timersStarted(), 1, 'one timer all along');
  });

  test('below the mark nothing happens; above it, one collection per check', () => {
    const { collector, state, run } = rig(256);
    collector.connectionOpened();
    state.rssMb = 250;
    run(3);
    assert.deepEqual(state.collections, []);
    // Each collection brings it under the mark, and the traffic brings it back over.
    state.rssMb = 300;
    state.rssAfterCollectMb = 200;
    run(1);
    state.rssMb = 300;
    run(1);
    assert.deepEqual(state.collections, [4000, 5000]);
  });

  test('a collection that leaves the process above the mark makes the next wait twice as long',
    () => {
      const { collector, state, run } = rig(256);
      collector.connectionOpened();
      state.rssMb = 300;
      state.rssAfterCollectMb = 290; // the memory is in use: collecting gives little back
      run(16);
      // Waits of 0, 2, 4 and 8 s: collections at 1, 3, 7 and 15 s.
      assert.deepEqual(state.collections, [1000, 3000, 7000, 15000]);
      // One reading below the mark starts the waits over: 0, then 2 s again.
      state.rssMb = 200;
      run(1);
      state.rssMb = 300;
      run(4);
      assert.deepEqual(state.collections.slice(4), [18000, 20000]);
    });

  test('the wait stops growing at a minute', () => {
    const { collector, state, run } = rig(256);
    collector.connectionOpened();
    state.rssMb = 300;
    state.rssAfterCollectMb = 300;
    run(400);
    const gaps = state.collections.slice(1).map((at, i) => at - (state.collections[i] as number));
    assert.deepEqual(gaps.slice(0, 6), [2000, 4000, 8000, 16000, 32000, 60000]);
    assert.ok(gaps.slice(5).every((gap) => gap === 60000), gaps.join(' '));
  });

  test('0 switches it off, and stop() ends the checks for good', () => {
    const off = rig(0);
    off.collector.connectionOpened();
    assert.equal(off.timersStarted(), 0);

    const { collector, state, run, running, timersStarted } = rig(256);
    collector.connectionOpened();
    collector.stop();
    assert.ok(!running());
    collector.connectionOpened();
    assert.equal(timersStarted(), 1);
    state.rssMb = 400;
    run(3);
    assert.deepEqual(state.collections, []);
  });
});
