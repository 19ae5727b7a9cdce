/**
 * What this host can take now: run slots, image pulls, and the memory budget (SBX_JOBS_MEMORY_BYTES)
 * of the jobs it holds. A job's limits.memoryBytes counts from the moment this worker keeps it until
 * it ends; a job that does not fit waits here (first come, first served) only when no other host has
 * room for it (choose-host.ts).
 *
 * Slots: the runner takes one once the job's image is ready (a pull holds none), so a job taken
 * while every slot is busy would wait here although another host may be idle. Each job held is in
 * one phase: `acquiring` its image (cached: it asks for a slot within milliseconds; not cached: it
 * pulls), `ready` (image acquired, about to ask), `asked` (holds or waits for a slot). A host takes
 * another job only while the slots spoken for (asked + ready + acquiring a cached image + jobs being
 * decided on, + the jobs waiting for a pull beyond each pull's first) are fewer than its slots, fewer
 * than SBX_PULL_CONCURRENCY distinct images are being pulled, and no job waits for memory. Phases
 * move by what the runner does, matched by image reference and in order (observeImages, ObservedSlotPool).
 */
import { parseImageReference } from '../../../core/src/image-ref.ts';
import type { CapacitySnapshot } from '../../../core/src/placement/fleet-records.ts';
import type { ImageStore } from '../images/image-store.ts';
import { SlotPool } from '../slots.ts';

/** The runner's SlotPool, telling the capacity gate whenever a slot is asked for or given back. */
export class ObservedSlotPool extends SlotPool {
  onChange: (event: 'asked' | 'other') => void = () => {};

  override take(signal?: AbortSignal, priority = 0, affinity?: string): Promise<number> {
    const slot = super.take(signal, priority, affinity);
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

/** The image store as the runner sees it, telling `capacity` when a job's image is ready. */
export function observeImages(images: ImageStore, capacity: HostCapacity): ImageStore {
  return new Proxy(images, {
    get(target, prop) {
      if (prop === 'acquire') {
        return async (reference: string, opts?: Parameters<ImageStore['acquire']>[1]) => {
          try {
            return await target.acquire(reference, opts);
          } finally {
            capacity.imageReady(reference);
          }
        };
      }
      const value = Reflect.get(target, prop, target) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

/** A job this host keeps: its memory counts until release(). */
export interface Hold {
  readonly memoryBytes: number;
  release(): void;
}

interface HoldState extends Hold {
  image: string;
  imageCached: boolean;
  phase: 'acquiring' | 'ready' | 'asked';
}

export class HostCapacity {
  private readonly holds = new Set<HoldState>();
  private readonly memoryQueue: Array<{ bytes: number; go: () => void }> = [];
  private reserved = 0;
  private deciding = 0;
  private wakers: Array<() => void> = [];
  /** Images whose pulls wait for a permit (the image store's onPullsWaiting): they hold none. */
  private pullsWaiting: ReadonlySet<string> = new Set();
  /** Told of every change (placement publishes the snapshot). */
  onChange: () => void = () => {};

  constructor(
    readonly slots: ObservedSlotPool,
    readonly memoryTotal: number,
    private readonly pullConcurrency: number,
  ) {
    slots.onChange = (event) => {
      if (event === 'asked') this.advance('ready', 'asked');
      this.changed();
    };
  }

  get memoryFree(): number {
    return this.memoryTotal - this.reserved;
  }

  /** Slots spoken for: asked of the pool, about to be asked, or for jobs being decided on. */
  private get slotDemand(): number {
    let soon = 0;
    for (const h of this.holds) if (h.phase === 'ready' || (h.phase === 'acquiring' && h.imageCached)) soon++;
    return this.slots.asked + soon + this.deciding;
  }

  /**
   * Distinct images being pulled for the jobs held, or about to be: not those whose pull waits for a
   * permit. Those hold none (a tenant's pulls past its share wait so that the permit left is
   * another tenant's): counted here, one tenant's slow pulls closed this gate, and no other
   * tenant's job, even one on a cached image, left the queue until they ended.
   */
  private get pulls(): number {
    const images = new Set<string>();
    for (const h of this.holds) if (h.phase === 'acquiring' && !h.imageCached && !this.pullsWaiting.has(h.image)) images.add(h.image);
    return images.size;
  }

  /** The image store's pulls waiting for a permit changed (ImageStoreOptions.onPullsWaiting). */
  setPullsWaiting(images: ReadonlySet<string>): void {
    this.pullsWaiting = images;
    this.changed();
  }

  /** Jobs held whose image is being pulled. */
  private get pullingJobs(): number {
    let n = 0;
    for (const h of this.holds) if (h.phase === 'acquiring' && !h.imageCached) n++;
    return n;
  }

  /**
   * May this host take one more job from a queue now? The jobs held for an image being pulled count
   * as slot demand beyond the first for each such image: a pull holds no slot, so the first overlaps
   * the jobs running here, but every other one wants a slot the moment the same pull ends. Else a
   * burst of one image being pulled would wait here for slots while another host has them.
   */
  canFetch(): boolean {
    return this.takesMore(this.slotDemand);
  }

  /** Whether this host takes another job with `slotDemand` slots spoken for. */
  private takesMore(slotDemand: number): boolean {
    const pulls = this.pulls;
    const pullWaiters = this.pullingJobs - pulls;
    return slotDemand + pullWaiters < this.slots.total && pulls < this.pullConcurrency && this.memoryQueue.length === 0 && this.reserved < this.memoryTotal;
  }

  /** For a job being decided on: would it start at once here (a free slot, its memory free, nobody waiting before it)? */
  startsNow(memoryBytes: number): boolean {
    return this.slotDemand - 1 < this.slots.total && this.memoryQueue.length === 0 && this.reserved + memoryBytes <= this.memoryTotal;
  }

  /**
   * The room other hosts and the API see. Jobs waiting for a pull count as taking a slot here (they
   * will, the moment it ends), although this host may take more jobs meanwhile: otherwise a burst for
   * an image being pulled would all be handed to the host pulling it, however few its slots.
   * `handOffsPending`: jobs taken from this host's own queue whose hand-off is still pending in Redis,
   * where placements count them already (reserveHandoff-3.lua): left out of the slots spoken for, so
   * that the room published counts each job once.
   */
  snapshot(handOffsPending = 0): CapacitySnapshot {
    const demand = Math.max(0, this.slotDemand - handOffsPending);
    const slotsFree = this.takesMore(demand) ? Math.max(0, this.slots.total - demand - this.pullingJobs) : 0;
    return { slotsTotal: this.slots.total, slotsFree, memoryTotal: this.memoryTotal, memoryFree: this.memoryFree };
  }

  /** A job fetched, not decided on yet: it counts as slot demand until the returned function is called. */
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

  /** The runner acquired `reference` for one of the jobs held (observeImages). */
  imageReady(reference: string): void {
    this.advance('acquiring', 'ready', canonical(reference));
    this.changed();
  }

  /**
   * Keep a job of `memoryBytes` (<= memoryTotal) for `image`: resolves once its memory is reserved, at
   * once if it fits, else after the jobs before it released enough.
   */
  async hold(memoryBytes: number, image: string, imageCached: boolean): Promise<Hold> {
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
      image: canonical(image),
      imageCached,
      phase: 'acquiring',
      release: () => {
        if (released) return;
        released = true;
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

  /** Resolves at the next change (a job kept or released, an image ready, a slot asked for or given back), or when `signal` aborts. */
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

  /** The oldest hold in phase `from` (for `image`, if given) moves to `to`. */
  private advance(from: HoldState['phase'], to: HoldState['phase'], image?: string): void {
    for (const h of this.holds) {
      if (h.phase === from && (image === undefined || h.image === image)) {
        h.phase = to;
        return;
      }
    }
  }

  private admitWaiting(): void {
    while (this.memoryQueue.length > 0 && this.reserved + this.memoryQueue[0]!.bytes <= this.memoryTotal) {
      const next = this.memoryQueue.shift()!;
      this.reserved += next.bytes;
      next.go();
    }
  }

  private changed(): void {
    const wakers = this.wakers;
    this.wakers = [];
    for (const wake of wakers) wake();
    this.onChange();
  }
}

function canonical(reference: string): string {
  try {
    return parseImageReference(reference).canonical;
  } catch {
    return reference;
  }
}
