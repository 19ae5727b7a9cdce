/**
 * Waiting for a job to finish (POST ?wait=true, DELETE's short grace): subscribe to the job's pings
 * first, then read, so a finish between the two is never missed.
 */
import { isFinished, type JobDocument } from '../../core/src/job-spec.ts';
import type { AppDeps } from './deps.ts';
import { Doorbell } from './job-events-hub.ts';
import { checkWorkerAlive } from './job-access.ts';

export async function waitForFinish(deps: AppDeps, id: string, timeoutMs: number, signal?: AbortSignal): Promise<JobDocument | null> {
  const bell = new Doorbell();
  const unwatch = await deps.hub.watch(deps.keys.jobNotify(id), bell.ring);
  try {
    const deadline = Date.now() + timeoutMs;
    let lastLivenessCheck = Date.now();
    for (;;) {
      let doc = await deps.store.getDoc(id);
      if (!doc) return null;
      if (Date.now() - lastLivenessCheck > 5000) {
        doc = await checkWorkerAlive(deps, doc);
        lastLivenessCheck = Date.now();
      }
      if (isFinished(doc.status)) return doc;
      const left = deadline - Date.now();
      if (left <= 0 || signal?.aborted) return doc;
      await bell.wait(Math.min(left, 5000), signal);
    }
  } finally {
    unwatch();
  }
}
