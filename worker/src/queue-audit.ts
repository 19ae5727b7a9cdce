/**
 * The last line under "a job answered 202 is never lost": a job whose record says `queued` must have
 * a queue entry somewhere, or nothing will ever run it. Every path that takes an entry away settles
 * its job first (claimed, handed on, ended), and each known way to break that is fixed where it
 * happens (README, "Lost workers and Redis outages"); this pass finds what such a way, known or not,
 * left behind: a Redis that lost some writes and not others (an AOF cut short, a failover to a
 * replica that lagged), a bug. Now and then one worker of the fleet (a turn key with a TTL) walks
 * every tenant's set of queued and running jobs (`{tenant:<t>}:active`, which admission fills and
 * the end of a job empties) every SBX_QUEUE_AUDIT_MS and queues again, first in line, each job that
 * has been `queued` for longer than a grace (SBX_QUEUE_AUDIT_GRACE_MS: a younger one may be between its record and its
 * entry) with no entry on the shared queue, on a live host's queue, in a hand-off
 * deadline or in a pending requeue. A job queued twice runs once: the claim is a compare-and-set.
 *
 * The same walk settles what a lost write left claimed and unlisted: a pulling or running job that no
 * live worker's running set names, whose worker is dead (settled as a lost worker's job) or alive
 * (listed again, for that worker's janitor): unlisted-claims.ts.
 *
 * The same walk keeps what a long wait would otherwise lose: a queued job's record (and its active
 * set) are given a full life again when little of it is left (a job the queue holds for hours is
 * not dropped unrun and unreported), and members whose job has ended or whose record is gone (a
 * crash between a job's end and its release) leave the set, where they still raised the tenant's
 * next priorities.
 */
import { Cluster } from 'ioredis';
import type { Counter } from 'prom-client';
import { jobIdTime } from '../../core/src/job-id.ts';
import type { JobQueue } from '../../core/src/job-queue.ts';
import { requeueEntryId } from '../../core/src/job-queue.ts';
import type { Logger } from '../../core/src/logger.ts';
import type { RedisClient } from '../../core/src/redis.ts';
import { hostQueueName, type RedisKeys } from '../../core/src/redis-keys.ts';
import { handOffPending } from '../../core/src/placement/host-queues.ts';
import { defineScripts, luaScript } from '../../core/src/redis-scripts.ts';
import type { LostJobRecovery } from '../../core/src/job-lifecycle.ts';
import type { JobStore } from '../../core/src/job-store.ts';
import type { WorkerMetrics } from '../../core/src/metrics.ts';
import { UnlistedClaims } from './unlisted-claims.ts';

const SCRIPTS = { sbxKeepQueued: luaScript('keepQueued-2') };
interface ScriptedClient {
  sbxKeepQueued(state: string, events: string, leastMsLeft: number, jobTtlSeconds: number): Promise<number>;
}
/** Statuses of the jobs an active set holds (core/src/tenant-quota.ts). */
const ACTIVE = new Set(['queued', 'pulling', 'running']);
/** A queued job's record is renewed once less than this (plus two audit intervals) is left. */
const LEAST_LIFE_MS = 3_600_000;
/**
 * How often one pass of the fleet also walks the whole keyspace for active sets (SCAN), beside the
 * tenants' list (RedisKeys.activeTenants) that admission keeps: for the sets of tenants that only an
 * API of an older version admitted (it does not list them), and for a list Redis lost.
 */
const KEYSPACE_WALK_MS = 3_600_000;

export interface QueueAuditOptions {
  redis: RedisClient;
  keys: RedisKeys;
  /** The shared queue (BullMQ's connection): where a job found on no queue goes. */
  queue: JobQueue;
  workerId: string;
  /** SBX_QUEUE_AUDIT_MS: how often a worker tries for the fleet's turn, which lasts as long (one pass per interval fleet-wide). */
  everyMs: number;
  /** SBX_QUEUE_AUDIT_GRACE_MS: a job queued this recently is left alone. */
  graceMs: number;
  logger: Logger;
  /** sbx_queue_audit_requeued_total */
  requeued?: Pick<Counter, 'inc'>;
  /** SBX_JOB_TTL_SECONDS: a renewed queued job's record lives this + its timeout + 1 h, as at its creation. */
  jobTtlSeconds: number;
  /** How long an active set outlives its last submission (core/src/tenant-quota.ts tenantQuotaOptions). */
  activeTtlSeconds: number;
  /** The job records: a claimed job no running set names is settled through it (unlisted-claims.ts). */
  store: JobStore;
  /** How such a job of a dead worker is queued again if its command never started; null: worker_lost. */
  recovery: LostJobRecovery | null;
  /** sbx_jobs_requeued_total, sbx_jobs_worker_lost_total */
  metrics?: Pick<WorkerMetrics, 'jobsRequeued' | 'jobsWorkerLost'>;
}

export class QueueAudit {
  private readonly scripted: ScriptedClient;

  constructor(private readonly o: QueueAuditOptions) {
    this.scripted = defineScripts<ScriptedClient>(o.redis, SCRIPTS);
  }

  /** One pass if this worker gets the fleet's turn; returns how many jobs it queued again (null: not its turn). */
  async pass(now = Date.now()): Promise<number | null> {
    const { redis, keys } = this.o;
    if ((await redis.set(keys.queueAuditTurn(), this.o.workerId, 'PX', this.o.everyMs, 'NX')) !== 'OK') return null;
    const hosts = await redis.zrange(keys.workers(), 0, -1);
    const { store, recovery, logger, metrics } = this.o;
    const claims = await UnlistedClaims.read({ redis, keys, store, recovery, logger, ...(metrics ? { metrics } : {}) }, hosts);
    let requeued = 0;
    for (const [tenant, activeKey] of await this.activeSets(now)) {
      let cursor = '0';
      let holdsJobs = false;
      do {
        const [next, flat] = await redis.zscan(activeKey, cursor, 'COUNT', 500);
        cursor = next;
        for (let i = 0; i < flat.length; i += 2) {
          const id = flat[i]!;
          if (now - jobIdTime(id) < this.o.graceMs) {
            holdsJobs = true;
            continue;
          }
          const [status, attempt] = await redis.hmget(keys.jobState(id), 'status', 'attempt');
          if (status == null || !ACTIVE.has(status)) {
            await redis.zrem(activeKey, id); // ended (its release lost) or its record gone
            continue;
          }
          holdsJobs = true;
          if (status !== 'queued') {
            await claims.check(id); // claimed: settled or listed again if no live worker's running set names it
            continue;
          }
          await this.scripted.sbxKeepQueued(keys.jobState(id), keys.jobEvents(id), LEAST_LIFE_MS + 2 * this.o.everyMs, this.o.jobTtlSeconds);
          if (await this.requeueIfOnNoQueue(id, Number(attempt ?? 1), hosts)) requeued++;
        }
      } while (cursor !== '0');
      // The set lives while it holds jobs, also when its tenant stopped submitting (each admission renews it).
      if (holdsJobs) await Promise.all([redis.expire(activeKey, this.o.activeTtlSeconds, 'GT'), redis.zadd(keys.activeTenants(), 'GT', now, tenant)]);
    }
    return requeued;
  }

  /**
   * Every tenant's set of queued and running jobs, as [tenant, key]: those of the tenants' list, less
   * the entries older than an active set's life (their sets have expired), and once every
   * KEYSPACE_WALK_MS fleet-wide those a walk of the keyspace finds (listed from then on). Before,
   * every pass walked the keyspace: every key of every tenant's records (two a job, kept
   * SBX_JOB_TTL_SECONDS) was read every SBX_QUEUE_AUDIT_MS, 546 ms of Redis CPU a pass for 1M keys,
   * so a small job cost the audit some 3 ms of Redis CPU over a day's life, several times its own run.
   */
  private async activeSets(now: number): Promise<Array<[string, string]>> {
    const { redis, keys, workerId } = this.o;
    await redis.zremrangebyscore(keys.activeTenants(), '-inf', now - this.o.activeTtlSeconds * 1000);
    const tenants = new Set(await redis.zrange(keys.activeTenants(), 0, -1));
    if ((await redis.set(keys.queueAuditScanTurn(), workerId, 'PX', KEYSPACE_WALK_MS, 'NX')) === 'OK') {
      for (const key of await this.walkKeyspace()) {
        const tenant = keys.tenantOfActive(key);
        if (tenant === null || tenants.has(tenant)) continue;
        tenants.add(tenant);
        await redis.zadd(keys.activeTenants(), 'NX', now, tenant);
      }
    }
    return [...tenants].map((t) => [t, keys.tenantActive(t)]);
  }

  /** Every tenant's active set the keyspace holds (one SCAN of it; of each master's, on a Cluster). */
  private async walkKeyspace(): Promise<string[]> {
    const found = new Set<string>();
    const servers = this.o.redis instanceof Cluster ? this.o.redis.nodes('master') : [this.o.redis];
    for (const server of servers) {
      let cursor = '0';
      do {
        const [next, keys] = await server.scan(cursor, 'MATCH', this.o.keys.tenantActive('*'), 'COUNT', 1000);
        for (const k of keys) found.add(k);
        cursor = next;
      } while (cursor !== '0');
    }
    return [...found];
  }

  /** `attempt`: the job's hash field `attempt` (absent = 1): core/src/job-attempts.ts. */
  private async requeueIfOnNoQueue(id: string, attempt: number, hosts: readonly string[]): Promise<boolean> {
    const { redis, keys, queue } = this.o;
    const entry = requeueEntryId(id, attempt);
    // Its entry on the shared queue (in any state: waiting, held by a worker deciding, locked; a
    // requeue's is `<id>-r<attempt>`, a hand-off swept back is `<id>`), or on a host's own queue
    // (`<id>`), or its hand-off deadline (a sweep sends it on), or its requeue on its way.
    const looks = await Promise.all([
      redis.exists(queue.entryKey(entry)),
      entry !== id ? redis.exists(queue.entryKey(id)) : 0,
      ...hosts.map((h) => redis.exists(queue.entryKey(id, hostQueueName(h)))),
      redis.zscore(keys.requeuesPending(), id),
    ]);
    if (looks.some((l) => l !== 0 && l !== null)) return false;
    if (await handOffPending(redis, keys, id)) return false;
    // Still queued now (a worker may have claimed it since the first look), then queued again.
    if ((await redis.hget(keys.jobState(id), 'status')) !== 'queued') return false;
    if (attempt > 1) await queue.requeue(id, attempt);
    else await queue.add(id, 1);
    this.o.requeued?.inc();
    this.o.logger.warn({ jobId: id, attempt, entry }, 'a queued job was on no queue (its entry lost): queued it again');
    return true;
  }
}
