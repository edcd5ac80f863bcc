/*
 * Gives the memory glibc's allocator keeps after free() back to the system.
 *
 * Buffers of messages (socket reads, spooled chunks, decoded parts) are freed by V8's
 * collections, but glibc keeps the freed blocks in its arenas for later allocations and hands
 * back only the top of each heap. After a burst, or over hours of steady mail, the resident
 * size then holds the high-water mark of the largest messages: a full-pipeline gateway, warm
 * and quiet with its V8 heap at 37 MB, stayed at 157-159 MB resident, and 105-106 MB after a
 * malloc_trim (probe of 2026-12-04, the benchmark's corpus). Node has no call for it, so a
 * Node-API module built from native/malloc-trim.c (scripts/build-native.sh) provides one.
 *
 * Called after every collection Moat asks for (start-up, idle, busy and high-water: ./context.ts).
 * A trim takes a few milliseconds (5-6 ms to give back 190 MB; 0.02 ms when there is nothing),
 * during which the process answers nobody; pages given back cost a page fault when used again.
 *
 * Needs: dist/native/malloc-trim.node. Without it (no C compiler when the gateway was built, a
 * C library other than glibc) nothing is trimmed and the gateway says so once at start; mail
 * is not affected, only the resident size.
 */

import { join } from 'node:path';

/** What one trim did. */
export type TrimOutcome = 'released' | 'nothing' | 'unavailable';

export interface TrimModule {
  trim(): number;
}

/** Where scripts/build-native.sh puts the module, from dist/src/runtime/. */
export const TRIM_MODULE_PATH = join(__dirname, '..', '..', 'native', 'malloc-trim.node');

/** A loaded trim module, or why there is none. */
export type TrimLoad = { module: TrimModule } | { unavailable: string };

/** Loads the module at `path` and checks it can trim here. */
export function loadTrimModule(path: string): TrimLoad {
  try {
    const candidate = require(path) as Partial<TrimModule>;
    if (typeof candidate.trim !== 'function') throw new Error('it exports no trim()');
    // -1: built, but this C library has no malloc_trim.
    return candidate.trim() === -1
      ? { unavailable: 'the C library is not glibc' }
      : { module: candidate as TrimModule };
  } catch (error) {
    const reason = error instanceof Error ? error.message.split('\n')[0] : String(error);
    return { unavailable: `${path}: ${reason}` };
  }
}

let loaded: TrimLoad | null = null;

function load(): TrimLoad {
  loaded ??= loadTrimModule(TRIM_MODULE_PATH);
  return loaded;
}

/** Why trimming is unavailable in this process, or null when it works. */
export function trimUnavailableReason(): string | null {
  const state = load();
  return 'unavailable' in state ? state.unavailable : null;
}

/** Gives the allocator's whole free pages back to the system (malloc_trim(0)). */
export function trimAllocator(): TrimOutcome {
  const state = load();
  if ('unavailable' in state) return 'unavailable';
  return state.module.trim() === 1 ? 'released' : 'nothing';
}
