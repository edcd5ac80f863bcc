/*
 * The MIME walker against the corpus in test/fixtures/mime: each `clean-*.eml` must read
 * without a problem, each `<code>--<variant>.eml` must report <code> first. Also: decoding,
 * file names, limits, and that chunking does not change the result.
 */

import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';

import { MimeWalker, parseMessage } from './walker';

const CORPUS = resolve(__dirname, '..', '..', '..', '..', 'test', 'fixtures', 'mime');
const MARKER = 'harmless attachment payload\n';

function crlf(text: string): Buffer {
  return Buffer.from(text.replace(/\r?\n/g, '\r\n'), 'latin1');
}

describe('MIME corpus', () => {
  const files = readdirSync(CORPUS).filter((name) => name.endsWith('.eml')).sort();
  it('has clean and problem variants', () => {
    assert.ok(files.filter((name) => name.startsWith('clean-')).length >= 4);
    assert.ok(files.filter((name) => name.includes('--')).length >= 20);
  });
  for (const name of files) {
    const expected = name.startsWith('clean-') ? null : name.split('--')[0];
    it(`${name} → ${expected ?? 'no problem'}`, async () => {
      const parsed = await parseMessage(readFileSync(join(CORPUS, name)));
      const codes = parsed.problems.map((problem) => problem.code);
      if (expected === null) assert.deepEqual(parsed.problems, []);
      else assert.equal(codes[0], expected, JSON.stringify(parsed.problems));
    });
  }
});

describe('MimeWalker', () => {
  it('decodes base64 and quoted-printable parts and finds file names', async () => {
    const parsed = await parseMessage(readFileSync(join(CORPUS, 'clean-multipart-folded.eml')),
      { keepBodyBytes: 1024 });
    const attachment = parsed.attachments[0];
    assert.equal(parsed.attachments.length, 1);
    assert.equal(attachment?.filename, 'a.bin');
    assert.equal(attachment?.body?.toString('latin1'), MARKER);
    assert.equal(attachment?.decodedBytes, MARKER.length);
    assert.equal(parsed.parts[0]?.contentType, 'multipart/mixed');
    assert.equal(parsed.parts[1]?.body?.toString(), 'hi');

    const nested = await parseMessage(readFileSync(join(CORPUS, 'clean-nested.eml')),
      { keepBodyBytes: 1024 });
    const html = nested.parts.find((part) => part.contentType === 'text/html');
    assert.equal(html?.body?.toString('utf8'), '<p>café softbreak</p>');
    assert.equal(html?.path, '1.2');
    const inner = nested.parts.find(
      (part) => part.headers.some((field) => field.value === 'inner'));
    assert.equal(inner?.depth, 2);
    assert.equal(inner?.body?.toString(), 'forwarded');
  });

  it('joins RFC 2231 continuations and RFC 2047 words in names', async () => {
    const rfc2231 = await parseMessage(readFileSync(join(CORPUS, 'clean-rfc2231.eml')));
    assert.equal(rfc2231.attachments[0]?.filename, 'résum.pdf');
    const words = await parseMessage(readFileSync(join(CORPUS, 'clean-encoded-word-fold.eml')));
    assert.equal(words.attachments[0]?.filename, 'rapport.pdf');
  });

  it('gives the same result whatever the chunking', async () => {
    const message = readFileSync(join(CORPUS, 'clean-nested.eml'));
    const whole = await parseMessage(message, { keepBodyBytes: 1024 });
    const walker = new MimeWalker({ keepBodyBytes: 1024 });
    for (let start = 0; start < message.length; start += 7) {
      await walker.write(message.subarray(start, start + 7));
    }
    const pieces = await walker.end();
    assert.deepEqual(pieces.parts.map((part) => [part.path, part.body?.toString()]),
      whole.parts.map((part) => [part.path, part.body?.toString()]));
  });

  it('keeps bodies past the in-memory budget in files, byte for byte', async () => {
    const big = Buffer.alloc(300_000, 0x41);
    for (let index = 0; index < big.length; index += 997) big[index] = index % 251;
    const small = Buffer.from('small text part\r\n');
    const base64 = (bytes: Buffer): string => bytes.toString('base64').replace(/.{76}/g, '$&\n');
    const message = crlf(['Content-Type: multipart/mixed; boundary="b"', '', '--b',
      'Content-Type: text/plain', '', small.toString().trimEnd(), '--b',
      'Content-Type: application/octet-stream; name="big.bin"',
      'Content-Transfer-Encoding: base64', '', base64(big), '--b--', ''].join('\n'));
    const dir = mkdtempSync(join(tmpdir(), 'moat-walker-spill-'));
    try {
      const spill = { dir, inMemoryBytes: 100_000, files: [] as string[] };
      const parsed = await parseMessage(message, { keepBodyBytes: 1_000_000, spill });

      // The small part stays in memory; the big one crossed the budget and went to a file.
      assert.equal(parsed.parts[1]?.body?.toString(), 'small text part');
      const attachment = parsed.attachments[0];
      assert.equal(attachment?.body, undefined);
      assert.ok(attachment?.bodyFile);
      assert.deepEqual(spill.files, [attachment.bodyFile]);
      assert.ok(readFileSync(attachment.bodyFile).equals(big));
      assert.equal(attachment.decodedBytes, big.length);

      // Without a spill, the same message keeps everything in memory.
      const inMemory = await parseMessage(message, { keepBodyBytes: 1_000_000 });
      assert.ok(inMemory.attachments[0]?.body?.equals(big));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('streams decoded leaf bytes to a sink', async () => {
    const seen: string[] = [];
    await parseMessage(readFileSync(join(CORPUS, 'clean-multipart-folded.eml')), {}, {
      partStart: (part) => { seen.push(`start ${part.path}`); },
      partData: (part, chunk) => { seen.push(`${part.path}:${chunk.toString('latin1')}`); },
      partEnd: (part) => { seen.push(`end ${part.path}`); },
    });
    assert.deepEqual(seen, ['start 1', '1:hi', 'end 1', 'start 2', `2:${MARKER}`, 'end 2']);
  });

  it('hands a sink every decoded octet in order, one chunk at a time, whatever the chunking',
    async () => {
      const payload = Buffer.alloc(300_000);
      for (let index = 0; index < payload.length; index += 1) payload[index] = (index * 7) % 251;
      // No CRLF after the closing boundary: the message ends in the middle of a line.
      const raw = Buffer.from(['Content-Type: multipart/mixed; boundary="b"', '', '--b',
        'Content-Type: application/octet-stream', 'Content-Transfer-Encoding: base64', '',
        payload.toString('base64').replace(/.{76}/g, '$&\r\n'), '--b--'].join('\r\n'));
      for (const size of [1000, 65_536, 7]) {
        const received: Buffer[] = [];
        const walker = new MimeWalker({}, {
          partData: (_part, chunk) => { received.push(Buffer.from(chunk)); },
        });
        for (let at = 0; at < raw.length; at += size) {
          await walker.write(raw.subarray(at, at + size));
        }
        const parsed = await walker.end();
        assert.deepEqual(parsed.problems, [], `chunks of ${size}`);
        assert.ok(Buffer.concat(received).equals(payload), `chunks of ${size}: octets in order`);
        // Decoded octets leave with the chunk that brought them, not gathered over many.
        const largest = Math.max(...received.map((chunk) => chunk.length));
        assert.ok(largest <= Math.max(size, 80), `chunks of ${size}: ${largest} at once`);
      }
    });

  it('reports nesting deeper than the limit', async () => {
    const text = crlf(['Content-Type: multipart/mixed; boundary="top"', '', '--top',
      'Content-Type: multipart/mixed; boundary="a1"', '', '--a1',
      'Content-Type: multipart/mixed; boundary="b2"', '', '--b2', 'Content-Type: text/plain',
      '', 'deep', '--b2--', '--a1--', '--top--', ''].join('\n'));
    const parsed = await parseMessage(text, { maxDepth: 1 });
    assert.equal(parsed.problems[0]?.code, 'mime-too-deep');
    assert.deepEqual((await parseMessage(text)).problems, []);
  });

  it('reports more parts than the limit and stops', async () => {
    const lines = ['Content-Type: multipart/mixed; boundary="p"', ''];
    for (let index = 0; index < 10; index += 1) lines.push('--p', '', `part ${index}`);
    lines.push('--p--', '');
    const parsed = await parseMessage(crlf(lines.join('\n')), { maxParts: 5 });
    assert.equal(parsed.problems[0]?.code, 'mime-too-many-parts');
    assert.equal(parsed.parts.length, 5);
  });
});
