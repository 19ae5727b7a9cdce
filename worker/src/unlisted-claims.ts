/**
 * Jobs a worker claimed (pulling or running, `worker` = W) that no live worker's running set names.
 * Every settler of a lost worker's jobs starts from a running set (janitor.ts: a restarted worker's
 * own, a dead worker's in the index, a live worker's orphans), and the claim and the running-set
 * entry are two writes: on a Cluster they go to different nodes (`{job:<id>}`, `{workers}`), so a
 * worker SIGKILLed between them, or a Redis that lost the entry and kept the claim (an AOF short of
 * its last second, a failover to a lagging replica of the `{workers}` node, a worker's whole set
 * gone), left the job non-final until its record expired, unread by any janitor; a worker that
 * stopped and left the index with a job it could not end did the same. The queue audit
 * (queue-audit.ts) walks every tenant's active jobs and asks this for each one it finds claimed:
 *   - named by a live worker's running set (read once a pass): nothing to do (the usual case, no
 *     command of its own);
 *   - else its document names its worker W. W dead (no heartbeat): settled as a lost worker's job
 *     (core/src/job-lifecycle.ts settleLostJob: queued again if its command never started, else
 *     error/worker_lost), as an API reader would (api/src/job-access.ts); W alive: the job goes back
 *     into W's running set, where W's janitor settles it if W no longer holds it (settleOwnOrphans)
 *     and W removes it as usual if it does. Only W knows whether it still runs the job.
 * Races: the document is read before W's heartbeat, so a job claimed since by a live worker is never
 * taken for a dead one's; a dead worker is never remembered (one that restarts under its id mid-pass
 * may claim again); every settle is a compare-and-set on (status, attempt), so a janitor, an API
 * reader, a requeue under way or a slow worker racing on the job leave one winner. An entry put back
 * for a job that ended meanwhile is dropped by its worker's next orphan pass (the job is final).
 */
import { settleLostJob, type LostJobOutcome, type LostJobRecovery } from '../../core/src/job-lifecycle.ts';
import { isFinished } from '../../core/src/job-spec.ts';
import type { JobStore } from '../../core/src/job-store.ts';
import type { Logger } from '../../core/src/logger.ts';
import type { WorkerMetrics } from '../../core/src/metrics.ts';
import type { RedisClient } from '../../core/src/redis.ts';
import type { RedisKeys } from '../../core/src/redis-keys.ts';

export interface UnlistedClaimsDeps {
  redis: RedisClient;
  keys: RedisKeys;
  store: JobStore;
  /** How a lost job whose command never started is queued again; null: it ends worker_lost. */
  recovery: LostJobRecovery | null;
  logger: Logger;
  /** sbx_jobs_requeued_total, sbx_jobs_worker_lost_total, as the janitor counts its settles. */
  metrics?: Pick<WorkerMetrics, 'jobsRequeued' | 'jobsWorkerLost'>;
}

/** What became of an unlisted claimed job: settled (LostJobOutcome's), put back in its live worker's set, or nothing to do. */
export type UnlistedOutcome = LostJobOutcome['outcome'] | 'listed' | null;

export class UnlistedClaims {
  /** The running sets of the workers alive when the pass began, by worker id. */
  private constructor(
    private readonly d: UnlistedClaimsDeps,
    private readonly live: Map<string, ReadonlySet<string>>,
  ) {}

  /**
   * The running sets of the live workers among `workerIds` (the index), for one audit pass: two
   * commands a worker (its heartbeat, its set), sent together.
   */
  static async read(d: UnlistedClaimsDeps, workerIds: readonly string[]): Promise<UnlistedClaims> {
    const rows = await Promise.all(workerIds.map((id) => Promise.all([d.redis.exists(d.keys.worker(id)), d.redis.smembers(d.keys.workerJobs(id))])));
    const live = new Map<string, ReadonlySet<string>>();
    rows.forEach(([alive, jobs], i) => alive === 1 && live.set(workerIds[i]!, new Set(jobs)));
    return new UnlistedClaims(d, live);
  }

  /** Job `id`, found pulling or running: settled or listed again if no live worker's set names it. */
  async check(id: string): Promise<UnlistedOutcome> {
    for (const jobs of this.live.values()) if (jobs.has(id)) return null;
    const doc = await this.d.store.getDoc(id);
    if (!doc || isFinished(doc.status) || doc.status === 'queued' || !doc.worker) return null; // moved on since
    const { redis, keys, logger } = this.d;
    const worker = doc.worker;
    // Read after the document: a worker alive now was alive when it held the job.
    if (this.live.has(worker) || (await redis.exists(keys.worker(worker))) === 1) {
      // Looked at first: SADD is refused when Redis is full (noeviction), a look is not.
      if ((await redis.sismember(keys.workerJobs(worker), id)) === 1) return null; // listed since the pass began
      await redis.sadd(keys.workerJobs(worker), id);
      logger.warn({ jobId: id, worker, status: doc.status }, 'a job claimed by a live worker was in no running set (a write Redis lost): listed there again, for its worker to settle if its run there is over');
      return 'listed';
    }
    const settled = await settleLostJob(this.d.store, this.d.recovery, doc);
    if (!settled) return null; // someone else settled it first
    if (settled.outcome === 'requeued') this.d.metrics?.jobsRequeued.inc();
    if (settled.outcome === 'lost') this.d.metrics?.jobsWorkerLost.inc();
    logger.warn({ jobId: id, worker, status: doc.status, outcome: settled.outcome }, 'a job of a lost worker was in no running set (a write Redis lost, or the worker died between its claim and its entry): settled (requeued: command not started; lost: worker_lost)');
    return settled.outcome;
  }
}
