/*
 * `npm test`: runs every compiled test file with Node's test runner.
 *
 * Unit tests sit beside their modules (src/**, plugins/**); integration and end-to-end tests
 * live in test/. Each file is its own process and starts the real services it needs on free
 * loopback ports (test/harness). Two files run at a time: the machine has two cores and the
 * scanners are heavy. Arguments narrow the run to files whose path contains one of them.
 */

import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';

const DIST = resolve(__dirname, '..');

function findTests(dir: string, found: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) findTests(path, found);
    else if (name.endsWith('.test.js')) found.push(path);
  }
  return found;
}

const filters = process.argv.slice(2);
const files = ['src', 'plugins', 'test']
  .flatMap((folder) => {
    try {
      return findTests(join(DIST, folder));
    } catch {
      return [];
    }
  })
  .filter((file) => filters.length === 0 || filters.some((filter) => file.includes(filter)))
  .sort();

if (files.length === 0) {
  process.stderr.write(`no test files match ${filters.join(' ')}\n`);
  process.exit(1);
}
process.stdout.write(`running ${files.length} test files: ${
  files.map((file) => relative(DIST, file)).join(' ')}\n`);

const result = spawnSync(process.execPath, [
  '--test', '--test-concurrency=2', '--test-reporter=spec', ...files,
], { stdio: 'inherit', env: { ...process.env, MOAT_TEST: '1' } });
process.exit(result.status ?? 1);
