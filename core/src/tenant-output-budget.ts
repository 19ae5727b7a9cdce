/**
 * How much output one tenant's jobs may store in Redis per hour (quota outputBytesPerHour,
 * SBX_TENANT_OUTPUT_BYTES_PER_HOUR). Output lives as long as its job's record (SBX_JOB_TTL_SECONDS),
 * so without a bound one tenant's jobs printing at full speed fill the Redis every tenant shares.
 * Counted by the workers as they append (worker/src/output/redis-sink.ts), per clock hour, in the
 * tenant's slot: `<p>:{tenant:<t>}:output:<hour>`, kept two hours. While it is used up the API
 * refuses the tenant's new jobs (429, until the hour ends: core/src/lua/admitJob-4.lua).
 */
import type { RedisClient } from './redis.ts';
import type { RedisKeys } from './redis-keys.ts';
import { sendTogether } from './redis-together.ts';

const HOUR_MS = 3_600_000;

/** The clock hour a budget counts in (ms since the epoch / 3,600,000), and the ms left in it. */
export function outputHour(now = Date.now()): { hour: number; msLeft: number } {
  const hour = Math.floor(now / HOUR_MS);
  return { hour, msLeft: (hour + 1) * HOUR_MS - now };
}

export class TenantOutputBudget {
  constructor(
    private readonly redis: RedisClient,
    private readonly keys: RedisKeys,
    readonly tenant: string,
    readonly bytesPerHour: number,
  ) {}

  /** Counts `bytes` against this hour's budget; false once it is used up (this charge included). */
  async charge(bytes: number, now = Date.now()): Promise<boolean> {
    const key = this.keys.tenantOutput(this.tenant, outputHour(now).hour);
    const [used] = await Promise.all(sendTogether(this.redis, () => [this.redis.incrby(key, bytes), this.redis.pexpire(key, 2 * HOUR_MS)]));
    return used <= this.bytesPerHour;
  }
}
