/*
 * Proves the harness's promise that no daemon outlives its test process: a child node process
 * starts a real redis-server through the harness and then dies without stopping it (an
 * uncaught exception, a SIGTERM, a plain exit); the redis port must refuse afterwards.
 *
 * Each service has its own test beside its module (redis, clamd, spamd, dns, downstream,
 * smtp-talk); this file covers what they share.
 */

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { redisAnswersPing } from './redis';
import { messageDate, withCurrentDate } from './samples';

type Ending = 'throw' | 'sigterm' | 'exit';

/** Run a child that starts redis, report its port and temp dir, then end it as asked. */
function runChild(ending: Ending): Promise<{ port: number; workDir: string; code: number | null }> {
  const harness = JSON.stringify(join(__dirname, 'redis.js'));
  const script = `
    const { startRedis } = require(${harness});
    startRedis().then((redis) => {
      console.log(JSON.stringify({ port: redis.port, workDir: redis.workDir }));
      if (${JSON.stringify(ending)} === 'throw') setTimeout(() => { throw new Error('boom'); }, 10);
      if (${JSON.stringify(ending)} === 'exit') setTimeout(() => process.exit(3), 10);
      if (${JSON.stringify(ending)} === 'sigterm') setInterval(() => {}, 1000);
    });
  `;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    let report: { port: number; workDir: string } | undefined;
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (report || !output.includes('\n')) return;
      report = JSON.parse(output.split('\n')[0] as string);
      if (ending === 'sigterm') child.kill('SIGTERM');
    });
    child.once('error', reject);
    child.once('exit', (code) => {
      if (!report) return reject(new Error(`child reported nothing: ${output}`));
      resolve({ port: report.port, workDir: report.workDir, code });
    });
  });
}

describe('harness safety net', () => {
  for (const ending of ['throw', 'sigterm', 'exit'] as const) {
    it(`kills redis-server when its test process ends by ${ending}`, async () => {
      const { port, code } = await runChild(ending);
      assert.notEqual(code, 0);
      // The SIGKILL may still be landing: a reset means "dying", a refusal means "gone".
      const deadline = Date.now() + 3000;
      let lastError = '';
      while (Date.now() < deadline) {
        lastError = await redisAnswersPing(port, 1000).then(() => 'answered', (e) => String(e));
        if (/ECONNREFUSED/.test(lastError)) break;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.match(lastError, /ECONNREFUSED/);
    });
  }

  it('removes the temporary directory of a daemon left running', async () => {
    // Its own directory, not just any moat-redis-* (other test files run Redis meanwhile).
    const { workDir } = await runChild('exit');
    assert.match(workDir, /moat-redis-/, 'the child made a moat-redis- directory');
    assert.equal(existsSync(workDir), false);
  });
});

describe('test message dates', () => {
  it('are RFC 5322 dates of the time given, and a fixture gets the current one', () => {
    assert.equal(messageDate(new Date(Date.UTC(2026, 11, 4, 9, 5, 7))),
      'Fri, 04 Dec 2026 09:05:07 +0000');
    const fixture = 'From: a@example.org\r\nDate: Thu, 03 Dec 2026 12:00:00 +0000\r\n\r\n'
      + 'Date: body\r\n';
    const dated = withCurrentDate(fixture);
    const header = /^Date: (.*)\r$/m.exec(dated)?.[1] ?? '';
    assert.ok(Math.abs(Date.parse(header) - Date.now()) < 5000, header);
    assert.ok(dated.endsWith('\r\n\r\nDate: body\r\n'), 'the body was changed');
  });
});
