/*
 * The safety net around every Haraka hook Moat registers.
 *
 * Haraka 3.3.4 hooks take an untyped `next` callback; a hook that throws, or whose promise
 * rejects, kills the worker, and one that never calls `next` leaves the client waiting for the
 * plugin timeout. Moat's hooks are async functions returning a HookOutcome; hook() adapts them
 * so that `next` is called exactly once, and any error becomes a logged 451 4.3.0 (reason
 * `internal-error`) with a metric, never a dead worker or a hung client.
 *
 * Replies are passed to Haraka as an object whose class is named `DSN`: Haraka's respond()
 * recognises that name and takes the code and text from it, so Moat chooses the exact SMTP code
 * (552, 554, 421 ...) rather than Haraka's defaults.
 */

import { declareHook } from '../observability/metrics';
import { REASONS, type ReasonCode, type SmtpReply } from '../verdict/reasons';

// haraka-constants is CommonJS without types.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const constants = require('haraka-constants') as Record<string, number>;

export const HARAKA = {
  cont: constants['cont'] ?? 900,
  deny: constants['deny'] ?? 902,
  denysoft: constants['denysoft'] ?? 903,
  denydisconnect: constants['denydisconnect'] ?? 904,
  ok: constants['ok'] ?? 906,
  denysoftdisconnect: constants['denysoftdisconnect'] ?? 909,
} as const;

/** Named `DSN` on purpose: Haraka checks `msg.constructor.name === 'DSN'`. */
export class DSN {
  readonly code: number;
  readonly reply: string;

  constructor(reply: SmtpReply) {
    this.code = reply.code;
    this.reply = `${reply.enhanced} ${reply.text}`;
  }
}

export type HookOutcome =
  /** Let the next plugin decide (Haraka's CONT). */
  | { kind: 'continue' }
  /** Accept now (Haraka's OK), optionally with our own text. */
  | { kind: 'accept'; reply?: SmtpReply }
  /** Haraka's OK with a plain value: how lookup_rdns is given the client's name. */
  | { kind: 'value'; value: string }
  /** Refuse with this reply; 4xx becomes DENYSOFT, 5xx DENY. */
  | { kind: 'refuse'; reply: SmtpReply; disconnect?: boolean };

export const CONTINUE: HookOutcome = { kind: 'continue' };

export function refuse(reason: ReasonCode, reply?: SmtpReply, disconnect = false): HookOutcome {
  return { kind: 'refuse', reply: reply ?? { ...REASONS[reason].reply }, disconnect };
}

type Next = (code?: number, message?: unknown) => void;

export interface HookErrorReport {
  hook: string;
  error: unknown;
  /** The Haraka connection object, for the log line. */
  connection: unknown;
}

let errorReporter: (report: HookErrorReport) => void = (report) => {
  process.stderr.write(`moat: hook ${report.hook} failed: ${String(report.error)}\n`);
};

/** The runtime installs the reporter that logs and counts hook failures. */
export function setHookErrorReporter(reporter: (report: HookErrorReport) => void): void {
  errorReporter = reporter;
}

/**
 * Wraps an async hook body into the callback form Haraka calls. `name` is a bounded label
 * used in logs and metrics (`rcpt`, `data_post` ...).
 */
export function hook<Args extends unknown[]>(
  name: string,
  body: (...args: Args) => Promise<HookOutcome> | HookOutcome,
): (next: Next, ...args: Args) => void {
  declareHook(name);
  return function wrapped(next: Next, ...args: Args): void {
    let answered = false;
    const answer = (code?: number, message?: unknown): void => {
      if (answered) return;
      answered = true;
      try {
        next(code, message);
      } catch (error) {
        // Haraka's own reply path threw; there is nobody left to answer, so only report it.
        safeReport({ hook: `${name}:next`, error, connection: args[0] });
      }
    };

    let pending: Promise<HookOutcome> | HookOutcome;
    try {
      pending = body(...args);
    } catch (error) {
      fail(name, error, args[0], answer);
      return;
    }
    Promise.resolve(pending).then(
      (outcome) => deliverOutcome(outcome, answer),
      (error: unknown) => fail(name, error, args[0], answer),
    ).catch((error: unknown) => fail(name, error, args[0], answer));
  };
}

function deliverOutcome(outcome: HookOutcome, answer: Next): void {
  switch (outcome.kind) {
    case 'continue':
      answer(HARAKA.cont);
      return;
    case 'accept':
      answer(HARAKA.ok, outcome.reply ? new DSN(outcome.reply) : undefined);
      return;
    case 'value':
      answer(HARAKA.ok, outcome.value);
      return;
    case 'refuse': {
      const temporary = outcome.reply.code < 500;
      const code = temporary
        ? (outcome.disconnect ? HARAKA.denysoftdisconnect : HARAKA.denysoft)
        : (outcome.disconnect ? HARAKA.denydisconnect : HARAKA.deny);
      answer(code, new DSN(outcome.reply));
      return;
    }
    default:
      // Unreachable for typed callers; a malformed outcome must still answer the client.
      throw new TypeError(`hook outcome of unknown kind ${JSON.stringify(outcome)}`);
  }
}

function fail(name: string, error: unknown, connection: unknown, answer: Next): void {
  safeReport({ hook: name, error, connection });
  answer(HARAKA.denysoft, new DSN({ ...REASONS['internal-error'].reply }));
}

function safeReport(report: HookErrorReport): void {
  try {
    errorReporter(report);
  } catch {
    // Reporting must never be what kills the worker.
  }
}
