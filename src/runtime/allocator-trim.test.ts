/*
 * The allocator trim: the built module gives freed memory back to the system (the resident
 * size falls), and a missing module is reported with its path instead of failing.
 */

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

import {
  loadTrimModule, TRIM_MODULE_PATH, trimAllocator, trimUnavailableReason,
} from './allocator-trim';

/** V8's collector, which the test runner's processes do not expose. */
function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

describe('allocator trim', () => {
  test('the built module is there, and trimming gives freed Buffers back', async () => {
    assert.equal(trimUnavailableReason(), null, `build it: sh scripts/build-native.sh`);
    trimAllocator();

    // 150 MB in 64 KB blocks, glibc's arenas (below the mmap threshold of 128 KB).
    let blocks: Buffer[] | null = [];
    for (let i = 0; i < 2400; i += 1) blocks.push(Buffer.allocUnsafeSlow(65536).fill(7));
    const full = process.memoryUsage.rss();
    blocks = null;
    // V8 frees ArrayBuffer memory on a helper thread after the collection; give it a moment.
    collectGarbage();
    await new Promise((resolve) => setTimeout(resolve, 50));
    collectGarbage();
    const freed = process.memoryUsage.rss();
    assert.equal(trimAllocator(), 'released');
    const trimmed = process.memoryUsage.rss();
    const mb = (bytes: number): number => Math.round(bytes / 1048576);
    assert.ok(full - trimmed > 100 * 1048576,
      `rss ${mb(full)} MB full, ${mb(freed)} MB after the collection, ${mb(trimmed)} MB trimmed`);
  });

  test('a missing module is a reason naming its path, not an exception', () => {
    const missing = `${TRIM_MODULE_PATH}.absent`;
    const loaded = loadTrimModule(missing);
    assert.ok('unavailable' in loaded);
    assert.ok(loaded.unavailable.startsWith(`${missing}: `), loaded.unavailable);
  });
});
