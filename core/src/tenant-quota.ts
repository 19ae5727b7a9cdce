/**
 * Per-tenant quotas, kept in Redis so every API instance enforces the same ones and a restart
 * forgets nothing: a token bucket for submissions per second, a sorted set of the tenant's jobs that
 * are queued or running (added here at submission, removed by JobStore.transition when a job
 * finishes, repaired lazily when it is full).
 * The set also gives each job its queue priority: 1 + the tenant's active jobs, so a tenant with a
 * backlog cannot starve one without (BullMQ takes the lowest priority first, FIFO among equals).
 */
import { sendTogether } from './redis-together.ts';
import { defineScripts, luaScript } from './redis-scripts.ts';
import type { Config, LimitName, LimitsPolicy, TenantQuota } from './config.ts';
import { RateLimitedError } from './errors.ts';
import { MAX_PRIORITY } from './job-queue.ts';
import type { JobStatus } from './job-spec.ts';
import type { RedisClient } from './redis.ts';
import type { RedisKeys } from './redis-keys.ts';
import { storageHour } from './tenant-storage-budget.ts';

/** A job in one of these counts against its tenant (job-spec.ts is not imported at run time: its zod schemas must be built after @hono/zod-openapi extends zod). */
const ACTIVE_STATUSES: readonly JobStatus[] = ['queued', 'pulling', 'running'];
/** At most one lazy repair of a tenant's active set in this long (it reads every member's status). */
const REPAIR_INTERVAL_MS = 1000;

const SCRIPTS = { sbxAdmitJob: luaScript('admitJob-3') };

type AdmitResult = ['ok' | 'rate' | 'active' | 'stored', number];
interface ScriptedClient {
  sbxAdmitJob(active: string, rate: string, output: string, ...argv: Array<string | number>): Promise<AdmitResult>;
}

export interface TenantQuotaOptions {
  /** How long the active set outlives its last submission (a job record's longest life). */
  activeTtlSeconds: number;
}

/** TTLs from config: the active set lives as long as a job record can. */
export function tenantQuotaOptions(config: Config): TenantQuotaOptions {
  const ttl = config.env.SBX_JOB_TTL_SECONDS;
  return { activeTtlSeconds: ttl + Math.ceil(config.env.SBX_MAX_TIMEOUT_MS / 1000) + 3600 };
}

export class TenantQuotas {
  private readonly scripted: ScriptedClient;

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: RedisKeys,
    private readonly opts: TenantQuotaOptions,
  ) {
    this.scripted = defineScripts<ScriptedClient>(redis, SCRIPTS);
  }

  /**
   * Count a new job against its tenant's quota (null = no limits); returns its queue priority. `recordBytes`: what its record will hold, counted against the tenant's storage
   * budget (tenant-storage-budget.ts). Throws RateLimitedError (429, with the wait) when a quota is
   * used up.
   */
  async admit(tenant: string, jobId: string, quota: TenantQuota | null, recordBytes = 0): Promise<{ priority: number }> {
    let result = await this.run(tenant, jobId, quota, recordBytes);
    if (result[0] === 'active' && (await this.repair(tenant))) result = await this.run(tenant, jobId, quota, recordBytes);
    const [verdict, n] = result;
    if (verdict === 'ok') return { priority: n };
    if (verdict === 'rate') {
      throw new RateLimitedError(`tenant ${tenant} may submit ${quota!.submitsPerSecond} submissions per second (bursts of ${quota!.submitBurst}); retry in ${Math.ceil(n / 1000)} s`, n / 1000);
    }
    if (verdict === 'stored') {
      throw new RateLimitedError(`tenant ${tenant}'s jobs have stored ${quota!.storedBytesPerHour} bytes (job records and output) this hour, its quota (storedBytesPerHour); retry in ${Math.ceil(n / 1000)} s`, n / 1000);
    }
    throw new RateLimitedError(`tenant ${tenant} has ${n} jobs queued or running, its quota; wait for one to finish or cancel one`, 1);
  }

  /** The job no longer counts (normally done by JobStore.transition when a job finishes). */
  async release(tenant: string, jobId: string): Promise<void> {
    await this.redis.zrem(this.keys.tenantActive(tenant), jobId);
  }

  /**
   * The admission script, with the tenant listed among those whose active set may hold jobs (sent
   * first, in the same write: the queue audit walks that list instead of the keyspace).
   */
  private async run(tenant: string, jobId: string, quota: TenantQuota | null, recordBytes: number): Promise<AdmitResult> {
    const { hour, msLeft } = storageHour();
    const [, result] = await Promise.all(sendTogether(this.redis, () => [
      this.redis.zadd(this.keys.activeTenants(), Date.now(), tenant),
      this.scripted.sbxAdmitJob(
        this.keys.tenantActive(tenant), this.keys.tenantRate(tenant), this.keys.tenantStored(tenant, hour),
        jobId, quota?.submitsPerSecond ?? 0, quota?.submitBurst ?? 1, quota?.activeJobs ?? 0,
        this.opts.activeTtlSeconds, MAX_PRIORITY, quota?.storedBytesPerHour ?? 0, msLeft, recordBytes,
      ),
    ] as const));
    return result;
  }

  /**
   * Drop members whose job has finished or is gone (a crash between a job's final status and its
   * release, an expired record); true when any went. At most once a second per tenant.
   */
  private async repair(tenant: string): Promise<boolean> {
    if ((await this.redis.set(this.keys.tenantRepair(tenant), '1', 'PX', REPAIR_INTERVAL_MS, 'NX')) !== 'OK') return false;
    const active = this.keys.tenantActive(tenant);
    const ids = await this.redis.zrange(active, 0, -1);
    const statuses = await Promise.all(ids.map((id) => this.redis.hget(this.keys.jobState(id), 'status')));
    const stale = ids.filter((_, i) => !ACTIVE_STATUSES.includes(statuses[i] as JobStatus));
    if (stale.length) await this.redis.zrem(active, ...stale);
    return stale.length > 0;
  }
}

/**
 * The limits policy for one tenant: its ceilings lower the server's maxima, and the defaults with
 * them (a request that omits a field must not be refused for it); a cpuTimeMs ceiling becomes the
 * default too, as there is none otherwise. A quota with `jobEgress: false` keeps its jobs off the network.
 */
export function tenantLimitsPolicy(server: LimitsPolicy, quota: TenantQuota | null): LimitsPolicy {
  const policy = quota?.jobEgress === false ? { ...server, tenantJobEgress: false } : server;
  const ceilings = Object.entries(quota?.limits ?? {}) as Array<[LimitName, number]>;
  if (ceilings.length === 0) return policy;
  const defaults = { ...policy.defaults };
  const maxima = { ...policy.maxima };
  const tenantMaxima = new Set<string>();
  for (const [name, ceiling] of ceilings) {
    if (ceiling >= maxima[name]) continue;
    maxima[name] = ceiling;
    tenantMaxima.add(name);
    const d = defaults[name];
    defaults[name] = d === null ? ceiling : Math.min(d, ceiling);
  }
  return { ...policy, defaults, maxima, tenantMaxima };
}
