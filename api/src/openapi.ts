/**
 * The OpenAPI 3.1 description of ../shared/design/api.md, generated from the same zod schemas the
 * handlers validate with, and a small human-readable page at /docs built from it (no CDN assets).
 */
import { OpenAPIHono, z } from '@hono/zod-openapi';
import { JobDocument, JobRequest, JobStatus } from '../../core/src/job-spec.ts';
import type { AppEnv } from './deps.ts';

const ErrorBody = z.object({
  error: z.object({ code: z.string(), message: z.string(), details: z.array(z.object({ path: z.string(), message: z.string() })) }),
});

const json = (schema: z.ZodType, description: string) => ({ description, content: { 'application/json': { schema } } });
const errors = {
  400: json(ErrorBody, 'Malformed JSON or invalid fields'),
  401: json(ErrorBody, 'Missing or wrong API key'),
  404: json(ErrorBody, 'No such job for this tenant'),
  503: json(ErrorBody, 'Redis unreachable'),
};
const forbidden = json(ErrorBody, 'forbidden: needs an admin API key');
const jobId = z.object({ id: z.string().openapi({ example: 'j_01JD3ZC7V8Q7R3S6D3XW0Q3Y2K' }) });

export function registerOpenApi(app: OpenAPIHono<AppEnv>): void {
  const r = app.openAPIRegistry;
  r.register('JobRequest', JobRequest);
  r.register('JobDocument', JobDocument);
  r.register('Error', ErrorBody);
  r.registerComponent('securitySchemes', 'bearer', { type: 'http', scheme: 'bearer' });

  r.registerPath({
    method: 'post', path: '/v1/jobs', summary: 'Submit a job', tags: ['jobs'],
    request: { query: z.object({ wait: z.enum(['true', 'false']).optional() }), body: { required: true, content: { 'application/json': { schema: JobRequest } } } },
    responses: {
      200: json(JobDocument, 'With ?wait=true: the finished job, including output'),
      202: json(JobDocument, 'Accepted (Location: /v1/jobs/{id}); with ?wait=true the job as it stands when the wait cap passed'),
      ...errors, 413: json(ErrorBody, 'Body too large'), 415: json(ErrorBody, 'Not application/json'),
      429: json(ErrorBody, 'rate_limited: the tenant\'s jobs-at-once or submissions-per-second quota is used up; Retry-After says when to retry'),
    },
  });
  r.registerPath({
    method: 'get', path: '/v1/jobs', summary: "The tenant's jobs, newest first", tags: ['jobs'],
    request: { query: z.object({ status: JobStatus.optional(), limit: z.string().optional(), cursor: z.string().optional() }) },
    responses: { 200: json(z.object({ items: z.array(JobDocument), nextCursor: z.string().nullable() }), 'A page of jobs'), ...errors },
  });
  r.registerPath({
    method: 'get', path: '/v1/jobs/{id}', summary: 'The job document', tags: ['jobs'],
    request: { params: jobId, query: z.object({ output: z.enum(['true', 'false']).optional() }) },
    responses: { 200: json(JobDocument, 'The job (with output when ?output=true)'), ...errors },
  });
  r.registerPath({
    method: 'get', path: '/v1/jobs/{id}/events', summary: 'Live output as Server-Sent Events (status, stdout, stderr, exit; while queued also queue {position}, without id); resume with Last-Event-ID', tags: ['jobs'],
    request: { params: jobId, query: z.object({ lastEventId: z.string().optional() }) },
    responses: { 200: { description: 'text/event-stream', content: { 'text/event-stream': { schema: z.string() } } }, ...errors },
  });
  r.registerPath({
    method: 'delete', path: '/v1/jobs/{id}', summary: 'Cancel a queued or running job', tags: ['jobs'],
    request: { params: jobId },
    responses: { 202: json(JobDocument, 'Cancellation accepted'), 409: json(ErrorBody, 'already_finished'), ...errors },
  });
  r.registerPath({ method: 'get', path: '/v1/images', summary: 'Images cached on the workers (a tenant key: only those its own jobs used)', tags: ['images'], responses: { 200: { description: 'Cached images' } } });
  r.registerPath({ method: 'post', path: '/v1/images', summary: 'Pre-pull an image on every live worker (admin keys only)', tags: ['images'], request: { body: { content: { 'application/json': { schema: z.object({ image: z.string() }) } } } }, responses: { 202: { description: 'Pull requested' }, ...errors, 403: forbidden } });
  r.registerPath({ method: 'delete', path: '/v1/images/{digest}', summary: 'Evict an image from every worker cache (admin keys only)', tags: ['images'], request: { params: z.object({ digest: z.string() }) }, responses: { 202: { description: 'Eviction requested' }, ...errors, 403: forbidden } });
  r.registerPath({ method: 'get', path: '/v1/workers', summary: 'Live workers and the ids of the jobs they run (admin keys only)', tags: ['fleet'], responses: { 200: { description: 'Workers' }, 401: errors[401], 403: forbidden } });
  for (const [path, summary] of [['/healthz', 'Process up'], ['/readyz', 'Redis reachable'], ['/metrics', 'Prometheus metrics']] as const) {
    r.registerPath({ method: 'get', path, summary, tags: ['operations'], responses: { 200: { description: 'OK' } } });
  }

  app.doc31('/openapi.json', {
    openapi: '3.1.0',
    info: { title: 'sbx', version: '1', description: 'Run an image with a command over HTTP and stream its output.' },
    security: [{ bearer: [] }],
  });
  app.get('/docs', (c) => c.html(renderDocsPage(app.getOpenAPI31Document({ openapi: '3.1.0', info: { title: 'sbx', version: '1' } }))));
}

function renderDocsPage(document: unknown): string {
  const doc = document as { paths?: Record<string, Record<string, { summary?: string }>> };
  const esc = (s: string) => s.replace(/[&<>"]/g, (ch) => `&#${ch.charCodeAt(0)};`);
  const rows = Object.entries(doc.paths ?? {}).flatMap(([path, ops]) =>
    Object.entries(ops).map(([method, op]) => `<tr><td><code>${method.toUpperCase()}</code></td><td><code>${esc(path)}</code></td><td>${esc(op.summary ?? '')}</td></tr>`),
  );
  return `<!doctype html><meta charset="utf-8"><title>sbx API</title>
<style>body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}td{padding:.25rem .75rem;border-bottom:1px solid #ddd}</style>
<h1>sbx API v1</h1><p>Machine-readable description: <a href="/openapi.json">/openapi.json</a>. Errors always have the body
<code>{"error":{"code","message","details"}}</code>.</p><table>${rows.join('')}</table>`;
}
