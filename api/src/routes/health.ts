import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { DependencyUnavailableError } from '../../../core/src/errors.ts';
import type { AppDeps, AppEnv } from '../deps.ts';
import { auth, requireAdmin } from '../middleware/auth.ts';
import { errors, forbidden, json } from '../openapi.ts';

export const healthzRoute = createRoute({
  method: 'get', path: '/healthz', summary: 'Process up', tags: ['operations'], security: [],
  responses: { 200: json(z.object({ status: z.literal('ok') }), 'OK') },
});
export const readyzRoute = createRoute({
  method: 'get', path: '/readyz', summary: 'Redis reachable', tags: ['operations'], security: [],
  responses: { 200: json(z.object({ status: z.literal('ready') }), 'Ready'), 503: errors[503] },
});
export const metricsRoute = createRoute({
  method: 'get', path: '/metrics', summary: 'Prometheus metrics (admin keys only)', tags: ['operations'],
  responses: { 200: { description: 'Prometheus text exposition format', content: { 'text/plain': { schema: z.string() } } }, 401: errors[401], 403: forbidden },
});

/** GET /healthz (process up), /readyz (Redis answers), /metrics (Prometheus text, admin keys only). */
export function registerHealth(app: OpenAPIHono<AppEnv>, deps: AppDeps): void {
  app.openapi(healthzRoute, (c) => c.json({ status: 'ok' as const }, 200));
  app.openapi(readyzRoute, async (c) => {
    try {
      await withTimeout(deps.redis.ping(), 1000);
    } catch (e) {
      throw new DependencyUnavailableError('Redis is unreachable; the API cannot accept jobs', e);
    }
    if (deps.redisChecked && !deps.redisChecked()) throw new DependencyUnavailableError('Redis\'s maxmemory-policy is not checked yet; the API cannot accept jobs');
    return c.json({ status: 'ready' as const }, 200);
  });
  // Fleet-wide figures: admin keys only (open in anonymous mode); /healthz and /readyz stay open.
  app.openapi({ ...metricsRoute, middleware: [auth(deps.config.env.SBX_API_KEYS, deps.config.quotas), requireAdmin('GET /metrics')] }, async (c) =>
    c.text(await deps.registry.metrics(), 200, { 'Content-Type': deps.registry.contentType }));
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms).unref())]);
}
