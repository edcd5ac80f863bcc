/*
 * The two readers of a message give the rules the same text: the scanning stage's parse
 * (what the gateway uses) adapted by scan-adapter.ts, and the rules' own reader (what
 * `moat rules test` and `moat rules explain` use). HTML parts are reduced to their text.
 */

import assert from 'node:assert/strict';
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
  const shared = fromParsedMessage(parsed, raw.length);
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
