/*
 * Tests for hook.ts with a recording `next`: each outcome becomes the Haraka code and DSN reply
 * it should, every failure of the body becomes exactly one 451 4.3.0, and nothing escapes to
 * the process (no throw, no unhandled rejection).
 */

import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';

import type { SmtpReply } from '../verdict/reasons';
import {
  CONTINUE, DSN, HARAKA, hook, refuse, setHookErrorReporter, type HookErrorReport,
  type HookOutcome,
} from './hook';

interface NextCall {
  code: number | undefined;
  message: unknown;
}

/** A fake Haraka `next` that records its calls and lets a test await the first one. */
class NextRecorder {
  readonly calls: NextCall[] = [];
  private wake: (() => void) | null = null;
  private readonly firstCall = new Promise<void>((resolve) => { this.wake = resolve; });

  constructor(private readonly throwOnCall = false) {}

  readonly next = (code?: number, message?: unknown): void => {
    this.calls.push({ code, message });
    this.wake?.();
    if (this.throwOnCall) throw new Error('connection already gone');
  };

  /** Waits for the first call, then a few more turns so a second call would show. */
  async settled(): Promise<NextCall> {
    await this.firstCall;
    for (let turn = 0; turn < 5; turn++) await nextTurn();
    assert.equal(this.calls.length, 1, `next was called ${this.calls.length} times`);
    return this.calls[0]!;
  }
}

const CONNECTION = { uuid: 'C0FFEE01', remote: { ip: '192.0.2.1' } };
const INTERNAL_ERROR = { code: 451, reply: '4.3.0 Internal error, try again later' };

type Body = (connection: unknown) => Promise<HookOutcome> | HookOutcome;

async function run(body: Body): Promise<NextCall> {
  const recorder = new NextRecorder();
  hook('rcpt', body)(recorder.next, CONNECTION);
  return recorder.settled();
}

function assertDsn(message: unknown, expected: { code: number; reply: string }): void {
  assert.ok(message instanceof DSN, 'the reply is a DSN object');
  assert.equal(message.constructor.name, 'DSN', 'Haraka recognises the reply by this name');
  assert.equal(message.code, expected.code);
  assert.equal(message.reply, expected.reply);
}

// A rejection nobody handles would make Haraka's worker die; the tests prove none happens.
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown): void => {
  unhandled.push(reason);
};
before(() => {
  process.on('unhandledRejection', onUnhandled);
});
after(() => {
  process.off('unhandledRejection', onUnhandled);
});

let reports: HookErrorReport[] = [];
beforeEach(() => {
  reports = [];
  setHookErrorReporter((report) => reports.push(report));
});

describe('hook outcomes', () => {
  it('continue becomes cont without a message', async () => {
    const call = await run(() => CONTINUE);
    assert.equal(call.code, HARAKA.cont);
    assert.equal(call.code, 900);
    assert.equal(call.message, undefined);
  });

  it('an async body resolving to continue becomes cont', async () => {
    const call = await run(async () => {
      await nextTurn();
      return CONTINUE;
    });
    assert.equal(call.code, HARAKA.cont);
  });

  it('accept without a reply becomes ok and leaves the text to Haraka', async () => {
    const call = await run(() => ({ kind: 'accept' }));
    assert.equal(call.code, HARAKA.ok);
    assert.equal(call.message, undefined);
  });

  it('accept with a reply becomes ok with a DSN', async () => {
    const reply: SmtpReply = { code: 250, enhanced: '2.1.5', text: 'Recipient ok' };
    const call = await run(() => ({ kind: 'accept', reply }));
    assert.equal(call.code, HARAKA.ok);
    assertDsn(call.message, { code: 250, reply: '2.1.5 Recipient ok' });
  });

  it('a 4xx refusal becomes denysoft', async () => {
    const call = await run(() => refuse('too-many-recipients'));
    assert.equal(call.code, HARAKA.denysoft);
    assertDsn(call.message,
      { code: 452, reply: '4.5.3 Too many recipients' });
  });

  it('a 4xx refusal with disconnect becomes denysoftdisconnect', async () => {
    const call = await run(() => refuse('draining', undefined, true));
    assert.equal(call.code, HARAKA.denysoftdisconnect);
    assertDsn(call.message, { code: 421, reply: '4.3.2 Service shutting down, try again later' });
  });

  it('a 5xx refusal becomes deny', async () => {
    const call = await run(() => refuse('downstream-rejected'));
    assert.equal(call.code, HARAKA.deny);
    assertDsn(call.message, { code: 550, reply: '5.0.0 Refused by the internal server' });
  });

  it('a 5xx refusal with disconnect becomes denydisconnect', async () => {
    const call = await run(() => refuse('early-talker', undefined, true));
    assert.equal(call.code, HARAKA.denydisconnect);
    assertDsn(call.message,
      { code: 554, reply: '5.5.0 Protocol violation: you talked before my greeting' });
  });

  it('a refusal with its own reply sends that reply, chosen by its code', async () => {
    const reply: SmtpReply = { code: 554, enhanced: '5.7.1', text: 'Virus found: Eicar' };
    const call = await run(() => refuse('nul', reply));
    assert.equal(call.code, HARAKA.deny);
    assertDsn(call.message, { code: 554, reply: '5.7.1 Virus found: Eicar' });
  });

  it('passes the Haraka arguments after next to the body', async () => {
    const recorder = new NextRecorder();
    let seen: unknown[] = [];
    const wrapped = hook('mail', (connection: unknown, params: unknown) => {
      seen = [connection, params];
      return CONTINUE;
    });
    wrapped(recorder.next, CONNECTION, ['<alice@sender.example>']);
    await recorder.settled();
    assert.deepEqual(seen, [CONNECTION, ['<alice@sender.example>']]);
  });
});

describe('hook failures', () => {
  it('a body that throws synchronously becomes one denysoft 451 4.3.0', async () => {
    const call = await run(() => {
      throw new Error('sync boom');
    });
    assert.equal(call.code, HARAKA.denysoft);
    assertDsn(call.message, INTERNAL_ERROR);
    assert.equal(reports.length, 1);
    assert.equal(reports[0]?.hook, 'rcpt');
    assert.equal((reports[0]?.error as Error).message, 'sync boom');
    assert.equal(reports[0]?.connection, CONNECTION);
  });

  it('an async body that rejects becomes one denysoft 451 4.3.0', async () => {
    const call = await run(async () => {
      throw new Error('async boom');
    });
    assert.equal(call.code, HARAKA.denysoft);
    assertDsn(call.message, INTERNAL_ERROR);
    assert.deepEqual(reports.map((report) => report.hook), ['rcpt']);
  });

  it('a promise that rejects later becomes one denysoft 451 4.3.0', async () => {
    const call = await run(() => new Promise<HookOutcome>((_resolve, reject) => {
      setTimeout(() => reject(new Error('late boom')), 20);
    }));
    assert.equal(call.code, HARAKA.denysoft);
    assertDsn(call.message, INTERNAL_ERROR);
    assert.equal((reports[0]?.error as Error).message, 'late boom');
  });

  it('a body resolving to nothing (a JavaScript mistake) becomes denysoft', async () => {
    const call = await run(() => undefined as unknown as HookOutcome);
    assert.equal(call.code, HARAKA.denysoft);
    assertDsn(call.message, INTERNAL_ERROR);
    assert.equal(reports.length, 1);
  });

  it('a rejection with a non-Error value is reported as it is', async () => {
    const call = await run(() => Promise.reject('plain string'));
    assert.equal(call.code, HARAKA.denysoft);
    assert.equal(reports[0]?.error, 'plain string');
  });

  it('next throwing does not escape and next is not called again', async () => {
    const recorder = new NextRecorder(true);
    const wrapped = hook('data_post', (_connection: unknown) => CONTINUE);
    assert.doesNotThrow(() => wrapped(recorder.next, CONNECTION));
    const call = await recorder.settled();
    assert.equal(call.code, HARAKA.cont);
    assert.deepEqual(reports.map((report) => report.hook), ['data_post:next']);
    assert.equal(reports[0]?.connection, CONNECTION);
  });

  it('next throwing on the error reply does not escape either', async () => {
    const recorder = new NextRecorder(true);
    assert.doesNotThrow(() => hook('rcpt', (_connection: unknown) => {
      throw new Error('boom');
    })(recorder.next, CONNECTION));
    const call = await recorder.settled();
    assert.equal(call.code, HARAKA.denysoft);
    assert.deepEqual(reports.map((report) => report.hook), ['rcpt', 'rcpt:next']);
  });

  it('a reporter that throws does not stop the 451 reply', async () => {
    setHookErrorReporter(() => {
      throw new Error('logger broken');
    });
    const call = await run(() => {
      throw new Error('boom');
    });
    assert.equal(call.code, HARAKA.denysoft);
    assertDsn(call.message, INTERNAL_ERROR);
  });

  it('a synchronous throw is answered at once, and only once', async () => {
    const recorder = new NextRecorder();
    hook('helo', (_connection: unknown) => {
      throw new Error('boom');
    })(recorder.next, CONNECTION);
    // The throw path answers at once; the settle wait then proves no second answer follows.
    assert.equal(recorder.calls.length, 1);
    await recorder.settled();
  });
});

describe('process survival', () => {
  it('no unhandled rejection fired during any test above', async () => {
    assert.ok(process.listeners('unhandledRejection').includes(onUnhandled));
    // Unhandled rejections are reported after the microtask queue drains; give them a turn.
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual(unhandled, []);
  });
});
