/**
 * Job slots on this worker: how many jobs run at once, and which slot index each one holds (the
 * launcher gives each slot its own uid range). The default follows the host: one slot per 256 MiB
 * of memory, at most 4 per CPU.
 */
import os from 'node:os';

export function defaultSlotCount(cpus = os.availableParallelism(), memBytes = os.totalmem()): number {
  return Math.max(1, Math.min(cpus * 4, Math.floor(memBytes / (256 * 1024 * 1024))));
}

export class SlotPool {
  private readonly free: number[];

  constructor(readonly total: number) {
    this.free = Array.from({ length: total }, (_, i) => total - 1 - i);
  }

  get available(): number {
    return this.free.length;
  }

  take(): number {
    const slot = this.free.pop();
    if (slot === undefined) throw new Error('no free slot: more jobs running than slots');
    return slot;
  }

  give(slot: number): void {
    this.free.push(slot);
  }
}
