/**
 * The bounds every pull runs under: at most `pullConcurrency` at once, shared fairly between tenants
 * (tenant-shares.ts; cache hits and joined pulls wait for none), each within `pullTimeoutMs`.
 */
import { ImagePullFailedError } from '../../../../core/src/errors.ts';
import { withLinkedSignal } from '../../../../client/src/linked-signal.ts';
import { TenantShares, type Requester } from '../tenant-shares.ts';

export const DEFAULT_PULL_CONCURRENCY = 4;
export const DEFAULT_PULL_TIMEOUT_MS = 10 * 60_000;

export interface PullBoundsOptions {
  /** Image pulls at once (SBX_PULL_CONCURRENCY); more wait their turn (tenant-shares.ts). Default 4. */
  pullConcurrency?: number;
  /** A pull not done after this long fails with image_pull_failed (SBX_PULL_TIMEOUT_MS). Default 10 min. */
  pullTimeoutMs?: number;
  /**
   * Told, whenever it changes, which images' pulls wait for a permit (canonical references): such a
   * pull holds none, so the worker's intake gate must not count it as one (placement/capacity.ts).
   */
  onPullsWaiting?: (images: ReadonlySet<string>) => void;
}

export class PullBounds {
  /** Permits for pulls (not for cache hits, nor for joining a pull in progress). */
  private readonly permits: TenantShares;
  private readonly timeoutMs: number;
  /** Pulls waiting for a permit, per image. */
  private readonly waiting = new Map<string, number>();

  /** `closing` aborts every pull, waiting or running (the store closes). */
  constructor(private readonly opts: PullBoundsOptions, private readonly closing: AbortSignal) {
    const total = opts.pullConcurrency ?? DEFAULT_PULL_CONCURRENCY;
    this.permits = new TenantShares(total, Math.max(1, total - 1)); // one permit always left for other tenants
    this.timeoutMs = opts.pullTimeoutMs ?? DEFAULT_PULL_TIMEOUT_MS;
  }

  /** A permit for a pull of `image`, noting the wait (if it waits) for onPullsWaiting. */
  private async permit(image: string, who: Requester, signal: AbortSignal): Promise<() => void> {
    if (!this.permits.wouldWait(who)) return this.permits.take(who, signal);
    this.waiting.set(image, (this.waiting.get(image) ?? 0) + 1);
    this.tellWaiting();
    try {
      return await this.permits.take(who, signal);
    } finally {
      const left = this.waiting.get(image)! - 1;
      if (left > 0) this.waiting.set(image, left);
      else this.waiting.delete(image);
      this.tellWaiting();
    }
  }

  private tellWaiting(): void {
    this.opts.onPullsWaiting?.(new Set(this.waiting.keys()));
  }

  /**
   * Runs one pull of `image` for `who`: it waits for a pull permit (its turn: tenant-shares.ts), then gets
   * `pullTimeoutMs`; its signal aborts on the deadline, when nobody waits for it any more
   * (`abandoned`) or when the store closes. The deadline's error wins over whatever the aborted
   * work failed with.
   */
  async run<T>(image: string, who: Requester, abandoned: AbortSignal, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
    // Not AbortSignal.any(): `closing` lives as long as the store and would keep a WeakRef per pull
    // (and per signal made from this one) for good on Node 20 (client/src/linked-signal.ts).
    const release = await withLinkedSignal([abandoned, this.closing], (waited) => this.permit(image, who, waited));
    const deadline = new AbortController();
    const ms = this.timeoutMs;
    const timer = setTimeout(() => deadline.abort(new ImagePullFailedError(image, `it did not finish within ${formatMs(ms)} (the pull deadline)`, { retryable: false })), ms);
    try {
      return await withLinkedSignal([abandoned, this.closing, deadline.signal], (running) => work(running));
    } catch (e) {
      throw deadline.signal.aborted ? deadline.signal.reason : e;
    } finally {
      clearTimeout(timer);
      release();
    }
  }
}

/** '10 min', '90 s', '500 ms'. */
function formatMs(ms: number): string {
  if (ms >= 60_000 && ms % 60_000 === 0) return `${ms / 60_000} min`;
  return ms >= 1000 ? `${ms / 1000} s` : `${ms} ms`;
}
