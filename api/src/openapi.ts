/**
 * The OpenAPI 3.1 description of ../shared/design/api.md. Each route describes itself where its
 * handler is (createRoute + app.openapi in routes/*.ts, with the zod schemas the handler validates
 * with); this file holds what they share (the error body, the error answers, the job id parameter),
 * serves the document at /openapi.json and a small human-readable page at /docs (no CDN assets).
 */
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { JobDocument, JobRequest } from '../../core/src/job-spec.ts';
import type { AppEnv } from './deps.ts';
import { JSON_CONTENT_TYPE } from './http-server.ts';

export const ErrorBody = z.object({
  error: z.object({ code: z.string(), message: z.string(), details: z.array(z.object({ path: z.string(), message: z.string() })) }),
});

export const json = <S extends z.ZodType>(schema: S, description: string) => ({ description, content: { 'application/json': { schema } } });

/** A 429 answer: the error body, and Retry-After (api/src/app.ts sets it on every rate_limited). */
export const rateLimited = (description: string) => ({
  ...json(ErrorBody, description),
  headers: { 'Retry-After': { description: 'Seconds until a retry may succeed', schema: { type: 'integer' as const, minimum: 1 } } },
});

export const errors = {
  400: json(ErrorBody, 'Malformed JSON or invalid fields'),
  401: json(ErrorBody, 'Missing or wrong API key'),
  404: json(ErrorBody, 'No such job for this tenant'),
  429: rateLimited('rate_limited: the tenant has used its requests per second (`requestsPerSecond`) or has its quota of requests open at once (`requests`) on this API server; Retry-After says when to retry. Nothing is done'),
  503: {
    ...json(ErrorBody, 'dependency_unavailable: Redis is unreachable or cannot serve now (loading, a Cluster resharding, full: maxmemory reached under noeviction, refusing sbx its keys); nothing was done, retry after Retry-After'),
    headers: { 'Retry-After': { description: 'Seconds until a retry may succeed', schema: { type: 'integer' as const, minimum: 1 } } },
  },
};
/** `errors` without the 404: a route that names no job (the list, a submission, the image routes) never answers it. */
export const errorsNamingNoJob = { 400: errors[400], 401: errors[401], 429: errors[429], 503: errors[503] };
export const forbidden = json(ErrorBody, 'forbidden: needs an admin API key');
/** What a route with a JSON body (middleware/json-body.ts) answers before it reads a field. */
export const bodyErrors = { 413: json(ErrorBody, 'payload_too_large: the body is over SBX_BODY_LIMIT_BYTES'), 415: json(ErrorBody, 'unsupported_media_type: not Content-Type application/json') };
/** 429 of the routes that open an event stream or attach socket (api/src/tenant-places.ts). */
export const streamsUsedUp = rateLimited('rate_limited: the tenant already holds its quota of open event streams and attach sockets (`streams`), or of requests open at once (`requests`), on this API server');

export const JobIdParams = z.object({ id: z.string().openapi({ example: 'j_01JD3ZC7V8Q7R3S6D3XW0Q3Y2K' }) });

/** A `?name=true` switch: `true` turns it on, anything else (or nothing) leaves it off. */
export const flag = (description: string) => z.string().optional().openapi({ description, example: 'true' });

const INFO = { title: 'sbx', version: '1', description: 'Run an image with a command over HTTP and stream its output.' };

export function registerOpenApi(app: OpenAPIHono<AppEnv>): void {
  const r = app.openAPIRegistry;
  r.register('JobRequest', JobRequest);
  r.register('JobDocument', JobDocument);
  r.register('Error', ErrorBody);
  r.registerComponent('securitySchemes', 'bearer', { type: 'http', scheme: 'bearer' });
  r.registerPath({ method: 'get', path: '/openapi.json', summary: 'This document (OpenAPI 3.1)', tags: ['operations'], security: [], responses: { 200: { description: 'The OpenAPI document', content: { 'application/json': { schema: z.object({}).passthrough() } } } } });
  const document = madeOnce(() => app.getOpenAPI31Document({ openapi: '3.1.0', info: INFO, security: [{ bearer: [] }] }));
  const documentText = madeOnce(() => JSON.stringify(document()));
  const docsPage = madeOnce(() => renderDocsPage(document()));
  app.get('/openapi.json', (c) => c.body(documentText(), 200, { 'content-type': JSON_CONTENT_TYPE }));
  app.openapi(
    createRoute({ method: 'get', path: '/docs', summary: 'This API as a human-readable page', tags: ['operations'], security: [], responses: { 200: { description: 'HTML', content: { 'text/html': { schema: z.string() } } } } }),
    (c) => c.html(docsPage()),
  );
}

/**
 * `make()` once, on first use (every route is registered by then: createApp registers them all
 * before serving). The document describes the routes, fixed for the process's life, and making it
 * (every route's zod schemas to JSON Schema) took ~20 ms of the API's CPU: made per request,
 * /openapi.json and /docs, answered without a key and so outside every tenant's request rate, let
 * any client that can reach the API keep it busy (50 requests a second: a CPU).
 */
function madeOnce<T>(make: () => T): () => T {
  let made: { value: T } | null = null;
  return () => (made ??= { value: make() }).value;
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
