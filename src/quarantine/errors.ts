/*
 * Error classes of the quarantine. Each names the message id (when there is one), the folder
 * and what was being done, and keeps the cause; the command-line tool maps each class to an
 * exit code (src/cli/exit-codes.ts).
 */

/** Not the shape of a quarantine id: refused before it touches a path. */
export class QuarantineIdError extends Error {
  constructor(readonly id: string) {
    super(`not a quarantine id: ${JSON.stringify(id.slice(0, 80))} `
      + '(ids look like 20261203-194512-3f9a0c1b2d4e; see `moat quarantine list`)');
    this.name = 'QuarantineIdError';
  }
}

export class QuarantineNotFoundError extends Error {
  constructor(readonly id: string, readonly dir: string) {
    super(`no quarantined message ${id} in ${dir} (deleted, purged, or held on another node?)`);
    this.name = 'QuarantineNotFoundError';
  }
}

export type QuarantineOperation = 'store' | 'list' | 'read' | 'lock' | 'release' | 'delete';

/** The filesystem refused: full disk, permissions, a lock held by someone else. */
export class QuarantineIoError extends Error {
  constructor(
    readonly operation: QuarantineOperation,
    readonly id: string | null,
    readonly dir: string,
    options: { cause: unknown },
  ) {
    const cause = options.cause as NodeJS.ErrnoException | null;
    const what = id ? `${operation} ${id}` : operation;
    const held = operation === 'lock' && cause?.code === 'EEXIST'
      ? ': another release or delete of this message is in progress (or crashed; the lock '
        + 'file expires after an hour)'
      : `: ${cause instanceof Error ? cause.message : String(cause)}`;
    super(`quarantine ${dir}: cannot ${what}${held}`, options);
    this.name = 'QuarantineIoError';
  }

  get lockHeld(): boolean {
    return this.operation === 'lock'
      && (this.cause as NodeJS.ErrnoException | null)?.code === 'EEXIST';
  }
}

/** A release the tool refuses before delivering anything. */
export class ReleaseRefusedError extends Error {
  constructor(readonly id: string, why: string) {
    super(`not releasing ${id}: ${why}`);
    this.name = 'ReleaseRefusedError';
  }
}

/** The internal server did not take the released copy. */
export class ReleaseDeliveryError extends Error {
  constructor(
    readonly id: string,
    readonly temporary: boolean,
    readonly reply: string,
    detail: string,
  ) {
    super(`release of ${id} not delivered: ${reply} (${detail}); the message stays held`);
    this.name = 'ReleaseDeliveryError';
  }
}
