/**
 * What each tenant holds open on this API process, bounded by a field of its quota:
 * - `streams` (P45): event streams (GET /v1/jobs/{id}/events, POST /v1/jobs?stream=true) and attach
 *   sockets. Every open stream costs this process a write per event of its job, so without a bound
 *   one tenant following its own chatty job from thousands of connections takes the process's CPU
 *   from every other tenant.
 * - `requests` (P50): requests of any kind, from their authentication until their answer is written
 *   or their connection closes. An answer a client does not read holds up to a page of it in this
 *   process (P48), so without a bound one tenant's thousands of unread answers fill its memory.
 * Counted per process, as the API is stateless: behind a load balancer a tenant may hold its quota
 * on each copy.
 */
import { RateLimitedError } from '../../core/src/errors.ts';
import type { TenantQuota } from '../../core/src/config.ts';

export type PlaceKind = 'streams' | 'requests';

const HELD: Record<PlaceKind, { what: string; then: string }> = {
  streams: { what: 'event streams and attach sockets open', then: 'close one first' },
  requests: { what: 'requests open', then: 'let one finish first' },
};

export class TenantPlaces {
  private readonly open = new Map<string, number>();
  /** MiB of whole answers each tenant's requests hold (takePages), counted apart from the places. */
  private readonly pages = new Map<string, number>();

  constructor(private readonly kind: PlaceKind) {}

  /**
   * One of `tenant`'s places (quota null or its field null: no bound), or RateLimitedError when they
   * are all taken. Returns the release, which may be called more than once.
   */
  take(tenant: string, quota: TenantQuota | null): () => void {
    const limit = quota?.[this.kind] ?? null;
    const held = this.open.get(tenant) ?? 0;
    if (limit !== null && held >= limit) {
      const { what, then } = HELD[this.kind];
      throw new RateLimitedError(`tenant ${tenant} already has ${held} ${what} on this API server, its quota (${this.kind}: ${limit}); ${then}`, 1);
    }
    return counted(this.open, tenant, 1);
  }

  /**
   * `pages` MiB of one whole answer for `tenant` (an answer read and held whole, which its client
   * may leave unread), bounded by the same quota field as its places, one MiB a place, at most the
   * whole quota for one answer, and counted apart from the places (requests arriving together each
   * hold a place: counted with them, each would be refused the rest). RateLimitedError past it.
   * Returns the release, which may be called more than once.
   */
  takePages(tenant: string, quota: TenantQuota | null, pages: number): () => void {
    const limit = quota?.[this.kind] ?? null;
    const want = limit === null ? pages : Math.min(pages, limit);
    const held = this.pages.get(tenant) ?? 0;
    if (limit !== null && held + want > limit) {
      throw new RateLimitedError(`tenant ${tenant} already holds ${held} MiB of whole answers (output files) on this API server, each MiB counted as one of its quota (${this.kind}: ${limit}); let one finish first`, 1);
    }
    return counted(this.pages, tenant, want);
  }

  /** How many `tenant` holds open now (places; whole answers' MiB apart). */
  held(tenant: string): number {
    return this.open.get(tenant) ?? 0;
  }
}

/** `n` more for `tenant` in `counts`; returns their release (once, however often called). */
function counted(counts: Map<string, number>, tenant: string, n: number): () => void {
  counts.set(tenant, (counts.get(tenant) ?? 0) + n);
  let released = false;
  return () => {
    if (released) return;
    released = true;
    const left = (counts.get(tenant) ?? n) - n;
    if (left > 0) counts.set(tenant, left);
    else counts.delete(tenant);
  };
}
