/**
 * How many bytes one tenant's jobs may make Redis store per clock hour: their job records (counted
 * by the API when it admits a job: core/src/lua/admitJob-3.lua), their output (counted by the
 * workers as they append it: worker/src/output/redis-sink.ts) and the stdin attach sockets send
 * them (counted by the API: api/src/routes/jobs-attach.ts). Quota storedBytesPerHour,
 * SBX_TENANT_STORED_BYTES_PER_HOUR. Both live as long as the job's record (SBX_JOB_TTL_SECONDS), so
 * without a bound one tenant fills the Redis every tenant shares. Past the budget the workers drop
 * the rest of the tenant's output and the API refuses its new jobs until the hour ends (429).
 * The count is `<p>:{tenant:<t>}:stored:<hour>` in the tenant's slot, kept two hours.
 */
import type { EncodedOutputEvent } from './job-store.ts';
import { NumberedWriter } from './numbered-writer.ts';
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
export function outputEventBytes(event: EncodedOutputEvent): number {
  return event.json.length + EVENT_BASE_BYTES;
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

const SCRIPTS = { sbxChargeStorage: luaScript('chargeStorage-2') };

interface ScriptedClient {
  sbxChargeStorage(key: string, charges: string, bytes: number, budget: number, ttlMs: number, number: number): Promise<[number, number]>;
}

export class TenantStorageBudget {
  private readonly scripted: ScriptedClient;
  /** The hour of the latest charge answered, and the most of that hour's total any answer gave. */
  private seenHour = -1;
  private seenUsed = 0;
  /** Bytes of charges sent and not answered yet. */
  private inFlight = 0;
  /** Numbers this object's charges: one sent again after a reconnect is charged once (chargeStorage-2.lua). */
  private readonly charges = new NumberedWriter();

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
    const { hour } = storageHour(now);
    const key = this.keys.tenantStored(this.tenant, hour);
    const record = this.keys.tenantStoredCharges(this.tenant, hour, this.charges.name);
    this.inFlight += bytes;
    try {
      const [granted, used] = await this.scripted.sbxChargeStorage(key, record, bytes, this.bytesPerHour, 2 * HOUR_MS, this.charges.next());
      if (hour > this.seenHour) [this.seenHour, this.seenUsed] = [hour, used];
      else if (hour === this.seenHour) this.seenUsed = Math.max(this.seenUsed, used);
      return { granted, used };
    } finally {
      this.inFlight -= bytes;
    }
  }

  /**
   * What was left of this hour's budget at the latest answer to a charge through this object, less
   * the charges still on their way: 0 before the hour's first answer. Stale by what other processes
   * charged since, so callers only act on it with a margin (redis-sink.ts: a batch of at most half).
   */
  room(now = Date.now()): number {
    if (storageHour(now).hour !== this.seenHour) return 0;
    return Math.max(0, this.bytesPerHour - this.seenUsed - this.inFlight);
  }
}

/**
 * One TenantStorageBudget per tenant (and budget) for a whole process, so each job starts with the
 * room its tenant's earlier jobs here last saw instead of a charge's round trip before its first
 * output. Forgets everything past `most` tenants (a forgotten tenant's next job charges first).
 */
export class TenantStorageBudgets {
  private readonly byTenant = new Map<string, TenantStorageBudget>();

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: RedisKeys,
    private readonly most = 10_000,
  ) {}

  for(tenant: string, bytesPerHour: number): TenantStorageBudget {
    const key = `${bytesPerHour}:${tenant}`;
    let budget = this.byTenant.get(key);
    if (!budget) {
      if (this.byTenant.size >= this.most) this.byTenant.clear();
      budget = new TenantStorageBudget(this.redis, this.keys, tenant, bytesPerHour);
      this.byTenant.set(key, budget);
    }
    return budget;
  }
}
