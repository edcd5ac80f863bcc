/*
 * The Node options the gateway runs with, wherever it is started: `npm start`
 * (scripts/bootstrap.sh), the container (Dockerfile CMD) and the test harness. V8 reads them
 * when the heap is made, so they are on the command line, not set from inside; a test
 * (test/ops/deployment.test.ts) holds the three launchers to this list.
 *
 * --max-semi-space-size=8: V8 on Node 24 lets the young generation grow to 128 MB, which is
 * resident memory a gateway holds for nothing. At 8 MB, fifty 20 MB messages at once peak at
 * about 330 MB instead of 460 MB for the relay, at no CPU cost per message we could measure
 * (bench/README.md).
 */

export const GATEWAY_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=8'];
