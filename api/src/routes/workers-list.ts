import type { Hono } from 'hono';
import type { AppDeps, AppEnv } from '../deps.ts';
import { requireAdmin } from '../middleware/auth.ts';

/** GET /v1/workers — live workers, their capacity and the ids of the jobs they run: admin keys only. */
export function registerWorkersList(app: Hono<AppEnv>, deps: AppDeps): void {
  app.get('/v1/workers', requireAdmin('GET /v1/workers'), async (c) => {
    const workers = await deps.workers.list();
    return c.json({
      items: workers.map((w) => ({
        id: w.id, host: w.host, pid: w.pid, slots: { total: w.slotsTotal, free: w.slotsFree }, runningJobs: w.runningJobs,
        cachedBytes: w.cachedBytes, lastHeartbeat: w.lastHeartbeat, startedAt: w.startedAt,
      })),
    });
  });
}
