import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { JobDocument } from '../../../core/src/job-spec.ts';
import type { AppDeps, AppEnv } from '../deps.ts';
import { loadJobForTenant } from '../job-access.ts';
import { errors, flag, json, JobIdParams } from '../openapi.ts';
import { withQueuePosition } from '../queue-position.ts';
import { jobWithOutputResponse } from '../job-output-response.ts';

export const jobsGetRoute = createRoute({
  method: 'get', path: '/v1/jobs/{id}', summary: 'The job document', tags: ['jobs'],
  request: { params: JobIdParams, query: z.object({ output: flag('`true`: include the output') }) },
  responses: { 200: json(JobDocument, 'The job (with output when ?output=true)'), ...errors },
});

/** GET /v1/jobs/{id}[?output=true] — the job document (queuePosition while queued), with its output when asked. */
export function registerJobsGet(app: OpenAPIHono<AppEnv>, deps: AppDeps): void {
  app.openapi(jobsGetRoute, async (c) => {
    const job = await loadJobForTenant(deps, c.req.valid('param').id, c.get('tenant'));
    const live = job.liveUsage ? { liveUsage: job.liveUsage } : {}; // the store gives it only while running
    const doc = { ...(await withQueuePosition(deps, job.doc)), ...live };
    // The JobDocument JSON, a long output streamed into it: a plain Response to Hono's types.
    if (c.req.valid('query').output === 'true') return (await jobWithOutputResponse(c, deps, doc)) as never;
    return c.json(doc, 200);
  });
}
