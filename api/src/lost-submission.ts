/**
 * A submission that failed between its record and its queue entry (Redis went away in between, or
 * refused the entry) answered 503 or 500, and tried to take its record back (JobStore.abandon). When
 * even that failed, the record stays `queued` with no queue entry: a ghost that no worker will ever
 * take. A client that retries with the same idempotencyKey is handed that job, so the retry queues
 * it, counted against the tenant's quota again (its place was given back when the submission failed).
 * A submission without an idempotencyKey has no retry to find it: stranded-records.ts takes it back.
 */
import type { TenantQuota } from '../../core/src/config.ts';
import type { JobDocument } from '../../core/src/job-spec.ts';
import type { TenantQuotas } from '../../core/src/tenant-quota.ts';
import type { AppDeps } from './deps.ts';

/** Queue `doc` again if it is a first attempt still `queued` with no queue entry anywhere; true if it did. */
export async function requeueLostSubmission(deps: AppDeps, quotas: TenantQuotas, doc: JobDocument, quota: TenantQuota | null): Promise<boolean> {
  if (doc.status !== 'queued' || (doc.attempts ?? 1) !== 1) return false;
  if (await deps.placement.isWaiting(doc.id)) return false;
  const stored = await deps.store.get(doc.id);
  if (!stored || stored.status !== 'queued') return false; // taken meanwhile
  const { priority } = await quotas.admit(stored.tenant, doc.id, quota);
  await deps.queue.add(doc.id, priority, { image: stored.spec.image, memoryBytes: stored.spec.limits.memoryBytes });
  deps.logger.warn({ jobId: doc.id, tenant: stored.tenant }, 'a retried submission found its job queued on no queue (its first submission failed half way): queued it');
  return true;
}
