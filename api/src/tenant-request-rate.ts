/**
 * P53: requests per second per tenant (quota `requestsPerSecond`, bursts of `requestBurst`). Every
 * request a handler answers reads Redis at least once, and Redis is shared by every tenant and every
 * API copy: without a bound one tenant polling a job as fast as the API answers takes Redis and the
 * API's CPU from the others.
 *
 * Two buckets, so that no request waits for Redis to be admitted:
 * - this process's own token bucket decides each request at once (past it: 429 before any Redis read);
 * - every REPORT_MS the process reports how many of the tenant's requests it admitted to the
 *   tenant's shared bucket in Redis (core/src/lua/requestRate-1.lua), which refills at the same rate.
 *   When the API processes together have admitted more than the rate, the balance is negative and
 *   each process that reports refuses the tenant until the debt is refilled.
 * So behind a load balancer the tenant gets its rate across all copies, not on each, give or take
 * what the copies admit in one report interval (each at most its own bucket). Without Redis the
 * per-process bucket still holds.
 */
import { RateLimitedError } from '../../core/src/errors.ts';
import type { TenantQuota } from '../../core/src/config.ts';
import type { Logger } from '../../core/src/logger.ts';
import type { RedisClient } from '../../core/src/redis.ts';
import type { RedisKeys } from '../../core/src/redis-keys.ts';
import { defineScripts, luaScript } from '../../core/src/redis-scripts.ts';
import { NumberedWriter } from '../../core/src/numbered-writer.ts';

/** How often admitted requests are reported to the shared bucket, per tenant that made any. */
export const REPORT_MS = 100;

interface Bucket {
  tokens: number;
  /** performance.now() when `tokens` was last brought up to date. */
  at: number;
  /** Admitted since the last report to the shared bucket. */
  unreported: number;
  /** The rate and burst last applied (reported with the count). */
  rate: number;
  burst: number;
  /** performance.now() until which the shared bucket is in debt: refused without looking. */
  refuseUntil: number;
  /** Numbers this process's reports of the tenant's requests: one sent again after a reconnect is debited once (requestRate-2.lua). */
  reports: NumberedWriter;
}

interface RateScripts {
  sbxRequestRate(bucket: string, reports: string, rate: number, burst: number, admitted: number, number: number): Promise<string>;
}

export interface SharedRate {
  redis: RedisClient;
  keys: RedisKeys;
  logger: Logger;
}

export class TenantRequestRate {
  /** One per tenant that made a request with a rate (tenants come from the configured keys: a bounded set). */
  private readonly buckets = new Map<string, Bucket>();
  private readonly scripts: RateScripts | null;
  private reporting: NodeJS.Timeout | null = null;

  constructor(
    private readonly shared: SharedRate | null = null,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.scripts = shared ? defineScripts<RateScripts>(shared.redis, { sbxRequestRate: luaScript('requestRate-2') }) : null;
  }

  /** Takes one of `tenant`'s tokens, or throws RateLimitedError with the wait until the next (quota null or no rate: no bound). */
  take(tenant: string, quota: TenantQuota | null): void {
    const rate = quota?.requestsPerSecond ?? null;
    if (rate === null) return;
    const burst = quota!.requestBurst;
    const t = this.now();
    let b = this.buckets.get(tenant);
    if (!b) {
      b = { tokens: burst, at: t, unreported: 0, rate, burst, refuseUntil: 0, reports: new NumberedWriter() };
      this.buckets.set(tenant, b);
    }
    [b.rate, b.burst] = [rate, burst];
    if (t < b.refuseUntil) {
      const waitSeconds = (b.refuseUntil - t) / 1000;
      throw new RateLimitedError(`tenant ${tenant} may make ${rate} requests per second (bursts of ${burst}) across the API servers together, its quota (requestsPerSecond); retry in ${Math.max(1, Math.ceil(waitSeconds))} s`, waitSeconds);
    }
    b.tokens = Math.min(burst, b.tokens + (Math.max(0, t - b.at) / 1000) * rate);
    b.at = Math.max(t, b.at);
    if (b.tokens < 1) {
      const waitSeconds = (1 - b.tokens) / rate;
      throw new RateLimitedError(`tenant ${tenant} may make ${rate} requests per second on this API server (bursts of ${burst}), its quota (requestsPerSecond); retry in ${Math.max(1, Math.ceil(waitSeconds))} s`, waitSeconds);
    }
    b.tokens -= 1;
    b.unreported++;
    if (this.scripts && !this.reporting) this.reporting = setTimeout(() => void this.report(), REPORT_MS).unref();
  }

  /** Reports each tenant's admitted requests to its shared bucket; a debt there refuses it here until refilled. */
  private async report(): Promise<void> {
    const due = [...this.buckets].filter(([, b]) => b.unreported > 0);
    await Promise.all(
      due.map(async ([tenant, b]) => {
        const admitted = b.unreported;
        b.unreported = 0;
        try {
          const { keys } = this.shared!;
          const balance = Number(await this.scripts!.sbxRequestRate(keys.tenantRequestRate(tenant), keys.tenantRequestRateReports(tenant, b.reports.name), b.rate, b.burst, admitted, b.reports.next()));
          // This process's bucket holds no more than is left to the tenant across all of them; in
          // debt it is empty and starts to refill only once the debt is (else it would admit a
          // whole burst again the moment the refusal ends, on every process).
          b.tokens = Math.min(b.tokens, Math.max(0, balance));
          if (balance < 0) {
            b.refuseUntil = this.now() + (-balance / b.rate) * 1000;
            [b.tokens, b.at] = [0, b.refuseUntil];
          }
        } catch (err) {
          this.shared!.logger.debug({ err: (err as Error).message, tenant }, 'reporting requests to the shared rate failed; this process\'s own bound still holds');
        }
      }),
    );
    this.reporting = null;
    if ([...this.buckets.values()].some((b) => b.unreported > 0)) this.reporting = setTimeout(() => void this.report(), REPORT_MS).unref();
  }
}
