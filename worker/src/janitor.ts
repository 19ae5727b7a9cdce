/**
 * Cleaning up after workers that died. At start a worker removes what its crashed predecessor (same
 * id, same host) left: processes and cgroups (native sweep) and its jobs still marked pulling or
 * running (→ error/worker_lost). Periodically, any worker finishes the jobs of workers whose
 * heartbeat expired, so no job stays `running` forever even if nobody reads it.
 */
import { finishJob, WORKER_LOST } from '../../core/src/job-lifecycle.ts';
import type { JobStore } from '../../core/src/job-store.ts';
import type { Logger } from '../../core/src/logger.ts';
import type { RedisClient } from '../../core/src/redis.ts';
import type { RedisKeys } from '../../core/src/redis-keys.ts';
import type { WorkerDirectory } from '../../core/src/worker-directory.ts';

export class Janitor {
  constructor(
    private readonly redis: RedisClient,
    private readonly keys: RedisKeys,
    private readonly store: JobStore,
    private readonly directory: WorkerDirectory,
    private readonly logger: Logger,
  ) {}

  /** Finish every job recorded as run by `workerId`; returns how many were finished. */
  async finishJobsOf(workerId: string): Promise<number> {
    let finished = 0;
    for (const id of await this.directory.running(workerId)) {
      const doc = await this.store.getDoc(id);
      if (doc && doc.worker === workerId && (await finishJob(this.store, doc, 'error', WORKER_LOST))) finished++;
      await this.directory.removeRunning(workerId, id);
    }
    if (finished) this.logger.warn({ worker: workerId, jobs: finished }, 'finished jobs of a lost worker as worker_lost');
    return finished;
  }

  /** Workers in the index whose heartbeat expired: finish their jobs and drop them. */
  async reapDeadWorkers(): Promise<number> {
    const ids = await this.redis.zrange(this.keys.workers(), 0, -1);
    let reaped = 0;
    for (const id of ids) {
      if (await this.directory.isAlive(id)) continue;
      reaped += await this.finishJobsOf(id);
      await this.directory.remove(id);
    }
    return reaped;
  }
}
