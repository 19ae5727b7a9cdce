/**
 * Job slots on this worker: how many jobs run at once, and which slot index each one holds (the
 * launcher gives each slot its own uid range). The default follows the host: one slot per 256 MiB
 * of memory, at most 4 per CPU.
 */
import os from 'node:os';

export function defaultSlotCount(cpus = os.availableParallelism(), memBytes = os.totalmem()): number {
  return Math.max(1, Math.min(cpus * 4, Math.floor(memBytes / (256 * 1024 * 1024))));
}

/**
 * `total` slots handed out in the order they are asked for: a caller waits while none is free, and
 * a returned slot goes to the longest waiting caller first.
 */
export class SlotPool {
  private readonly free: number[];
  private readonly queue: Array<(slot: number) => void> = [];

  constructor(readonly total: number) {
    this.free = Array.from({ length: total }, (_, i) => total - 1 - i);
  }

  get available(): number {
    return this.free.length;
  }

  /** Callers waiting for a slot. */
  get waiting(): number {
    return this.queue.length;
  }

  /** A free slot, at once or once one is given back; rejects (and leaves the queue) when `signal` aborts first. */
  take(signal?: AbortSignal): Promise<number> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    const slot = this.free.pop();
    if (slot !== undefined) return Promise.resolve(slot);
    return new Promise<number>((resolve, reject) => {
      const hand = (s: number) => {
        signal?.removeEventListener('abort', onAbort);
        resolve(s);
      };
      const onAbort = () => {
        this.queue.splice(this.queue.indexOf(hand), 1);
        reject(signal?.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.queue.push(hand);
    });
  }

  give(slot: number): void {
    const next = this.queue.shift();
    if (next) next(slot);
    else this.free.push(slot);
  }
}
