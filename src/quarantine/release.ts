/*
 * Releasing a held message: the original bytes go to the internal server through the same
 * Delivery the gateway uses (the SMTP forwarder, or the local Maildir when no server is
 * configured), with one header prepended:
 *
 *   X-Moat-Released: by <name> at <ISO date>, id <quarantine id>
 *
 * Nothing else changes: the bytes after that header are the stored .eml, byte for byte, so
 * the released copy is the message the sender sent (with Moat's Received line), not a copy
 * re-rendered by Moat. The headers Moat would have added on delivery (spam score and the
 * like) are NOT added: the record keeps them for `moat quarantine show`.
 *
 * Decides: a release the internal server takes (250, or 250 for some recipients) is recorded
 * in the message's record and events.log and the message is marked released; any other
 * answer leaves it held and throws ReleaseDeliveryError saying whether to retry. A message
 * already released is refused unless `again` is set. A per-message lock stops two
 * administrators from delivering it twice at once.
 */

import { Readable } from 'node:stream';
import type { Delivery, DeliveryResult } from '../delivery/types';
import { ReleaseDeliveryError, ReleaseRefusedError } from './errors';
import type { QuarantineRecord, QuarantineStore } from './store';

export interface ReleaseOptions {
  /** Who releases: goes into the header, so a short name or address. */
  by: string;
  /** Recipients instead of the original ones. */
  to?: string[];
  /** Release a message that was released before. */
  again?: boolean;
  now?: () => Date;
}

export interface ReleaseOutcome {
  record: QuarantineRecord;
  delivery: DeliveryResult;
  header: string;
}

const RELEASER = /^[A-Za-z0-9][A-Za-z0-9._@+=-]{0,63}$/;
const ADDRESS = /^[^\s<>@"\\,;:()[\]\x00-\x1f\x7f]{1,64}@[A-Za-z0-9.-]{1,253}$/;

export async function releaseMessage(
  store: QuarantineStore,
  delivery: Delivery,
  id: string,
  options: ReleaseOptions,
): Promise<ReleaseOutcome> {
  if (!RELEASER.test(options.by)) {
    throw new ReleaseRefusedError(id, `--by must be a name or address of up to 64 letters, `
      + `digits or . _ @ + = -, got ${JSON.stringify(options.by.slice(0, 80))}`);
  }
  const badAddress = (options.to ?? []).find((address) => !ADDRESS.test(address));
  if (badAddress !== undefined) {
    throw new ReleaseRefusedError(id, `--to ${JSON.stringify(badAddress.slice(0, 80))} is not `
      + 'a plain address such as someone@example.com');
  }

  const record = await store.get(id);
  if (record.status === 'released' && !options.again) {
    const last = record.releases[record.releases.length - 1];
    throw new ReleaseRefusedError(id, `already released by ${last?.by ?? '?'} at `
      + `${last?.at ?? '?'} to ${last?.to.join(', ') ?? '?'} (use --again to send it again)`);
  }

  const unlock = await store.lock(id, 'release');
  try {
    // The original bytes behind one new header line.
    const at = (options.now ?? (() => new Date()))().toISOString();
    const header = `X-Moat-Released: by ${options.by} at ${at}, id ${id}`;
    const prefix = Buffer.from(`${header}\r\n`, 'latin1');
    const recipients = options.to && options.to.length > 0 ? options.to : record.envelope.to;
    const openReleased = (): Readable => Readable.from((async function* released() {
      yield prefix;
      yield* await store.openMessage(id);
    })());
    const result = await delivery.deliver(
      { sender: record.envelope.from, recipients }, openReleased, prefix.length + record.size,
    );

    // Only the internal server's 250 makes it a release.
    if (result.outcome !== 'delivered' && result.outcome !== 'partial') {
      throw new ReleaseDeliveryError(id, result.outcome === 'tempfail',
        `${result.code} ${result.enhanced} ${result.text}`.replace(/\s+/g, ' ').trim(),
        result.detail);
    }
    const accepted = result.recipients.filter((entry) => entry.accepted)
      .map((entry) => entry.recipient);
    const updated = await store.recordRelease(id, {
      by: options.by, at, to: accepted,
      reply: `${result.code} ${result.enhanced} ${result.text}`.replace(/\s+/g, ' ').trim(),
      downstream: result.downstream,
    });
    return { record: updated, delivery: result, header };
  } finally {
    await unlock();
  }
}
