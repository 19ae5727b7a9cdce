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
 * Among free slots, a caller gets one whose last job had the same `affinity` (the image digest) if
 * there is one: the launcher's pooled setups for a slot are made for the image of its last job.
 */
export class SlotPool {
  private readonly free: number[];
  private readonly queue: Array<{ hand: (slot: number) => void; priority: number }> = [];
  /** Slot → the affinity of the job that took it last. */
  private readonly lastUse = new Map<number, string>();

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
  take(signal?: AbortSignal, priority = 0, affinity?: string): Promise<number> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    const slot = this.takeFree(affinity);
    if (slot !== undefined) return Promise.resolve(this.used(slot, affinity));
    return new Promise<number>((resolve, reject) => {
      const hand = (s: number) => {
        signal?.removeEventListener('abort', onAbort);
        resolve(this.used(s, affinity));
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

  /** A free slot last used with `affinity`, else the most recently given back one. */
  private takeFree(affinity: string | undefined): number | undefined {
    if (affinity !== undefined) {
      for (let i = this.free.length - 1; i >= 0; i--) {
        if (this.lastUse.get(this.free[i]!) === affinity) return this.free.splice(i, 1)[0];
      }
    }
    return this.free.pop();
  }

  private used(slot: number, affinity: string | undefined): number {
    if (affinity === undefined) this.lastUse.delete(slot);
    else this.lastUse.set(slot, affinity);
    return slot;
  }

  give(slot: number): void {
    const next = this.queue.shift();
    if (next) next.hand(slot);
    else this.free.push(slot);
  }
}
