import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { Rfc3339 } from '../../../core/src/job-spec.ts';
import type { AppDeps, AppEnv } from '../deps.ts';
import { requireAdmin } from '../middleware/auth.ts';
import { errors, forbidden, json } from '../openapi.ts';

const Worker = z.object({
  id: z.string(), host: z.string(), pid: z.number().int(), slots: z.object({ total: z.number().int(), free: z.number().int() }),
  runningJobs: z.array(z.string()), cachedBytes: z.number(), lastHeartbeat: Rfc3339(), startedAt: Rfc3339(),
});

export const workersListRoute = createRoute({
  method: 'get', path: '/v1/workers', summary: 'Live workers and the ids of the jobs they run (admin keys only)', tags: ['fleet'],
  middleware: [requireAdmin('GET /v1/workers')] as const,
  responses: { 200: json(z.object({ items: z.array(Worker) }), 'Workers'), 401: errors[401], 403: forbidden, 429: errors[429], 503: errors[503] },
});

/** GET /v1/workers — live workers, their capacity and the ids of the jobs they run: admin keys only. */
export function registerWorkersList(app: OpenAPIHono<AppEnv>, deps: AppDeps): void {
  app.openapi(workersListRoute, async (c) => {
    const workers = await deps.workers.listShared();
    return c.json({
      items: workers.map((w) => ({
        id: w.id, host: w.host, pid: w.pid, slots: { total: w.slotsTotal, free: w.slotsFree }, runningJobs: w.runningJobs,
        cachedBytes: w.cachedBytes, lastHeartbeat: w.lastHeartbeat, startedAt: w.startedAt,
      })),
    }, 200);
  });
}
