/*
 * The Node options and the environment the gateway runs with, wherever it is started: `npm
 * start` (scripts/bootstrap.sh), the container (Dockerfile CMD and ENV) and the test harness.
 * V8 reads the flags when the heap is made and glibc reads its variables when the process
 * starts, so neither can be set from inside; a test (test/ops/deployment.test.ts) holds the
 * three launchers to these lists.
 *
 * --max-semi-space-size=8: V8 on Node 24 lets the young generation grow to 128 MB, which is
 * resident memory a gateway holds for nothing. At 8 MB, fifty 20 MB messages at once peak at
 * about 330 MB instead of 460 MB for the relay, at no CPU cost per message we could measure
 * (bench/README.md).
 *
 * --expose-gc: for collectGarbage() below, once when the gateway starts listening and once each
 * time it goes quiet after traffic (./idle-collection.ts).
 */

import { trimAllocator } from './allocator-trim';

export const GATEWAY_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=8', '--expose-gc'];

/**
 * Start-up leaves some 20-40 MB of garbage in the heap (module sources, the parsed
 * configuration and rules), and V8 keeps the pages it grew to until its memory reducer runs,
 * which an idle gateway may not trigger: a freshly started full-pipeline worker sat at ~148 MB
 * resident. One collection of the `last-resort` flavour (it also gives emptied pages back), a
 * second after the listeners are up, brings it to ~105 MB; a trim of the allocator after it
 * gives back what the collection freed (./allocator-trim.ts). Without the flag only the trim
 * runs. `onDone` follows a collection (the metric of collections).
 */
export function collectStartUpGarbage(onDone: () => void = () => {}): void {
  setTimeout(() => {
    const collected = collectGarbage();
    trimAllocator();
    if (collected) onDone();
  }, 1000).unref();
}

/**
 * One major collection of the `last-resort` flavour, which also gives emptied pages back; used
 * at start-up and when the process goes quiet (./idle-collection.ts). Returns false, having
 * done nothing, when the process was started without --expose-gc.
 */
export function collectGarbage(): boolean {
  const gc = (globalThis as { gc?: (options?: object) => void }).gc;
  if (typeof gc !== 'function') return false;
  gc({ type: 'major', flavor: 'last-resort' });
  return true;
}

/*
 * MALLOC_ARENA_MAX=2: glibc gives each thread that allocates (V8's GC helpers, libuv's pool)
 * an arena of its own, up to eight per core, and memory freed in one arena serves only that
 * arena. Buffers of large messages freed on one thread and the next burst landing on another
 * made the resident size climb by steps: over a 30-minute soak it grew 15 % (90 MB/h) with the
 * V8 heap and the external memory flat; with two arenas, 5 % (33 MB/h) (bench/README.md).
 *
 * MALLOC_MMAP_THRESHOLD_=131072: glibc serves allocations of 128 KB and more with mmap, which
 * goes back to the system on free, but after such a block is freed it raises that threshold
 * (up to 32 MB), so the next large message's buffers come from the arenas and stay resident
 * after it. Fixing the threshold at its starting value keeps large buffers returnable: after
 * the benchmark's warm-up and 15 s without traffic, relay 176 -> 137 MB and full 166 -> 123 MB
 * (bench/README.md). Socket reads (64 KB) stay below it: served from the arenas, no syscall.
 */
export const GATEWAY_ENV: Readonly<Record<string, string>> = {
  MALLOC_ARENA_MAX: '2', MALLOC_MMAP_THRESHOLD_: '131072',
};
