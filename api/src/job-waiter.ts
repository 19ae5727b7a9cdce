/**
 * Waiting for a job to finish (POST ?wait=true, DELETE's short grace): subscribe to the job's pings
 * first, then read, so a finish between the two is never missed. A watch can be opened before the
 * job is even created, to take the subscription off the request's critical path.
 */
import { isFinished, type JobDocument } from '../../core/src/job-spec.ts';
import type { AppDeps } from './deps.ts';
import { Doorbell } from './job-events-hub.ts';
import { checkWorkerAlive } from './job-access.ts';

const LIVENESS_CHECK_MS = 5000;

export class JobWatch {
  private constructor(
    private readonly deps: AppDeps,
    readonly id: string,
    private readonly bell: Doorbell,
    readonly close: () => void,
  ) {}

  static async open(deps: AppDeps, id: string): Promise<JobWatch> {
    const bell = new Doorbell();
    // Only the end matters here: status changes and output do not wake the waiter.
    const unwatch = await deps.hub.watch(deps.keys.jobNotify(id), (what) => what === 'exit' && bell.ring());
    return new JobWatch(deps, id, bell, unwatch);
  }

  /** The finished document, or the current one when `timeoutMs` passes first; null if gone. */
  async untilFinished(timeoutMs: number, signal?: AbortSignal): Promise<JobDocument | null> {
    const deadline = Date.now() + timeoutMs;
    let lastLivenessCheck = Date.now();
    for (;;) {
      let doc = await this.deps.store.getDoc(this.id);
      if (!doc) return null;
      if (Date.now() - lastLivenessCheck > LIVENESS_CHECK_MS) {
        doc = await checkWorkerAlive(this.deps, doc);
        lastLivenessCheck = Date.now();
      }
      if (isFinished(doc.status)) return doc;
      const left = deadline - Date.now();
      if (left <= 0 || signal?.aborted) return doc;
      await this.bell.wait(Math.min(left, LIVENESS_CHECK_MS), signal);
    }
  }
}

export async function waitForFinish(deps: AppDeps, id: string, timeoutMs: number, signal?: AbortSignal): Promise<JobDocument | null> {
  const watch = await JobWatch.open(deps, id);
  try {
    return await watch.untilFinished(timeoutMs, signal);
  } finally {
    watch.close();
  }
}
