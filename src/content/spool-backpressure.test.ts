/*
 * SpoolBackpressure with a stand-in stream and socket (a unit test: the real spool is exercised
 * by the end-to-end tests and the benchmark's memory runs).
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { SpoolBackpressure } from './spool-backpressure';

function fixture(receiving = true) {
  const stream = { spooling: false, buffered: 0 };
  const calls: string[] = [];
  const socket = { pause: () => calls.push('pause'), resume: () => calls.push('resume') };
  const state = { receiving };
  const step = new SpoolBackpressure(stream, socket, () => state.receiving,
    { highBytes: 100, lowBytes: 10, pollMs: 1 });
  return { stream, calls, state, step };
}

describe('SpoolBackpressure', () => {
  it('never pauses while the message is kept in memory, however much is buffered', () => {
    const { stream, calls, step } = fixture();
    stream.buffered = 10_000;
    step.afterLine();
    assert.deepEqual(calls, []);
    assert.equal(step.paused, false);
  });

  it('pauses once past the high mark while spooling, and resumes at the low mark', async () => {
    const { stream, calls, step } = fixture();
    stream.spooling = true;
    stream.buffered = 100;
    step.afterLine();
    assert.deepEqual(calls, [], 'at the mark is not past it');

    stream.buffered = 101;
    step.afterLine();
    step.afterLine();
    assert.deepEqual(calls, ['pause'], 'paused once');
    assert.equal(step.paused, true);

    stream.buffered = 50;
    await sleep(20);
    assert.deepEqual(calls, ['pause'], 'still above the low mark');
    stream.buffered = 10;
    await sleep(20);
    assert.deepEqual(calls, ['pause', 'resume']);
    assert.equal(step.paused, false);
    assert.equal(step.pauses, 1);
  });

  it('leaves the socket to Haraka once the message has been read', async () => {
    const { stream, calls, state, step } = fixture();
    stream.spooling = true;
    stream.buffered = 1000;
    step.afterLine();
    state.receiving = false;
    await sleep(20);
    assert.deepEqual(calls, ['pause']);
    assert.equal(step.paused, false, 'stopped watching');
  });

  it('stop() mid-message reads the socket again', () => {
    const { stream, calls, step } = fixture();
    stream.spooling = true;
    stream.buffered = 1000;
    step.afterLine();
    step.stop();
    step.stop();
    assert.deepEqual(calls, ['pause', 'resume']);
  });
});
