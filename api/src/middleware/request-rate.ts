/**
 * P53: past its quota's `requestsPerSecond` (on this API process, or on all of them together as
 * their last reports to Redis say) a tenant's request is 429 rate_limited, with the wait for its
 * next token in Retry-After, before its handler runs: nothing is read from Redis or created
 * (api/src/tenant-request-rate.ts).
 */
import type { MiddlewareHandler } from 'hono';
import type { AppEnv } from '../deps.ts';
import { TenantRequestRate } from '../tenant-request-rate.ts';

export function requestRate(rate = new TenantRequestRate()): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    rate.take(c.get('tenant'), c.get('quota'));
    return next();
  };
}
