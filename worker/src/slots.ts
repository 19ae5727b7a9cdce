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
 * `total` slots: a caller waits while none is free, and a returned slot goes to the waiting caller
 * with the lowest priority value (the job's BullMQ priority: 1 + its tenant's active jobs), the
 * longest waiting first among equals. So jobs the worker took ahead for pulling cannot put one
 * tenant's backlog before another tenant's single job (fairness, core/src/tenant-quota.ts).
 */
export class SlotPool {
  private readonly free: number[];
  private readonly queue: Array<{ hand: (slot: number) => void; priority: number }> = [];

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
  take(signal?: AbortSignal, priority = 0): Promise<number> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    const slot = this.free.pop();
    if (slot !== undefined) return Promise.resolve(slot);
    return new Promise<number>((resolve, reject) => {
      const hand = (s: number) => {
        signal?.removeEventListener('abort', onAbort);
        resolve(s);
      };
      const waiter = { hand, priority };
      const onAbort = () => {
        this.queue.splice(this.queue.indexOf(waiter), 1);
        reject(signal?.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      let at = this.queue.length;
      while (at > 0 && this.queue[at - 1]!.priority > priority) at--;
      this.queue.splice(at, 0, waiter);
    });
  }

  give(slot: number): void {
    const next = this.queue.shift();
    if (next) next.hand(slot);
    else this.free.push(slot);
  }
}
