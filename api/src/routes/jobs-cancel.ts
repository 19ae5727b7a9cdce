import { createRoute, type OpenAPIHono } from '@hono/zod-openapi';
import { publishControl } from '../../../core/src/control-messages.ts';
import { AlreadyFinishedError } from '../../../core/src/errors.ts';
import { attemptOf } from '../../../core/src/job-attempts.ts';
import { finishJob } from '../../../core/src/job-lifecycle.ts';
import { requeueEntryId } from '../../../core/src/job-queue.ts';
import { isFinished, JobDocument } from '../../../core/src/job-spec.ts';
import type { AppDeps, AppEnv } from '../deps.ts';
import { loadJobForTenant } from '../job-access.ts';
import { waitForFinish } from '../job-waiter.ts';
import { ErrorBody, errors, json, JobIdParams } from '../openapi.ts';

const CANCEL_GRACE_MS = 2000;

/**
 * DELETE /v1/jobs/{id} — a queued job is cancelled here and never starts; a pulling or running one
 * is flagged and its worker told to kill it; the answer waits briefly for that to land.
 */
export const jobsCancelRoute = createRoute({
  method: 'delete', path: '/v1/jobs/{id}', summary: 'Cancel a queued or running job', tags: ['jobs'],
  request: { params: JobIdParams },
  responses: { 202: json(JobDocument, 'Cancellation accepted'), 409: json(ErrorBody, 'already_finished'), ...errors },
});

export function registerJobsCancel(app: OpenAPIHono<AppEnv>, deps: AppDeps): void {
  app.openapi(jobsCancelRoute, async (c) => {
    const job = await loadJobForTenant(deps, c.req.valid('param').id, c.get('tenant'));
    if (isFinished(job.doc.status)) throw new AlreadyFinishedError(job.doc.id, job.doc.status);
    if (job.doc.status === 'queued') {
      const done = await finishJob(deps.store, job.doc, 'cancelled', null);
      if (done) {
        await deps.queue.remove(requeueEntryId(done.id, attemptOf(done))); // a requeued job's entry is its attempt's
        return c.json(done, 202);
      }
    }
    await deps.store.requestCancel(job.doc.id);
    await publishControl(deps.redis, deps.keys, { type: 'cancel', id: job.doc.id });
    const doc = (await waitForFinish(deps, job.doc.id, CANCEL_GRACE_MS)) ?? job.doc;
    return c.json(doc, 202);
  });
}
