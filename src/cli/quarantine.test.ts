/*
 * `moat quarantine ...` end to end inside one process: runCli with the real configuration
 * loader (a temporary state and config folder), a real quarantine folder, and a real SMTP
 * server on loopback as the internal server. Checks output, files and exit codes.
 */

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, beforeEach, describe, it } from 'node:test';
import { RecordingServer } from '../delivery/test-server';
import { QuarantineStore, type QuarantineRecord } from '../quarantine/store';
import { EXIT } from './exit-codes';
import { runCli } from './main';

const MESSAGE = 'From: spammer@sender.example\r\nSubject: \x1b[31mred\x1b[0m offer\r\n\r\nhi\r\n';

interface Run {
  code: number;
  out: string;
  raw: Buffer;
  err: string;
}

describe('moat quarantine', () => {
  let server: RecordingServer;
  let stateDir: string;
  let env: NodeJS.ProcessEnv;
  let store: QuarantineStore;
  let held: QuarantineRecord;
  const folders: string[] = [];

  const run = async (...argv: string[]): Promise<Run> => {
    const out: Buffer[] = [];
    let err = '';
    const code = await runCli(argv, {
      out: (text) => out.push(Buffer.isBuffer(text) ? text : Buffer.from(text)),
      err: (text) => {
        err += text;
      },
    }, env);
    const raw = Buffer.concat(out);
    return { code, out: raw.toString('utf8'), raw, err };
  };

  const quarantineOne = (reason: string) => store.store({
    messageId: 'M1', receivedAt: new Date(),
    envelope: { from: 'spammer@sender.example', to: ['bob@example.com', 'eve@example.com'] },
    client: { ip: '203.0.113.9', helo: 'bad.example' },
    verdict: { action: 'quarantine', reason,
      reply: { code: 250, enhanced: '2.0.0', text: 'ok' }, decidedBy: 'spamd' },
    results: [{ check: 'spamd', result: 'fail', action: 'quarantine', evidence: { score: 9.5 } }],
    addedHeaders: [['X-Spam-Score', '9.5']],
  }, () => Readable.from([Buffer.from(MESSAGE, 'latin1')]));

  before(async () => {
    server = await RecordingServer.start();
  });
  after(async () => {
    await server.stop();
    folders.forEach((dir) => rmSync(dir, { recursive: true, force: true }));
  });
  beforeEach(async () => {
    stateDir = mkdtempSync(join(tmpdir(), 'moat-cli-state-'));
    const configDir = mkdtempSync(join(tmpdir(), 'moat-cli-config-'));
    folders.push(stateDir, configDir);
    env = {
      MOAT_STATE_DIR: stateDir, MOAT_CONFIG_DIR: configDir, MOAT_ROOT: stateDir,
      MOAT_DOWNSTREAM: `${server.address.host}:${server.address.port}`, USER: 'tester',
    };
    store = new QuarantineStore(join(stateDir, 'quarantine'));
    held = await quarantineOne('clean');
    server.messages.length = 0;
  });

  it('lists held messages as a table and as JSON, with filters', async () => {
    const table = await run('quarantine', 'list');
    assert.equal(table.code, EXIT.ok, table.err);
    assert.match(table.out, /^ID +STORED \(UTC\) +FROM +TO +REASON +SIZE$/m);
    assert.match(table.out, new RegExp(
      `^${held.id} .* spammer@sender.example +bob@example.com \\+1 +clean +\\d+ B$`, 'm'));
    assert.match(table.out, /^1 message$/m);

    const json = JSON.parse((await run('quarantine', 'list', '--json')).out);
    assert.equal(json[0].id, held.id);
    assert.match((await run('quarantine', 'list', '--reason', 'malware-found')).out,
      /^0 messages$/m);
    assert.match((await run('quarantine', 'list', '--older-than', '1d')).out, /^0 messages$/m);
  });

  it('shows the record and headers with escapes, and the exact bytes with --raw', async () => {
    const shown = await run('quarantine', 'show', held.id);
    assert.equal(shown.code, EXIT.ok, shown.err);
    assert.match(shown.out, /^client: +203\.0\.113\.9, helo bad\.example$/m);
    assert.match(shown.out, /^  X-Spam-Score: 9\.5$/m);
    assert.match(shown.out, /^Subject: \\x1b\[31mred\\x1b\[0m offer$/m, 'escape codes neutralised');
    assert.equal(shown.out.includes('\x1b'), false);

    const raw = await run('quarantine', 'show', held.id, '--raw');
    assert.equal(raw.raw.toString('latin1'), MESSAGE);
  });

  it('releases through the configured internal server and records who did it', async () => {
    const released = await run('quarantine', 'release', held.id, '--by', 'postmaster');
    assert.equal(released.code, EXIT.ok, released.err);
    assert.match(released.out, new RegExp(`^released ${held.id} to bob@example.com, `
      + `eve@example.com via 127\\.0\\.0\\.1:\\d+: 250 `));
    assert.equal(server.messages.length, 1);
    assert.match(server.messages[0]!.bytes.toString('latin1'),
      new RegExp(`^X-Moat-Released: by postmaster at [0-9T:.Z-]+, id ${held.id}\\r\\n${
        MESSAGE.replace(/[[\]\\^$.|?*+()]/g, '\\$&')}$`));
    assert.equal((await store.get(held.id)).releases[0]?.by, 'postmaster');

    const again = await run('quarantine', 'release', held.id, '--by', 'postmaster');
    assert.equal(again.code, EXIT.refused);
    assert.match(again.err, /already released by postmaster/);
  });

  it('deletes and purges, and exits with a precise code for each mistake', async () => {
    const other = await quarantineOne('clean');
    assert.equal((await run('quarantine', 'delete', other.id)).code, EXIT.ok);
    assert.equal((await run('quarantine', 'delete', other.id)).code, EXIT.notFound);

    const dry = await run('quarantine', 'purge', '--older-than', '0', '--dry-run');
    assert.match(dry.out, /^1 would be purged/m);
    const purged = await run('quarantine', 'purge', '--older-than', '0s');
    assert.equal(purged.code, EXIT.ok);
    assert.match(purged.out, new RegExp(`^purged ${held.id} `, 'm'));
    assert.deepEqual(await store.list({ status: 'any' }), []);

    const cases: Array<[string[], number, RegExp]> = [
      [['quarantine', 'show', '../../etc/passwd'], EXIT.usage, /not a quarantine id/],
      [['quarantine', 'show'], EXIT.usage, /expected exactly one message id, got none/],
      [['quarantine', 'show', held.id], EXIT.notFound, /no quarantined message/],
      [['quarantine', 'release', held.id], EXIT.usage, /--by NAME is required/],
      [['quarantine', 'purge'], EXIT.usage, /--older-than AGE is required/],
      [['quarantine', 'purge', '--older-than', 'soon'], EXIT.usage, /expected an age/],
      [['quarantine', 'list', '--bogus'], EXIT.usage, /Unknown option '--bogus'/],
      [['quarantine', 'frobnicate'], EXIT.usage, /unknown quarantine command/],
      [['frobnicate'], EXIT.usage, /unknown command/],
    ];
    for (const [argv, code, message] of cases) {
      const result = await run(...argv);
      assert.equal(result.code, code, argv.join(' '));
      assert.match(result.err, message, argv.join(' '));
    }
  });

  it('exits 75 when the internal server is unavailable and 78 on a bad configuration', async () => {
    server.finalReply = { code: 451, message: 'try later' };
    const later = await run('quarantine', 'release', held.id, '--by', 'postmaster');
    server.finalReply = null;
    assert.equal(later.code, EXIT.tempfail, later.err);
    assert.match(later.err, /stays held/);

    env['MOAT_DOWNSTREAM'] = 'mail:99999';
    const bad = await run('quarantine', 'list');
    assert.equal(bad.code, EXIT.config);
    assert.match(bad.err, /^moat: configuration error: MOAT_DOWNSTREAM/);
  });
});
