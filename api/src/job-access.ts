/**
 * Reading a job as a tenant sees it: another tenant's job is exactly as absent as an unknown id.
 * A job whose worker stopped heartbeating is settled here (queued again if its command had not
 * started, else `error/worker_lost`), so no reader ever sees a job `running` forever.
 */
import { NotFoundError } from '../../core/src/errors.ts';
import { isJobId } from '../../core/src/job-id.ts';
import { JobAttempts } from '../../core/src/job-attempts.ts';
import { settleLostJob, type LostJobRecovery } from '../../core/src/job-lifecycle.ts';
import type { JobDocument } from '../../core/src/job-spec.ts';
import type { StoredJob } from '../../core/src/job-store.ts';
import type { AppDeps } from './deps.ts';

export async function loadJobForTenant(deps: AppDeps, id: string, tenant: string): Promise<StoredJob> {
  const job = isJobId(id) ? await deps.store.get(id) : null;
  if (!job || job.tenant !== tenant) throw new NotFoundError(`no job ${id}`);
  job.doc = await checkWorkerAlive(deps, job.doc);
  job.status = job.doc.status;
  return job;
}

export async function checkWorkerAlive(deps: AppDeps, doc: JobDocument): Promise<JobDocument> {
  if ((doc.status !== 'pulling' && doc.status !== 'running') || !doc.worker) return doc;
  if (await deps.workers.isAlive(doc.worker)) return doc;
  // Its command not started: queued again (bounded); otherwise error/worker_lost (core/src/job-lifecycle.ts).
  const settled = await settleLostJob(deps.store, lostJobRecovery(deps), doc);
  if (settled) deps.logger.warn({ jobId: doc.id, worker: doc.worker, outcome: settled.outcome }, 'job lost its worker');
  return settled?.doc ?? (await deps.store.getDoc(doc.id)) ?? doc;
}

const recoveries = new WeakMap<AppDeps, LostJobRecovery>();

function lostJobRecovery(deps: AppDeps): LostJobRecovery {
  let r = recoveries.get(deps);
  if (!r) {
    r = { attempts: new JobAttempts(deps.redis, deps.keys), enqueue: (id, attempt) => deps.queue.requeue(id, attempt), maxRequeues: deps.config.env.SBX_LOST_JOB_REQUEUES };
    recoveries.set(deps, r);
  }
  return r;
}
