/*
 * A counting semaphore: attachment scans in flight for one message (clamd.max_parallel_parts)
 * and spamd requests in flight for the whole process (spamd.max_parallel). A waiter can give
 * up at a deadline; it then leaves the queue, so no slot is handed to nobody.
 */

export class Slots {
  private readonly waiting: Array<(granted: boolean) => void> = [];

  constructor(private free: number) {}

  /** Takes a slot if one is free now. */
  tryTake(): boolean {
    if (this.free <= 0) return false;
    this.free -= 1;
    return true;
  }

  /** Waits for a slot; false when `timeoutMs` passed first (nothing to give back then). */
  take(timeoutMs = Infinity): Promise<boolean> {
    if (this.tryTake()) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      let timer: NodeJS.Timeout | null = null;
      const waiter = (granted: boolean): void => {
        if (timer) clearTimeout(timer);
        resolve(granted);
      };
      this.waiting.push(waiter);
      if (Number.isFinite(timeoutMs)) {
        timer = setTimeout(() => {
          const index = this.waiting.indexOf(waiter);
          if (index !== -1) this.waiting.splice(index, 1);
          resolve(false);
        }, Math.max(0, timeoutMs));
      }
    });
  }

  give(): void {
    const next = this.waiting.shift();
    if (next) next(true);
    else this.free += 1;
  }

  /** Callers waiting for a slot now. */
  get queued(): number {
    return this.waiting.length;
  }
}
