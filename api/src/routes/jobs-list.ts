import type { Hono } from 'hono';
import { z } from 'zod';
import { JobStatus, type JobDocument } from '../../../core/src/job-spec.ts';
import type { AppDeps, AppEnv } from '../deps.ts';
import { validationError } from '../middleware/json-body.ts';
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

/** GET /v1/jobs?status=&limit=&cursor= — the tenant's jobs, newest first. */
export function registerJobsList(app: Hono<AppEnv>, deps: AppDeps): void {
  app.get('/v1/jobs', async (c) => {
    const q = Query.safeParse(c.req.query());
    if (!q.success) throw validationError(q.error);
    const { status, limit } = q.data;
    const tenant = c.get('tenant');
    let cursor = q.data.cursor ? { score: Number(q.data.cursor.split(':')[0]), id: q.data.cursor.split(':')[1]! } : null;
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
    return c.json({ items: await withQueuePositions(deps, items), nextCursor });
  });
}
