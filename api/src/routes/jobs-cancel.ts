import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { publishControl, type CancelStop } from '../../../core/src/control-messages.ts';
import { AlreadyFinishedError, InvalidRequestError, NotFoundError } from '../../../core/src/errors.ts';
import { attemptOf } from '../../../core/src/job-attempts.ts';
import { finishJob } from '../../../core/src/job-lifecycle.ts';
import { requeueEntryId } from '../../../core/src/job-queue.ts';
import { isFinished, JobDocument, type JobSpec } from '../../../core/src/job-spec.ts';
import { isStopSignal, STOP_GRACE_BOUND, STOP_SIGNALS, type StopSignal } from '../../../core/src/launch-bounds.ts';
import type { AppDeps, AppEnv } from '../deps.ts';
import { loadJobForTenant } from '../job-access.ts';
import { waitForFinish } from '../job-waiter.ts';
import { ErrorBody, errors, json, JobIdParams } from '../openapi.ts';

const CANCEL_GRACE_MS = 2000;

/**
 * DELETE /v1/jobs/{id} — a queued job is cancelled here and never starts; a pulling or running one
 * is flagged and its worker told to kill it (with ?graceMs, docker stop: to signal its command and
 * kill it once the grace has passed); the answer waits briefly for that to land. A job that ended
 * by itself meanwhile is 409 already_finished, as one finished before the request.
 */
export const jobsCancelRoute = createRoute({
  method: 'delete', path: '/v1/jobs/{id}', summary: 'Cancel a queued or running job', tags: ['jobs'],
  request: {
    params: JobIdParams,
    query: z.object({
      graceMs: z.string().regex(/^\d{1,9}$/, 'must be a whole number of milliseconds').optional()
        .describe('docker stop -t: a running job\'s command first gets `signal` and this long to exit (say, to write its report), its output and outputFiles kept; then the rest is killed. Default 0: killed at once. At most the server\'s SBX_MAX_STOP_GRACE_MS.'),
      signal: z.enum(STOP_SIGNALS, { error: `must be one of ${STOP_SIGNALS.join(', ')}` }).optional()
        .describe('With graceMs: the signal (default the job\'s stopSignal, else SIGTERM).'),
    }),
  },
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
    const stop = stopRequest(c.req.valid('query'), job.spec, deps.config.limits.maxStopGraceMs ?? STOP_GRACE_BOUND.max);
    if (!(await deps.store.requestCancel(job.doc.id, stop ?? undefined))) throw new NotFoundError(`no job ${job.doc.id}`); // expired since it was read
    await publishControl(deps.redis, deps.keys, { type: 'cancel', id: job.doc.id, ...(stop ? { stop } : {}) });
    const doc = (await waitForFinish(deps, job.doc.id, CANCEL_GRACE_MS)) ?? job.doc;
    // It ended by itself as the cancel came (its command exited, a limit ended it): nothing was
    // cancelled, and the caller is told so as for any finished job.
    if (isFinished(doc.status) && doc.status !== 'cancelled') throw new AlreadyFinishedError(doc.id, doc.status);
    return c.json(doc, 202);
  });
}

/**
 * ?graceMs / ?signal as the worker takes them; none without a grace (killed at once). The signal is
 * left out when the job's stopSignal is one this API does not know (a newer API copy accepted it):
 * the worker then takes the job's own.
 */
function stopRequest(query: { graceMs?: string | undefined; signal?: StopSignal | undefined }, spec: JobSpec, maxGraceMs: number): CancelStop | null {
  const graceMs = Number(query.graceMs ?? 0);
  if (graceMs > maxGraceMs) {
    const message = `must be <= ${maxGraceMs} (this server's maximum)`;
    throw new InvalidRequestError(`graceMs ${message}`, [{ path: 'graceMs', message }]);
  }
  if (query.signal && graceMs === 0) {
    const message = 'applies only with graceMs (without one the job is killed at once)';
    throw new InvalidRequestError(`signal ${message}`, [{ path: 'signal', message }]);
  }
  const signal: string = query.signal ?? spec.stopSignal ?? 'SIGTERM';
  return graceMs > 0 ? { graceMs, ...(isStopSignal(signal) ? { signal } : {}) } : null;
}
