import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { OutputFileInfo } from '../../../core/src/job-spec.ts';
import type { AppDeps, AppEnv } from '../deps.ts';
import { loadJobForTenant } from '../job-access.ts';
import { errors, json, JobIdParams } from '../openapi.ts';
import { holdPagesOfAnswer } from '../middleware/open-requests.ts';
import { JSON_CONTENT_TYPE } from '../http-server.ts';

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

const MiB = 1024 * 1024;

/**
 * GET /v1/jobs/{id}/files — the bytes of what the job's outputFiles collected (core/src/job-store.ts
 * recordOutputFiles), answered as stored (not parsed and written again). The answer is whole (a hash
 * field is read whole), up to limits.outputBytes of file bytes in base64: each MiB of it counts as
 * one of its tenant's `requests` places (P50, TenantPlaces.takePages), checked before it is read.
 * Before, it took one place like any answer: 60 clients asking for a job's 16 MiB of files and not
 * reading grew the API by 844 MiB.
 */
export function registerJobsFiles(app: OpenAPIHono<AppEnv>, deps: AppDeps): void {
  app.openapi(jobsFilesRoute, async (c) => {
    const { id } = c.req.valid('param');
    const job = await loadJobForTenant(deps, id, c.get('tenant'));
    holdPagesOfAnswer(c, deps.requests, Math.ceil((await deps.store.outputFilesChars(id)) / MiB));
    const items = (await deps.store.outputFilesJson(id)) ?? '[]';
    return c.body(`{"status":${JSON.stringify(job.doc.status)},"items":${items}}`, 200, { 'content-type': JSON_CONTENT_TYPE }) as never; // the stored JSON as it is: a plain Response to Hono's types
  });
}
