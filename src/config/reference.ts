/*
 * Renders the settings table (defaults.ts) as the commented reference in config/moat.ini.
 *
 * `node dist/src/config/reference.js > config/moat.ini` regenerates the shipped file; a test
 * checks the shipped file still documents every key, so the table and the file cannot drift.
 */

import { SETTINGS } from './defaults';

export function renderReference(): string {
  const out: string[] = [
    '; Moat configuration. Every setting is listed here, commented out, with its shipped',
    '; default and the reason for it. Uncomment and change what you need; MOAT_* variables',
    '; (named beside a setting) override this file. A bad value stops start-up with the file,',
    '; line, key and what was expected. Sizes take k/M/G; durations take ms/s/m/h.',
    ';',
    '; Per-domain recipient checks go in sections like:',
    ';   [domain example.com]',
    ';   recipients = list+verify',
  ];
  // One block per section, in order of first appearance: the loader refuses a repeated
  // section, and several tables (core, reputation, scan ...) may add keys to one section.
  const sections = [...new Set(SETTINGS.map((spec) => spec.section))];
  for (const section of sections) {
    out.push('', `[${section}]`);
    for (const spec of SETTINGS.filter((candidate) => candidate.section === section)) {
      const env = spec.env ? ` (env ${spec.env})` : '';
      out.push(`; ${spec.why}${env}`);
      out.push(`;${spec.key} = ${spec.default}`);
    }
  }
  return `${out.join('\n')}\n`;
}

if (require.main === module) process.stdout.write(renderReference());
