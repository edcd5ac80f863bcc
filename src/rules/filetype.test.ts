/* True types, zip listing, encryption, macros, mismatches and double extensions. */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { zipArchive } from '../../test/harness/samples';
import {
  hasDoubleExtension, hasMacros, listZip, refineZipType, sniffType, typeMismatch,
} from './filetype';

test('magic bytes', () => {
  assert.equal(sniffType(Buffer.from('MZ\x90\x00', 'latin1')), 'exe');
  assert.equal(sniffType(Buffer.from('%PDF-1.7\n')), 'pdf');
  assert.equal(sniffType(Buffer.from('d0cf11e0a1b11ae1', 'hex')), 'ole');
  assert.equal(sniffType(Buffer.from('89504e470d0a1a0a', 'hex')), 'png');
  assert.equal(sniffType(Buffer.from('hello, world\n')), 'text');
});

test('zip listing, nested zips, types inside and the encrypted flag', () => {
  const inner = zipArchive([{ name: 'payload.exe', content: Buffer.from('MZ fake program') }]);
  const outer = zipArchive([
    { name: 'readme.txt', content: Buffer.from('hi') }, { name: 'inner.zip', content: inner },
  ]);
  const listing = listZip(outer, 'outer.zip');
  assert.deepEqual(
    listing.members.map((member) => `${member.archive}:${member.name}:${member.trueType}`),
    ['outer.zip:readme.txt:text', 'outer.zip:inner.zip:zip',
      'outer.zip/inner.zip:payload.exe:exe']);
  assert.equal(listing.broken, false);
  const encrypted = zipArchive([{ name: 'a.txt', content: Buffer.from('x') }], { stored: true });
  encrypted.writeUInt16LE(1, encrypted.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02])) + 8);
  assert.equal(listZip(encrypted, 'e.zip').members[0]?.encrypted, true);
  assert.equal(listZip(Buffer.from('not a zip'), 'x.zip').broken, true);
});

test('office macros and ooxml recognition', () => {
  const docm = zipArchive([
    { name: '[Content_Types].xml', content: Buffer.from('<x/>') },
    { name: 'word/vbaProject.bin', content: Buffer.from('v') },
  ]);
  const members = listZip(docm, 'a.docm').members;
  assert.equal(refineZipType(members), 'ooxml');
  assert.equal(hasMacros(() => docm, 'ooxml', members), true);
  const ole = Buffer.concat([
    Buffer.from('d0cf11e0a1b11ae1', 'hex'), Buffer.from('_VBA_PROJECT', 'utf16le'),
  ]);
  assert.equal(hasMacros(() => ole, 'ole', []), true);
  assert.equal(hasMacros(() => Buffer.from('d0cf11e0a1b11ae1', 'hex'), 'ole', []), false);
});

test('type mismatch and double extensions', () => {
  assert.equal(typeMismatch('report.pdf', 'application/pdf', 'exe'), true);
  assert.equal(typeMismatch('report.pdf', 'application/pdf', 'pdf'), false);
  assert.equal(typeMismatch('photo.jpg', 'application/octet-stream', 'png'), true);
  assert.equal(typeMismatch('data.bin', 'application/octet-stream', 'zip'), false);
  assert.equal(hasDoubleExtension('invoice.pdf.exe'), true);
  assert.equal(hasDoubleExtension('scan.doc .js'), true);
  assert.equal(hasDoubleExtension('archive.tar.gz'), false);
  assert.equal(hasDoubleExtension('setup.exe'), false);
});
