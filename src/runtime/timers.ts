/*
 * The timers of the memory collectors (./idle-collection.ts, ./busy-collection.ts,
 * ./memory-high-water.ts), behind one type so that tests can drive them by hand. The defaults
 * are unref'd: a pending collection never keeps a process alive.
 */

/** Sets a timer, one-shot or repeating as the collector needs; returns its cancel. */
export type Schedule = (callback: () => void, ms: number) => { cancel(): void };

export const unrefTimeout: Schedule = (callback, ms) => {
  const timer = setTimeout(callback, ms);
  timer.unref();
  return { cancel: () => clearTimeout(timer) };
};

export const unrefInterval: Schedule = (callback, ms) => {
  const timer = setInterval(callback, ms);
  timer.unref();
  return { cancel: () => clearInterval(timer) };
};
