import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { OutputFileInfo } from '../../../core/src/job-spec.ts';
import type { AppDeps, AppEnv } from '../deps.ts';
import { loadJobForTenant } from '../job-access.ts';
import { errors, json, JobIdParams } from '../openapi.ts';

const OutputFileWithContent = OutputFileInfo.extend({
  content: z.string().describe('The kept bytes, base64.'),
});

export const jobsFilesRoute = createRoute({
  method: 'get', path: '/v1/jobs/{id}/files', summary: 'The output files the job left (its outputFiles), with their bytes', tags: ['jobs'],
  request: { params: JobIdParams },
  responses: {
    200: json(z.object({
      status: z.string().describe('The job\'s status: the files are collected when it ends, so a job not finished has none yet.'),
      items: z.array(OutputFileWithContent),
    }), 'The collected files in pattern order (an empty list before the job ended, when it asked for none or was killed first, or when outputFilesDropped)'),
    ...errors,
  },
});

/** GET /v1/jobs/{id}/files — the bytes of what the job's outputFiles collected (core/src/job-store.ts recordOutputFiles). */
export function registerJobsFiles(app: OpenAPIHono<AppEnv>, deps: AppDeps): void {
  app.openapi(jobsFilesRoute, async (c) => {
    const { id } = c.req.valid('param');
    const job = await loadJobForTenant(deps, id, c.get('tenant'));
    return c.json({ status: job.doc.status, items: await deps.store.outputFiles(id) }, 200);
  });
}
