/*
 * A small INI reader that remembers where each value came from.
 *
 * Haraka's own reader (haraka-config) silently ignores what it does not understand; Moat needs
 * the opposite: every key is known, every value is validated, and an error names the file and
 * line. This reader only splits the text; src/config/load.ts gives the values meaning.
 *
 * Syntax: `[section]` or `[section name]` headers, `key = value` lines, `;` or `#` comments on
 * their own line. Values are trimmed; there is no quoting and no inline comment, so a value may
 * contain `;` (a regular expression, a banner text).
 */

import { ConfigError } from './errors';

export interface IniValue {
  value: string;
  file: string;
  line: number;
}

/** Section name → key → value. The unnamed top section is ''. */
export type IniDocument = Map<string, Map<string, IniValue>>;

const SECTION = /^\[\s*([A-Za-z0-9_.-]+)(?:\s+([^\]\s]+))?\s*\]$/;
const KEY_VALUE = /^([A-Za-z0-9_.-]+)\s*=\s*(.*)$/;

export function parseIni(text: string, file: string): IniDocument {
  const doc: IniDocument = new Map([['', new Map()]]);
  let section = '';

  const lines = text.split(/\r?\n/);
  for (let index = 0; index < lines.length; index++) {
    const lineNumber = index + 1;
    const line = (lines[index] ?? '').trim();
    if (line === '' || line.startsWith(';') || line.startsWith('#')) continue;

    // A section header: `[smtp]` or `[domain example.com]`.
    const header = SECTION.exec(line);
    if (header) {
      section = header[2] ? `${header[1]} ${header[2].toLowerCase()}` : (header[1] ?? '');
      if (doc.has(section)) {
        throw new ConfigError({
          source: `${file}:${lineNumber}`, key: `[${section}]`, value: line,
          expected: 'each section once (it was already opened earlier in the file)',
        });
      }
      doc.set(section, new Map());
      continue;
    }

    // A setting inside the current section.
    const setting = KEY_VALUE.exec(line);
    if (!setting) {
      throw new ConfigError({
        source: `${file}:${lineNumber}`, key: '(syntax)', value: line,
        expected: '`[section]`, `key = value`, or a comment starting with ; or #',
      });
    }
    const key = setting[1] ?? '';
    const entries = doc.get(section) ?? new Map<string, IniValue>();
    if (entries.has(key)) {
      const first = entries.get(key);
      throw new ConfigError({
        source: `${file}:${lineNumber}`, key: qualified(section, key), value: setting[2] ?? '',
        expected: `one value (already set on line ${first?.line})`,
      });
    }
    entries.set(key, { value: (setting[2] ?? '').trim(), file, line: lineNumber });
    doc.set(section, entries);
  }
  return doc;
}

export function qualified(section: string, key: string): string {
  return section === '' ? key : `${section}.${key}`;
}
