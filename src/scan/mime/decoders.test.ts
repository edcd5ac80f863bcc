/*
 * The base64 decoder line by line: the fast path for whole-quantum lines and the careful path
 * for everything else must give the octets and the problems the same way, whatever the line
 * lengths, the trailing transport padding and the place of the final "=".
 */

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';

import { makeDecoder } from './decoders';

function decode(lines: string[]): { octets: Buffer; problems: string[] } {
  const problems: string[] = [];
  const decoder = makeDecoder('base64', (code, detail) => problems.push(`${code}: ${detail}`));
  const out = lines.map((line) => decoder.line(Buffer.from(line, 'latin1')));
  out.push(decoder.end(true));
  return { octets: Buffer.concat(out), problems };
}

/** `text` cut into lines of the given lengths in turn, each followed by `trailer`. */
function cut(text: string, lengths: number[], trailer = ''): string[] {
  const lines: string[] = [];
  for (let start = 0, turn = 0; start < text.length; turn += 1) {
    const length = lengths[turn % lengths.length] ?? 76;
    lines.push(text.slice(start, start + length) + trailer);
    start += length;
  }
  return lines;
}

describe('base64 decoder', () => {
  it('decodes every length and line layout to the original octets, without a problem', () => {
    for (let size = 0; size < 200; size += 7) {
      const original = randomBytes(size);
      const encoded = original.toString('base64');
      const layouts: Array<[number[], string]> = [
        [[76], ''], [[72], ''], [[4], ''], [[76], ' \t'], [[3, 5, 9], ''], [[1], ' '],
      ];
      for (const [lengths, trailer] of layouts) {
        // "==" cut across two lines is a problem of its own (the next test).
        const lines = cut(encoded, lengths, trailer).reduce<string[]>((joined, line) => {
          const last = joined.length - 1;
          if (line.startsWith('=') && joined[last]?.trimEnd().endsWith('=')) {
            joined[last] = `${joined[last]?.trimEnd()}${line}`;
          } else {
            joined.push(line);
          }
          return joined;
        }, []);
        const { octets, problems } = decode(lines);
        assert.deepEqual(octets, original, `size ${size}, lines ${lengths.join('/')}`);
        assert.deepEqual(problems, [], `size ${size}, lines ${lengths.join('/')}`);
      }
    }
  });

  it('reports padding cut across two lines as misplaced', () => {
    const { octets, problems } = decode(['QUI=', '=']);
    assert.equal(octets.toString('latin1'), 'AB');
    assert.deepEqual(problems, ['mime-base64-invalid: misplaced padding']);
  });

  it('reports characters outside the alphabet and still decodes the rest', () => {
    const { octets, problems } = decode(['QUJD', 'R!EVG', 'R0hJ']);
    assert.equal(octets.toString('latin1'), 'ABCDEFGHI');
    assert.deepEqual(problems, ['mime-base64-invalid: characters outside the base64 alphabet']);
  });

  it('reports data after the padding, even on a line of whole quanta', () => {
    const { octets, problems } = decode(['QUI=', 'QUJD']);
    assert.equal(octets.toString('latin1'), 'ABABC');
    assert.deepEqual(problems, ['mime-base64-invalid: data after the padding']);
  });

  it('reports a missing padding at the end', () => {
    const { octets, problems } = decode(['QUJDRA']);
    assert.equal(octets.toString('latin1'), 'ABCD');
    assert.deepEqual(problems, ['mime-base64-invalid: missing padding at the end']);
  });
});
