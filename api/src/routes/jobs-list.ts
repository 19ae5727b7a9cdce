import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { JobDocument, JobStatus } from '../../../core/src/job-spec.ts';
import type { AppDeps, AppEnv } from '../deps.ts';
import { errors, json } from '../openapi.ts';
import { withQueuePositions } from '../queue-position.ts';

const Query = z.strictObject({
  status: JobStatus.optional(),
  limit: z.coerce.number().int().min(1, 'must be >= 1').max(500, 'must be <= 500').default(50),
  cursor: z
    .string()
    .regex(/^\d+:j_[0-9A-Z]{26}$/, 'must be a nextCursor value from a previous page')
    .optional(),
});

const MAX_SCANNED = 5000;

export const jobsListRoute = createRoute({
  method: 'get', path: '/v1/jobs', summary: "The tenant's jobs, newest first", tags: ['jobs'],
  request: { query: Query },
  responses: { 200: json(z.object({ items: z.array(JobDocument), nextCursor: z.string().nullable() }), 'A page of jobs'), ...errors },
});

/** GET /v1/jobs?status=&limit=&cursor= — the tenant's jobs, newest first. */
export function registerJobsList(app: OpenAPIHono<AppEnv>, deps: AppDeps): void {
  app.openapi(jobsListRoute, async (c) => {
    const q = c.req.valid('query');
    const { status, limit } = q;
    const tenant = c.get('tenant');
    let cursor = q.cursor ? { score: Number(q.cursor.split(':')[0]), id: q.cursor.split(':')[1]! } : null;
    const items: JobDocument[] = [];
    let scanned = 0;
    let exhausted = false;
    while (items.length < limit && scanned < MAX_SCANNED) {
      const page = await deps.store.listIds(tenant, limit, cursor);
      if (page.length === 0) {
        exhausted = true;
        break;
      }
      const docs = await Promise.all(page.map((p) => deps.store.getDoc(p.id)));
      const gone: string[] = [];
      for (let i = 0; i < page.length && items.length < limit; i++) {
        const doc = docs[i];
        cursor = page[i]!;
        scanned++;
        if (!doc) gone.push(page[i]!.id);
        else if (!status || doc.status === status) items.push(doc);
      }
      await deps.store.forgetFromIndex(tenant, gone);
    }
    // A full page (or a scan cut short by the filter) may have more behind it; the last page may be empty.
    const more = !exhausted && cursor !== null && (items.length === limit || scanned >= MAX_SCANNED);
    const nextCursor = more && cursor ? `${cursor.score}:${cursor.id}` : null;
    return c.json({ items: await withQueuePositions(deps, items), nextCursor }, 200);
  });
}
