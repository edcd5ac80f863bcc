/*
 * Haraka plugin `moat-rules`: registered in the pipeline; its checks are being built and
 * register their hooks here.
 */

import { getRuntime } from '../src/runtime/context';

export function register(): void {
  getRuntime();
}
