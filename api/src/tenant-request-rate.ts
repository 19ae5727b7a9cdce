/**
 * P53: requests per second per tenant on this API process, a token bucket (quota `requestsPerSecond`,
 * bursts of `requestBurst`). Every request a handler answers reads Redis at least once, and Redis is
 * shared by every tenant and every API copy: without a bound one tenant polling a job as fast as the
 * API answers takes Redis and this process's CPU from the others. Counted per process, as the API is
 * stateless (a shared bucket would cost every request a round trip): behind a load balancer a tenant
 * may use its rate on each copy.
 */
import { RateLimitedError } from '../../core/src/errors.ts';
import type { TenantQuota } from '../../core/src/config.ts';

interface Bucket {
  tokens: number;
  /** performance.now() when `tokens` was last brought up to date. */
  at: number;
}

export class TenantRequestRate {
  /** One per tenant that made a request with a rate (tenants come from the configured keys: a bounded set). */
  private readonly buckets = new Map<string, Bucket>();

  constructor(private readonly now: () => number = () => performance.now()) {}

  /** Takes one of `tenant`'s tokens, or throws RateLimitedError with the wait until the next (quota null or no rate: no bound). */
  take(tenant: string, quota: TenantQuota | null): void {
    const rate = quota?.requestsPerSecond ?? null;
    if (rate === null) return;
    const burst = quota!.requestBurst;
    const t = this.now();
    const b = this.buckets.get(tenant) ?? { tokens: burst, at: t };
    b.tokens = Math.min(burst, b.tokens + ((t - b.at) / 1000) * rate);
    b.at = t;
    if (b.tokens < 1) {
      const waitSeconds = (1 - b.tokens) / rate;
      this.buckets.set(tenant, b);
      throw new RateLimitedError(`tenant ${tenant} may make ${rate} requests per second on this API server (bursts of ${burst}), its quota (requestsPerSecond); retry in ${Math.max(1, Math.ceil(waitSeconds))} s`, waitSeconds);
    }
    b.tokens -= 1;
    this.buckets.set(tenant, b);
  }
}
