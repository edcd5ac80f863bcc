/*
 * Exit codes of the `moat` command-line tool, from sysexits.h so scripts can tell a typo from
 * a missing message from a mail server that said "try later".
 */

import { ConfigError } from '../config/errors';
import {
  QuarantineIdError, QuarantineIoError, QuarantineNotFoundError, ReleaseDeliveryError,
  ReleaseRefusedError,
} from '../quarantine/errors';

export const EXIT = {
  ok: 0,
  /** Unknown command or option, missing or malformed argument, malformed id. */
  usage: 64,
  /** The request is well-formed but refused: already released, bad --by or --to. */
  refused: 65,
  /** No message with that id. */
  notFound: 66,
  /** The internal server refused the released message for good (5xx). */
  unavailable: 69,
  /** The quarantine folder could not be read or written. */
  io: 74,
  /** Try again later: the internal server answered 4xx or was down, or a lock is held. */
  tempfail: 75,
  /** The configuration is invalid. */
  config: 78,
} as const;

/** A command-line mistake: the message says what was expected. */
export class UsageError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'UsageError';
  }
}

export function exitCodeFor(error: unknown): number {
  if (error instanceof UsageError || error instanceof QuarantineIdError) return EXIT.usage;
  if (error instanceof ReleaseRefusedError) return EXIT.refused;
  if (error instanceof QuarantineNotFoundError) return EXIT.notFound;
  if (error instanceof ReleaseDeliveryError) {
    return error.temporary ? EXIT.tempfail : EXIT.unavailable;
  }
  if (error instanceof QuarantineIoError) return error.lockHeld ? EXIT.tempfail : EXIT.io;
  if (error instanceof ConfigError) return EXIT.config;
  return 70;
}
