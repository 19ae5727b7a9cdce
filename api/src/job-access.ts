/**
 * Reading a job as a tenant sees it: another tenant's job is exactly as absent as an unknown id.
 * A job whose worker stopped heartbeating is finished here as `error/worker_lost`, so no reader
 * ever sees a job `running` forever.
 */
import { NotFoundError } from '../../core/src/errors.ts';
import { isJobId } from '../../core/src/job-id.ts';
import { finishJob, WORKER_LOST } from '../../core/src/job-lifecycle.ts';
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
  const finished = await finishJob(deps.store, doc, 'error', WORKER_LOST);
  if (finished) deps.logger.warn({ jobId: doc.id, worker: doc.worker }, 'job lost its worker');
  return finished ?? (await deps.store.getDoc(doc.id)) ?? doc;
}
