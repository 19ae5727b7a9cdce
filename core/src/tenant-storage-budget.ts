/**
 * How many bytes one tenant's jobs may make Redis store per clock hour: their job records (counted
 * by the API when it admits a job: core/src/lua/admitJob-4.lua) and their output (counted by the
 * workers as they append it: worker/src/output/redis-sink.ts). Quota storedBytesPerHour,
 * SBX_TENANT_STORED_BYTES_PER_HOUR. Both live as long as the job's record (SBX_JOB_TTL_SECONDS), so
 * without a bound one tenant fills the Redis every tenant shares. Past the budget the workers drop
 * the rest of the tenant's output and the API refuses its new jobs until the hour ends (429).
 * The count is `<p>:{tenant:<t>}:stored:<hour>` in the tenant's slot, kept two hours.
 */
import type { RedisClient } from './redis.ts';
import type { RedisKeys } from './redis-keys.ts';
import { defineScripts, luaScript } from './redis-scripts.ts';

const HOUR_MS = 3_600_000;

/**
 * What a job's record holds in Redis besides its spec and document: a job of `true` takes 6.9 KB
 * (MEMORY USAGE: its event stream 4.8 KB, most of it the first node Redis allocates whole; its state
 * hash 2.2 KB, its spec and document included; measured on redis-server 7). Output is counted apart,
 * as it is stored.
 */
const RECORD_BASE_BYTES = 6 * 1024;

/**
 * What Redis holds for one output event beside its JSON: the stream entry's id and field name and the
 * listpack's bookkeeping (MEMORY USAGE: 17 bytes for 1-byte events, 23 for 100-byte ones).
 */
const EVENT_BASE_BYTES = 32;

/**
 * What one output event of `data` adds to its tenant's count: its JSON as stored (`{"data":…}`, escapes
 * included: a NUL byte of output is six) and the entry's base. Counting the data alone, a job writing a
 * byte at a time, or control characters, made Redis hold up to 30 times what was counted.
 */
export function outputEventBytes(data: string): number {
  return Buffer.byteLength(JSON.stringify({ data })) + EVENT_BASE_BYTES;
}

/** What admitting a job of this spec adds to its tenant's count: the record's base, the spec and the document (each about the spec's size). */
export function recordBytes(specJson: string): number {
  return RECORD_BASE_BYTES + 2 * Buffer.byteLength(specJson);
}

/** The clock hour a budget counts in (ms since the epoch / 3,600,000), and the ms left in it. */
export function storageHour(now = Date.now()): { hour: number; msLeft: number } {
  const hour = Math.floor(now / HOUR_MS);
  return { hour, msLeft: (hour + 1) * HOUR_MS - now };
}

const SCRIPTS = { sbxChargeStorage: luaScript('chargeStorage-1') };

interface ScriptedClient {
  sbxChargeStorage(key: string, bytes: number, budget: number, ttlMs: number): Promise<[number, number]>;
}

export class TenantStorageBudget {
  private readonly scripted: ScriptedClient;

  constructor(
    redis: RedisClient,
    private readonly keys: RedisKeys,
    readonly tenant: string,
    readonly bytesPerHour: number,
  ) {
    this.scripted = defineScripts<ScriptedClient>(redis, SCRIPTS);
  }

  /**
   * Asks for `bytes` of output from this hour's budget: `granted` is what was left of it, up to
   * `bytes` (the caller stores no more than that), `used` the hour's total after.
   */
  async charge(bytes: number, now = Date.now()): Promise<{ granted: number; used: number }> {
    const key = this.keys.tenantStored(this.tenant, storageHour(now).hour);
    const [granted, used] = await this.scripted.sbxChargeStorage(key, bytes, this.bytesPerHour, 2 * HOUR_MS);
    return { granted, used };
  }
}
