import type { Hono } from 'hono';
import { publishControl } from '../../../core/src/control-messages.ts';
import { AlreadyFinishedError } from '../../../core/src/errors.ts';
import { finishJob } from '../../../core/src/job-lifecycle.ts';
import { isFinished } from '../../../core/src/job-spec.ts';
import type { AppDeps, AppEnv } from '../deps.ts';
import { loadJobForTenant } from '../job-access.ts';
import { waitForFinish } from '../job-waiter.ts';

const CANCEL_GRACE_MS = 2000;

/**
 * DELETE /v1/jobs/{id} — a queued job is cancelled here and never starts; a pulling or running one
 * is flagged and its worker told to kill it; the answer waits briefly for that to land.
 */
export function registerJobsCancel(app: Hono<AppEnv>, deps: AppDeps): void {
  app.delete('/v1/jobs/:id', async (c) => {
    const job = await loadJobForTenant(deps, c.req.param('id'), c.get('tenant'));
    if (isFinished(job.doc.status)) throw new AlreadyFinishedError(job.doc.id, job.doc.status);
    if (job.doc.status === 'queued') {
      const done = await finishJob(deps.store, job.doc, 'cancelled', null);
      if (done) {
        await deps.queue.remove(done.id);
        return c.json(done, 202);
      }
    }
    await deps.store.requestCancel(job.doc.id);
    await publishControl(deps.redis, deps.keys, { type: 'cancel', id: job.doc.id });
    const doc = (await waitForFinish(deps, job.doc.id, CANCEL_GRACE_MS)) ?? job.doc;
    return c.json(doc, 202);
  });
}
