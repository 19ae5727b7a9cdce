import type { Hono } from 'hono';
import type { AppDeps, AppEnv } from '../deps.ts';
import { loadJobForTenant } from '../job-access.ts';

/** GET /v1/jobs/{id}[?output=true] — the job document, with its output when asked. */
export function registerJobsGet(app: Hono<AppEnv>, deps: AppDeps): void {
  app.get('/v1/jobs/:id', async (c) => {
    const job = await loadJobForTenant(deps, c.req.param('id'), c.get('tenant'));
    if (c.req.query('output') === 'true') return c.json({ ...job.doc, output: await deps.store.readOutput(job.doc.id) });
    return c.json(job.doc);
  });
}
