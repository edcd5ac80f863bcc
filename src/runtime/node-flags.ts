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
 */

export const GATEWAY_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=8'];

/*
 * MALLOC_ARENA_MAX=2: glibc gives each thread that allocates (V8's GC helpers, libuv's pool)
 * an arena of its own, up to eight per core, and memory freed in one arena serves only that
 * arena. Buffers of large messages freed on one thread and the next burst landing on another
 * made the resident size climb by steps: over a 30-minute soak it grew 15 % (90 MB/h) with the
 * V8 heap and the external memory flat; with two arenas, 5 % (33 MB/h) (bench/README.md).
 */
export const GATEWAY_ENV: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: '2' };
