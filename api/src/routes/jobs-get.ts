import type { Hono } from 'hono';
import type { AppDeps, AppEnv } from '../deps.ts';
import { loadJobForTenant } from '../job-access.ts';
import { withQueuePosition } from '../queue-position.ts';

/** GET /v1/jobs/{id}[?output=true] — the job document (queuePosition while queued), with its output when asked. */
export function registerJobsGet(app: Hono<AppEnv>, deps: AppDeps): void {
  app.get('/v1/jobs/:id', async (c) => {
    const job = await loadJobForTenant(deps, c.req.param('id'), c.get('tenant'));
    const doc = await withQueuePosition(deps, job.doc);
    if (c.req.query('output') === 'true') return c.json({ ...doc, output: await deps.store.readOutput(job.doc.id) });
    return c.json(doc);
  });
}
