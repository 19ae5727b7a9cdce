/**
 * What this host can take now: run slots and the memory budget (SBX_JOBS_MEMORY_BYTES) of the jobs
 * it holds. A job's limits.memoryBytes counts from the moment this worker keeps it until it ends; a
 * job that does not fit waits here (first come, first served) only when no other host has room.
 *
 * Slots: the runner takes one once the job's image is ready (a pull holds none), so a job taken
 * while all slots are busy would wait here although another host may be idle. The gate therefore
 * counts the slots asked for (held or waited for, from the pool), the jobs whose image is cached
 * and that are about to ask (they ask within milliseconds, oldest first), and the jobs being
 * decided on; pulls in flight are bounded by SBX_PULL_CONCURRENCY beside that.
 */
import { SlotPool } from '../slots.ts';

/** The runner's SlotPool, telling the capacity gate whenever a slot is asked for or given back. */
export class ObservedSlotPool extends SlotPool {
  onChange: (event: 'asked' | 'other') => void = () => {};

  override take(signal?: AbortSignal, priority = 0): Promise<number> {
    const slot = super.take(signal, priority);
    this.onChange('asked');
    slot.then(() => this.onChange('other'), () => this.onChange('other')); // a waiter served or gone
    return slot;
  }

  override give(slot: number): void {
    super.give(slot);
    this.onChange('other');
  }

  /** Slots held or waited for. */
  get asked(): number {
    return this.total - this.available + this.waiting;
  }
}

/** A job this host keeps: its memory counts until release(). */
export interface Hold {
  readonly memoryBytes: number;
  release(): void;
}

export interface CapacitySnapshot {
  slotsTotal: number;
  /** Slots neither held, waited for, nor about to be asked for. */
  slotsFree: number;
  memoryTotal: number;
  memoryFree: number;
}

interface HoldState extends Hold {
  /** Cached image, slot not asked for yet. */
  aboutToAsk: boolean;
}

export class HostCapacity {
  private readonly holds = new Set<HoldState>();
  private readonly memoryQueue: Array<{ bytes: number; go: () => void }> = [];
  private reserved = 0;
  private deciding = 0;
  private wakers: Array<() => void> = [];
  /** Told of every change (placement publishes the snapshot). */
  onChange: () => void = () => {};

  constructor(
    readonly slots: ObservedSlotPool,
    readonly memoryTotal: number,
    private readonly pullConcurrency: number,
  ) {
    slots.onChange = (event) => {
      if (event === 'asked') this.firstAboutToAsk()?.let();
      this.changed();
    };
  }

  get memoryFree(): number {
    return this.memoryTotal - this.reserved;
  }

  /** Slots spoken for: asked of the pool, about to be asked, or for jobs being decided on. */
  private get slotDemand(): number {
    return this.slots.asked + this.countAboutToAsk() + this.deciding;
  }

  /** Held jobs that neither asked for a slot nor are about to: pulling (or just finished). */
  private get pulling(): number {
    return Math.max(0, this.holds.size - this.slots.asked - this.countAboutToAsk());
  }

  /** May this host take one more job from a queue now? */
  canFetch(): boolean {
    return this.slotDemand < this.slots.total && this.pulling < this.pullConcurrency && this.memoryQueue.length === 0 && this.reserved < this.memoryTotal;
  }

  /** For a job being decided on: would it start at once here (a free slot, its memory free, nobody waiting before it)? */
  startsNow(memoryBytes: number): boolean {
    return this.slotDemand - 1 < this.slots.total && this.memoryQueue.length === 0 && this.reserved + memoryBytes <= this.memoryTotal;
  }

  snapshot(): CapacitySnapshot {
    return { slotsTotal: this.slots.total, slotsFree: Math.max(0, this.slots.total - this.slotDemand), memoryTotal: this.memoryTotal, memoryFree: this.memoryFree };
  }

  /** A job fetched, not decided on yet: it counts as slot demand until decided() (so the gate closes at once). */
  startDeciding(): () => void {
    this.deciding++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.deciding--;
      this.changed();
    };
  }

  /**
   * Keep a job of `memoryBytes` (<= memoryTotal): resolves once its memory is reserved, at once if it
   * fits, else after the jobs before it released enough. `imageCached`: it will ask for a slot at once.
   */
  async hold(memoryBytes: number, imageCached: boolean): Promise<Hold> {
    if (memoryBytes > this.memoryTotal) throw new Error(`a job of ${memoryBytes} bytes can never fit ${this.memoryTotal}`);
    if (this.memoryQueue.length > 0 || this.reserved + memoryBytes > this.memoryTotal) {
      await new Promise<void>((go) => {
        this.memoryQueue.push({ bytes: memoryBytes, go });
        this.changed();
      });
    } else {
      this.reserved += memoryBytes;
    }
    let released = false;
    const hold: HoldState = {
      memoryBytes,
      aboutToAsk: imageCached,
      release: () => {
        if (released) return;
        released = true;
        hold.aboutToAsk = false;
        this.holds.delete(hold);
        this.reserved -= memoryBytes;
        this.admitWaiting();
        this.changed();
      },
    };
    this.holds.add(hold);
    this.changed();
    return hold;
  }

  /** Resolves at the next change (a job kept or released, a slot asked for or given back), or when `signal` aborts. */
  nextChange(signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal?.aborted) return resolve();
      const wake = () => {
        signal?.removeEventListener('abort', wake);
        resolve();
      };
      signal?.addEventListener('abort', wake, { once: true });
      this.wakers.push(wake);
    });
  }

  private admitWaiting(): void {
    while (this.memoryQueue.length > 0 && this.reserved + this.memoryQueue[0]!.bytes <= this.memoryTotal) {
      const next = this.memoryQueue.shift()!;
      this.reserved += next.bytes;
      next.go();
    }
  }

  private countAboutToAsk(): number {
    let n = 0;
    for (const h of this.holds) if (h.aboutToAsk) n++;
    return n;
  }

  private firstAboutToAsk(): { let(): void } | null {
    for (const h of this.holds) if (h.aboutToAsk) return { let: () => (h.aboutToAsk = false) };
    return null;
  }

  private changed(): void {
    const wakers = this.wakers;
    this.wakers = [];
    for (const wake of wakers) wake();
    this.onChange();
  }
}
