/**
 * Cleaning up after workers that died. At start a worker removes what its crashed predecessor (same
 * id, same host) left: processes and cgroups (native sweep) and its jobs still marked pulling or
 * running. Periodically, any worker settles the jobs of workers whose heartbeat expired, so no job
 * stays `running` forever even if nobody reads it. Settling (core/src/job-lifecycle.ts): a job whose
 * command had not started is queued again (bounded, SBX_LOST_JOB_REQUEUES), any other ends
 * error/worker_lost; a requeue a crash left half done is finished here too.
 */
import { finishPendingRequeues, settleLostJob, type LostJobRecovery } from '../../core/src/job-lifecycle.ts';
import { JobAttempts } from '../../core/src/job-attempts.ts';
import { JobQueue } from '../../core/src/job-queue.ts';
import type { JobStore } from '../../core/src/job-store.ts';
import type { Logger } from '../../core/src/logger.ts';
import type { WorkerMetrics } from '../../core/src/metrics.ts';
import type { RedisClient } from '../../core/src/redis.ts';
import type { RedisKeys } from '../../core/src/redis-keys.ts';
import type { WorkerDirectory } from '../../core/src/worker-directory.ts';
import type { HostQueues } from '../../core/src/placement/host-queues.ts';

/** A requeue intent this old was left by a crash between the requeue and its queue entry. */
const STALE_REQUEUE_MS = 10_000;

export class Janitor {
  constructor(
    private readonly redis: RedisClient,
    private readonly keys: RedisKeys,
    private readonly store: JobStore,
    private readonly directory: WorkerDirectory,
    private readonly logger: Logger,
    /** How lost jobs are queued again; null = never (every lost job ends worker_lost). */
    private readonly recovery: LostJobRecovery | null = null,
    /** sbx_jobs_requeued_total, sbx_jobs_worker_lost_total (their final status is counted by JobStore.onFinished). */
    private readonly metrics: Pick<WorkerMetrics, 'jobsRequeued' | 'jobsWorkerLost'> | null = null,
    /** The workers' own queues: a forgotten worker's goes (its entries to the shared queue first); null = left alone. */
    private readonly hostQueues: Pick<HostQueues, 'retire'> | null = null,
  ) {}

  /** Settle every job recorded as run by `workerId` (requeued or worker_lost); returns how many. */
  async finishJobsOf(workerId: string): Promise<number> {
    return this.settle(workerId, await this.directory.running(workerId));
  }

  /** Settle `ids`, recorded as run by the lost `workerId`, and take them out of its running set. */
  private async settle(workerId: string, ids: readonly string[]): Promise<number> {
    const settled = { requeued: 0, lost: 0, cancelled: 0 };
    for (const id of ids) {
      const doc = await this.store.getDoc(id);
      const result = doc && doc.worker === workerId ? await settleLostJob(this.store, this.recovery, doc) : null;
      if (result) settled[result.outcome]++;
      await this.directory.removeRunning(workerId, id);
    }
    this.metrics?.jobsRequeued.inc(settled.requeued);
    this.metrics?.jobsWorkerLost.inc(settled.lost);
    const total = settled.requeued + settled.lost + settled.cancelled;
    if (total) this.logger.warn({ worker: workerId, ...settled }, 'settled the jobs of a lost worker (requeued: command not started; lost: worker_lost)');
    return total;
  }

  /**
   * Jobs recorded in this LIVE worker's running set that it no longer holds (`held`: the runner's jobs
   * from the claim until their entry is removed). Redis lost what the worker wrote after the claim
   * (a restart from an append-only file that missed its last second, a failover to a replica that
   * lagged): the job shows `pulling`/`running` while its run is over here, and no dead-worker reap
   * will ever find it. Settled as for a lost worker (requeued if its command never started, else
   * worker_lost). `held` is read after the set, and a job is claimed into it before its id enters
   * the set, so a job being claimed right now is never taken for one. Returns how many were settled.
   */
  async settleOwnOrphans(workerId: string, held: ReadonlySet<string>): Promise<number> {
    const orphans = (await this.directory.running(workerId)).filter((id) => !held.has(id));
    const settled = { requeued: 0, lost: 0, cancelled: 0 };
    for (const id of orphans) {
      const doc = await this.store.getDoc(id);
      const result = doc && doc.worker === workerId && !held.has(id) ? await settleLostJob(this.store, this.recovery, doc) : null;
      if (result) settled[result.outcome]++;
      if (!held.has(id)) await this.directory.removeRunning(workerId, id); // claimed again meanwhile: its entry stays
    }
    this.metrics?.jobsRequeued.inc(settled.requeued);
    this.metrics?.jobsWorkerLost.inc(settled.lost);
    const total = settled.requeued + settled.lost + settled.cancelled;
    if (total) this.logger.warn({ worker: workerId, ...settled }, 'settled jobs Redis showed as this worker\'s though it no longer ran them (writes lost by Redis)');
    return total;
  }

  /** A forgotten worker's own queue: entries to the shared queue, keys removed (a locked entry keeps them for the hand-off sweep). */
  private async retireQueue(id: string): Promise<void> {
    try {
      const { returned, removed } = await this.hostQueues!.retire(id);
      if (returned || !removed) this.logger.warn({ worker: id, returned, removed }, "a lost worker's own queue: its jobs went back to the shared queue");
    } catch (err) {
      this.logger.warn({ worker: id, err: (err as Error).message }, "removing a lost worker's own queue failed");
    }
  }

  /** Requeues a crash left half done get their queue entry; returns how many. */
  async finishPendingRequeues(): Promise<number> {
    if (!this.recovery) return 0;
    const fixed = await finishPendingRequeues(this.store, this.recovery, STALE_REQUEUE_MS);
    if (fixed) this.logger.warn({ jobs: fixed }, 'queued jobs whose requeue a crash had left half done');
    return fixed;
  }

  /**
   * Workers in the index whose heartbeat expired: finish their jobs and drop them. Its jobs are read
   * in one step with the look at its heartbeat, and it leaves the index only if still dead with none
   * left (one Lua script each: core/src/worker-directory.ts): a heartbeat that lands meanwhile keeps
   * it, and a job it took after coming back is never touched. A crash halfway leaves it in the index
   * for the next pass. A worker forgotten also loses its own queue (hostQueues.retire: its entries
   * back to the shared queue, then its keys, only once none is left in it).
   */
  async reapDeadWorkers(): Promise<number> {
    const ids = await this.redis.zrange(this.keys.workers(), 0, -1);
    let reaped = 0;
    for (const id of ids) {
      const jobs = await this.directory.deadWorkerJobs(id);
      if (jobs === null) continue; // alive
      reaped += await this.settle(id, jobs);
      if ((await this.directory.forgetIfDead(id)) === 'ok' && this.hostQueues) await this.retireQueue(id);
    }
    await this.finishPendingRequeues();
    return reaped;
  }
}

/**
 * How this worker's janitor queues lost jobs again: BullMQ's shared queue, SBX_LOST_JOB_REQUEUES times at most.
 * `queueConnection`: BullMQ's (its scripts stay off `redis`, whose pipelines they would make dear: core/src/job-store.ts).
 */
export function lostJobRecovery(redis: RedisClient, keys: RedisKeys, maxRequeues: number, queueConnection: RedisClient = redis): LostJobRecovery & { queue: JobQueue; close(): Promise<void> } {
  const queue = new JobQueue(queueConnection, keys);
  return { attempts: new JobAttempts(redis, keys), enqueue: (id, attempt) => queue.requeue(id, attempt), maxRequeues, queue, close: () => queue.close() };
}
