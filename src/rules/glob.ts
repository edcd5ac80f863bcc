/*
 * Shell-style globs for addresses and file names: `*` any run of characters, `?` one
 * character, `[abc]` one of a set. Matching is case-insensitive and covers the whole text.
 */

export function globToRegExp(glob: string): RegExp {
  let source = '';
  for (let index = 0; index < glob.length; index++) {
    const char = glob[index] ?? '';
    if (char === '*') source += '.*';
    else if (char === '?') source += '.';
    else if (char === '[') {
      const close = glob.indexOf(']', index + 1);
      if (close > index + 1) {
        const set = glob.slice(index + 1, close).replace(/\\/g, '\\\\').replace(/^!/, '^');
        source += `[${set}]`;
        index = close;
      } else {
        source += '\\[';
      }
    } else source += char.replace(/[.+^${}()|\\\]]/g, '\\$&');
  }
  return new RegExp(`^${source}$`, 'is');
}
