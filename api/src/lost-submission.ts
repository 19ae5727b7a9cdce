/**
 * A submission that failed between its record and its queue entry (Redis went away in between, or
 * refused the entry) answered 503 or 500, and tried to take its record back (JobStore.abandon). When
 * even that failed, the record stays `queued` with no queue entry: a ghost that no worker will ever
 * take. A client that retries with the same idempotencyKey is handed that job, so the retry queues
 * it, counted against the tenant's quota again (its place was given back when the submission failed),
 * once the first submission can no longer be on its way (its claim TAKEOVER_MS old).
 * A submission without an idempotencyKey has no retry to find it: stranded-records.ts takes it back.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { TenantQuota } from '../../core/src/config.ts';
import type { JobDocument } from '../../core/src/job-spec.ts';
import type { TenantQuotas } from '../../core/src/tenant-quota.ts';
import type { AppDeps } from './deps.ts';
import { MAX_PAUSE_MS, TAKEOVER_MS } from './idempotency-keys.ts';

/**
 * Queue `doc` again if it is a first attempt still `queued` with no queue entry anywhere once its
 * submission can no longer be on its way; true if it did. `claimAgeMs`: how long ago the key was claimed.
 */
export async function requeueLostSubmission(deps: AppDeps, quotas: TenantQuotas, doc: JobDocument, quota: TenantQuota | null, claimAgeMs: () => Promise<number>): Promise<boolean> {
  if (doc.status !== 'queued' || (doc.attempts ?? 1) !== 1) return false;
  if (!(await strandedOnceSettled(deps, doc.id, claimAgeMs))) return false;
  const stored = await deps.store.get(doc.id);
  if (!stored || stored.status !== 'queued') return false; // taken meanwhile
  const { priority } = await quotas.admit(stored.tenant, doc.id, quota);
  await deps.queue.add(doc.id, priority, { image: stored.spec.image, memoryBytes: stored.spec.limits.memoryBytes });
  deps.logger.warn({ jobId: doc.id, tenant: stored.tenant }, 'a retried submission found its job queued on no queue (its first submission failed half way): queued it');
  return true;
}

/**
 * A record with no queue entry is a submission's either on its way (between its record and its entry:
 * one round trip with placement at submission, more on Redis Cluster) or stopped half way. Looked at
 * until its entry is there, it is taken or gone, or its claim is TAKEOVER_MS old (the rule a claim
 * without a record is taken over by): before, a retry in that window queued the job a second time
 * (its first entry on a host's queue, the retry's on the shared one).
 */
async function strandedOnceSettled(deps: AppDeps, id: string, claimAgeMs: () => Promise<number>): Promise<boolean> {
  for (let pause = 1; ; pause = Math.min(pause * 2, MAX_PAUSE_MS)) {
    if (await deps.placement.isWaiting(id)) return false;
    if ((await deps.store.getStatuses([id]))[0] !== 'queued') return false;
    if ((await claimAgeMs()) >= TAKEOVER_MS) return true;
    await sleep(pause);
  }
}
