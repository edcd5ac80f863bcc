/*
 * `moat quarantine ...`: the administrator's view of held mail on this node.
 *
 *   list [--json] [--reason CODE] [--older-than AGE] [--all]
 *   show ID [--raw | --json]
 *   release ID --by NAME [--to ADDRESS]... [--again]
 *   delete ID [--by NAME]
 *   purge --older-than AGE [--by NAME] [--dry-run]
 *
 * Every subcommand works on the folder the gateway's configuration names (`quarantine.dir`,
 * default `<state>/quarantine`), or on `--dir`. Release delivers through the same Delivery the
 * gateway uses (the internal server from `downstream.address`, or the local Maildir).
 * What the sender wrote is shown only after passing through sanitizeForLog, and `--raw` is
 * the one way to get the bytes as stored.
 */

import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { Delivery } from '../delivery/types';
import { sanitizeForLog } from '../observability/sanitize';
import { AGE_EXPECTED, formatAge, parseAge } from '../quarantine/age';
import { releaseMessage } from '../quarantine/release';
import { checkId, type QuarantineRecord, type QuarantineStore } from '../quarantine/store';
import { ValueProblem } from '../config/values';
import { EXIT, UsageError } from './exit-codes';

export interface CliOutput {
  out(text: string | Buffer): void;
  err(text: string): void;
}

export interface QuarantineCommandContext {
  store: QuarantineStore;
  /** Opened only by `release`; closed afterwards. */
  openDelivery: () => Delivery;
  /** Default for --by: the invoking user. */
  defaultActor: string;
  io: CliOutput;
}

export const QUARANTINE_USAGE = `usage: moat quarantine <command> [options]

  list [--json] [--reason CODE] [--older-than AGE] [--all]
        held messages, oldest first (--all: released ones too)
  show ID [--raw | --json]
        the record and the message headers; --raw writes the stored bytes
  release ID --by NAME [--to ADDRESS]... [--again]
        deliver the original message to the internal server, marked as released
  delete ID [--by NAME]
        remove a message for good
  purge --older-than AGE [--by NAME] [--dry-run]
        remove everything stored longer ago than AGE (e.g. 30d, 12h)

common options: --dir PATH (quarantine folder; default from config/moat.ini)
`;

type Options = ParseArgsConfig['options'];

export async function runQuarantine(args: string[], context: QuarantineCommandContext) {
  const [command, ...rest] = args;
  switch (command) {
    case 'list': return list(rest, context);
    case 'show': return show(rest, context);
    case 'release': return release(rest, context);
    case 'delete': return remove(rest, context);
    case 'purge': return purge(rest, context);
    case undefined: case 'help': case '--help': case '-h':
      context.io.out(QUARANTINE_USAGE);
      return command === undefined ? EXIT.usage : EXIT.ok;
    default:
      throw new UsageError(`unknown quarantine command ${JSON.stringify(command)}; `
        + 'expected list, show, release, delete or purge');
  }
}

async function list(args: string[], { store, io }: QuarantineCommandContext) {
  const { values } = parse('list', args, {
    json: { type: 'boolean' }, reason: { type: 'string' }, 'older-than': { type: 'string' },
    all: { type: 'boolean' },
  }, 0);
  const records = await store.list({
    reason: values['reason'] as string | undefined,
    olderThanMs: age('--older-than', values['older-than'] as string | undefined),
    status: values['all'] ? 'any' : 'held',
  });

  if (values['json']) {
    io.out(`${JSON.stringify(records, null, 2)}\n`);
    return EXIT.ok;
  }
  const rows = records.map((record) => [
    record.id,
    record.storedAt.slice(0, 16).replace('T', ' '),
    shown(record.envelope.from || '<>', 40),
    shown(recipientsOf(record), 40),
    shown(record.verdict.reason + (record.status === 'released' ? ' (released)' : ''), 32),
    humanSize(record.size),
  ]);
  io.out(table(['ID', 'STORED (UTC)', 'FROM', 'TO', 'REASON', 'SIZE'], rows));
  io.out(`${records.length} message${records.length === 1 ? '' : 's'}\n`);
  return EXIT.ok;
}

async function show(args: string[], { store, io }: QuarantineCommandContext) {
  const { values, positionals } = parse('show', args, {
    raw: { type: 'boolean' }, json: { type: 'boolean' },
  }, 1);
  const id = idArgument(positionals);
  if (values['raw'] && values['json']) {
    throw new UsageError('show: --raw and --json exclude each other');
  }

  const record = await store.get(id);
  if (values['json']) {
    io.out(`${JSON.stringify(record, null, 2)}\n`);
    return EXIT.ok;
  }
  const bytes = await store.readMessage(id);
  if (values['raw']) {
    io.out(bytes);
    return EXIT.ok;
  }

  const lines = [
    `id:           ${record.id}`,
    `status:       ${record.status}`,
    `stored:       ${record.storedAt} on ${shown(record.node, 64)}`,
    `received:     ${record.receivedAt}`,
    `moat id:      ${shown(record.messageId, 64)}`,
    `client:       ${shown(describeClient(record.client), 120)}`,
    `from:         ${shown(record.envelope.from || '<>', 200)}`,
    `to:           ${shown(record.envelope.to.join(', '), 400)}`,
    `verdict:      ${record.verdict.action} ${record.verdict.reason}`
      + `${record.verdict.decidedBy ? ` (decided by ${shown(record.verdict.decidedBy, 64)})` : ''}`,
    `reasons:      ${record.reasons.join(', ')}`,
    `size:         ${record.size} bytes, sha256 ${record.sha256}`,
    'results:',
    ...record.results.map((result) => `  ${shown(result.check, 40)} = ${result.result}`
      + `${result.action ? ` -> ${result.action}` : ''}`
      + `${result.reason ? ` (${result.reason})` : ''}`
      + `${result.evidence ? ` ${shown(JSON.stringify(result.evidence), 300)}` : ''}`),
    'headers Moat would have added:',
    ...record.addedHeaders.map(([name, value]) => `  ${shown(name, 60)}: ${shown(value, 300)}`),
    ...record.releases.map((entry) => `released:     by ${entry.by} at ${entry.at} to `
      + `${entry.to.join(', ')} (${entry.downstream}: ${shown(entry.reply, 200)})`),
    '',
    '--- message headers ---',
    ...headerLines(bytes).map((line) => shown(line, 998)),
  ];
  io.out(`${lines.join('\n')}\n`);
  return EXIT.ok;
}

async function release(args: string[], context: QuarantineCommandContext) {
  const { values, positionals } = parse('release', args, {
    by: { type: 'string' }, to: { type: 'string', multiple: true }, again: { type: 'boolean' },
  }, 1);
  const id = idArgument(positionals);
  const by = values['by'] as string | undefined;
  if (!by) throw new UsageError('release: --by NAME is required (who releases, for the record)');

  const delivery = context.openDelivery();
  try {
    const outcome = await releaseMessage(context.store, delivery, id, {
      by, to: values['to'] as string[] | undefined, again: values['again'] === true,
    });
    const refused = outcome.delivery.recipients.filter((entry) => !entry.accepted);
    context.io.out(`released ${id} to ${outcome.record.releases.at(-1)?.to.join(', ')} via `
      + `${outcome.delivery.downstream}: ${outcome.delivery.code} ${outcome.delivery.enhanced} `
      + `${shown(outcome.delivery.text, 200)}\n`);
    for (const entry of refused) {
      context.io.err(`refused by the internal server: ${entry.recipient} ${entry.code} `
        + `${entry.enhanced} ${shown(entry.text, 200)}\n`);
    }
    return EXIT.ok;
  } finally {
    await delivery.close();
  }
}

async function remove(args: string[], { store, io, defaultActor }: QuarantineCommandContext) {
  const { values, positionals } = parse('delete', args, { by: { type: 'string' } }, 1);
  const id = idArgument(positionals);
  const unlock = await store.lock(id, 'delete');
  try {
    await store.delete(id, (values['by'] as string | undefined) ?? defaultActor);
  } finally {
    await unlock();
  }
  io.out(`deleted ${id}\n`);
  return EXIT.ok;
}

async function purge(args: string[], { store, io, defaultActor }: QuarantineCommandContext) {
  const { values } = parse('purge', args, {
    'older-than': { type: 'string' }, by: { type: 'string' }, 'dry-run': { type: 'boolean' },
  }, 0);
  const olderThanMs = age('--older-than', values['older-than'] as string | undefined);
  if (olderThanMs === undefined) {
    throw new UsageError(`purge: --older-than AGE is required (${AGE_EXPECTED})`);
  }

  if (values['dry-run']) {
    const records = await store.list({ olderThanMs, status: 'any' });
    for (const record of records) io.out(`would purge ${record.id} (stored ${record.storedAt})\n`);
    io.out(`${records.length} would be purged (older than ${formatAge(olderThanMs)})\n`);
    return EXIT.ok;
  }
  const purged = await store.purge(olderThanMs,
    (values['by'] as string | undefined) ?? defaultActor);
  for (const record of purged) io.out(`purged ${record.id} (stored ${record.storedAt})\n`);
  io.out(`${purged.length} purged (older than ${formatAge(olderThanMs)})\n`);
  return EXIT.ok;
}

/** parseArgs with Moat's error wording; `--dir` is accepted (main.ts consumed it). */
type Values = Record<string, string | boolean | string[] | undefined>;

function parse(
  command: string, args: string[], options: Options, positionals: number,
): { values: Values; positionals: string[] } {
  let parsed: { values: Values; positionals: string[] };
  try {
    parsed = parseArgs({
      args, options: { ...options, dir: { type: 'string' } }, allowPositionals: true, strict: true,
    });
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    throw new UsageError(`${command}: ${why}`, { cause: error });
  }
  if (parsed.positionals.length !== positionals) {
    const wanted = positionals === 0 ? 'no arguments besides options' : 'exactly one message id';
    throw new UsageError(`${command}: expected ${wanted}, got ${
      parsed.positionals.length === 0
        ? 'none'
        : parsed.positionals.map((p) => JSON.stringify(p)).join(' ')}`);
  }
  return parsed;
}

function idArgument(positionals: string[]): string {
  const id = positionals[0] ?? '';
  checkId(id);
  return id;
}

function age(option: string, raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  try {
    return parseAge(raw);
  } catch (error) {
    if (!(error instanceof ValueProblem)) throw error;
    throw new UsageError(`${option} ${JSON.stringify(raw)}: expected ${error.expected}`);
  }
}

function shown(text: string, max: number): string {
  return sanitizeForLog(text, max);
}

function recipientsOf(record: QuarantineRecord): string {
  const [first = '', ...others] = record.envelope.to;
  return others.length > 0 ? `${first} +${others.length}` : first;
}

function describeClient(client: Record<string, unknown>): string {
  const parts = [String(client['ip'] ?? '?')];
  if (client['helo']) parts.push(`helo ${String(client['helo'])}`);
  if (client['proxied_by']) parts.push(`via ${String(client['proxied_by'])}`);
  if (client['tls']) parts.push('tls');
  return parts.join(', ');
}

function headerLines(bytes: Buffer): string[] {
  const text = bytes.subarray(0, 256 * 1024).toString('latin1');
  const end = text.search(/\r?\n\r?\n/);
  return (end === -1 ? text : text.slice(0, end)).split(/\r?\n/);
}

function humanSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => (row[column] ?? '').length)));
  const line = (cells: string[]): string =>
    cells.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join('  ').trimEnd();
  return `${[line(header), ...rows.map(line)].join('\n')}\n`;
}
