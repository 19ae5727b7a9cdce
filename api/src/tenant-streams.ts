/**
 * The event streams (GET /v1/jobs/{id}/events, POST /v1/jobs?stream=true) and attach sockets each
 * tenant holds open on this API process, bounded by its quota's `streams` (P45). Every open stream
 * costs this process a write per event of its job, so without a bound one tenant following its own
 * chatty job from thousands of connections takes the process's CPU from every other tenant.
 * Counted per process, as the API is stateless: behind a load balancer a tenant may hold `streams`
 * on each copy.
 */
import { RateLimitedError } from '../../core/src/errors.ts';
import type { TenantQuota } from '../../core/src/config.ts';

export class TenantStreams {
  private readonly open = new Map<string, number>();

  /**
   * One of `tenant`'s places (quota null or `streams` null: no bound), or RateLimitedError when they
   * are all taken. Returns the release, which may be called more than once.
   */
  take(tenant: string, quota: TenantQuota | null): () => void {
    const limit = quota?.streams ?? null;
    const held = this.open.get(tenant) ?? 0;
    if (limit !== null && held >= limit) {
      throw new RateLimitedError(`tenant ${tenant} already has ${held} event streams and attach sockets open on this API server, its quota (streams: ${limit}); close one first`, 1);
    }
    this.open.set(tenant, held + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.open.get(tenant) ?? 1) - 1;
      if (left > 0) this.open.set(tenant, left);
      else this.open.delete(tenant);
    };
  }

  /** How many `tenant` holds open now. */
  held(tenant: string): number {
    return this.open.get(tenant) ?? 0;
  }
}
