/*
 * The two readers of a message give the rules the same text: the scanning stage's parse
 * (what the gateway uses) adapted by scan-adapter.ts, and the rules' own reader (what
 * `moat rules test` and `moat rules explain` use). HTML parts are reduced to their text.
 */

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseMessage } from '../scan/mime/walker';
import { fromRawMessage } from './message';
import { fromParsedMessage, hasBodies } from './scan-adapter';

const HTML_MESSAGE = [
  'From: <a@sender.example>', 'Subject: =?utf-8?q?R=C3=A9sum=C3=A9?=', 'MIME-Version: 1.0',
  'Content-Type: multipart/alternative; boundary="alt"', '',
  '--alt', 'Content-Type: text/html; charset=utf-8', 'Content-Transfer-Encoding: quoted-printable',
  '',
  '<html><head><style>p { color: red }</style></head><body><p>Wire the <b>funds</b> to',
  'account&nbsp;42 &amp; hurry</p><!-- hidden note --><script>var x = "secret";</script>',
  '</body></html>',
  '--alt', 'Content-Type: application/pdf; name="a.pdf"', 'Content-Transfer-Encoding: base64',
  '', Buffer.from('%PDF-1.4\n').toString('base64'),
  '--alt--', '',
].join('\r\n');

test('an HTML part reaches the rules as its text, the same through both readers', async () => {
  const raw = Buffer.from(HTML_MESSAGE);
  const parsed = await parseMessage(raw, { keepBodyBytes: 1_000_000 });
  assert.ok(hasBodies(parsed));
  const shared = await fromParsedMessage(parsed, raw.length);
  const own = fromRawMessage(raw);

  for (const message of [shared, own]) {
    assert.match(message.text, /Wire the funds to\s+account\s42 & hurry/);
    assert.doesNotMatch(message.text, /<|color: red|hidden note|secret/);
    assert.equal(message.subject, 'Résumé');
    assert.deepEqual(message.attachments.map((file) => file.filename), ['a.pdf']);
  }
  assert.equal(shared.text.replace(/\s+/g, ' ').trim(), own.text.replace(/\s+/g, ' ').trim());
});

test('a parse that kept no bodies is not used for the rules', async () => {
  const parsed = await parseMessage(Buffer.from(HTML_MESSAGE));
  assert.equal(hasBodies(parsed), false);
});

test('bodies the parse spilled to files reach the rules whole: the text and the attachment',
  async () => {
    const text = `Invoice attached.\r\n${'filler line of the letter\r\n'.repeat(4000)}`
      + 'Wire it to account 42.\r\n';
    const attachment = Buffer.alloc(200_000, 0x42);
    const raw = Buffer.from([
      'Subject: spilled', 'Content-Type: multipart/mixed; boundary="b"', '', '--b',
      'Content-Type: text/plain; charset=us-ascii', '', text, '--b',
      'Content-Type: application/octet-stream; name="data.bin"',
      'Content-Transfer-Encoding: base64', '',
      attachment.toString('base64').replace(/.{76}/g, '$&\r\n'), '--b--', '',
    ].join('\r\n'));
    const dir = mkdtempSync(join(tmpdir(), 'moat-adapter-spill-'));
    try {
      const spill = { dir, inMemoryBytes: 10_000, files: [] as string[] };
      const parsed = await parseMessage(raw, { keepBodyBytes: 1_000_000, spill });
      assert.equal(spill.files.length, 2, 'both bodies went to files');
      assert.ok(hasBodies(parsed));

      const message = await fromParsedMessage(parsed, raw.length);
      assert.match(message.text, /^Invoice attached\.[\s\S]*Wire it to account 42\.\s*$/);
      assert.equal(message.attachments[0]?.filename, 'data.bin');
      // The head comes from the file alone (sniffing a large attachment loads 32 KB of it).
      assert.ok(message.attachments[0]?.head?.(512).equals(attachment.subarray(0, 512)));
      assert.equal(message.attachments[0]?.head?.(1_000_000).length, attachment.length);
      assert.ok(message.attachments[0]?.bytes.equals(attachment));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
