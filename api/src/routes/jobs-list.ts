import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { JobDocument, JobStatus } from '../../../core/src/job-spec.ts';
import type { AppDeps, AppEnv } from '../deps.ts';
import { errorsNamingNoJob, json } from '../openapi.ts';
import { withQueuePositions } from '../queue-position.ts';

const Query = z.strictObject({
  status: JobStatus.optional(),
  limit: z.coerce.number().int().min(1, 'must be >= 1').max(500, 'must be <= 500').default(50),
  cursor: z
    .string()
    .regex(/^\d+:j_[0-9A-Z]{26}$/, 'must be a nextCursor value from a previous page')
    .optional(),
});

/** Records one page reads at most, matching its status filter or not (then it answers with a nextCursor). */
const MAX_SCANNED = 1000;
/**
 * A page's documents add up to about this many characters at most (at least one document is
 * listed): a job's command may be up to the body limit, so 500 of them could make one answer of
 * hundreds of MiB (P48). A page cut short has a nextCursor like any other.
 */
const PAGE_CHARS = 1024 * 1024;
/** Documents read per round trip at first; then as many as the page's room holds at their average size. */
const FIRST_DOC_BATCH = 8;
/**
 * Records whose status a filtered page reads per round trip; only the documents of those whose status
 * matches are read. Before, a filter read every document it passed over: with commands near the body
 * limit, one `GET /v1/jobs?status=failed` answering `{"items":[]}` read up to MAX_SCANNED documents of
 * ~1 MiB each from Redis and parsed them in the API (60 such jobs: 53.8 MB read, 235 ms of the API's CPU).
 */
const STATUS_BATCH = 128;

type ListedId = { id: string; score: number };

/**
 * From `slice[from]` on: the next records in order up to and including the `reads`-th one whose
 * document is to be read (`read`: no filter, its status matches, or it is gone: its HGET found no
 * status), with those the filter passes over between them (not read).
 */
function nextRun(slice: readonly ListedId[], statuses: ReadonlyArray<string | null> | null, status: string | undefined, from: number, reads: number): Array<ListedId & { read: boolean }> {
  const run: Array<ListedId & { read: boolean }> = [];
  for (let i = from, n = 0; i < slice.length && n < reads; i++) {
    const s = statuses?.[i];
    const read = !statuses || s === status || s === null;
    run.push({ ...slice[i]!, read });
    if (read) n++;
  }
  return run;
}

export const jobsListRoute = createRoute({
  method: 'get', path: '/v1/jobs', summary: "The tenant's jobs, newest first", tags: ['jobs'],
  request: { query: Query },
  responses: { 200: json(z.object({ items: z.array(JobDocument), nextCursor: z.string().nullable() }), 'A page of jobs'), ...errorsNamingNoJob },
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
    let chars = 0;
    let readDocs = 0;
    let readChars = 0;
    let exhausted = false;
    let batch = FIRST_DOC_BATCH;
    const full = () => items.length >= limit || chars >= PAGE_CHARS;
    while (!full() && scanned < MAX_SCANNED) {
      const page = await deps.store.listIds(tenant, limit, cursor);
      if (page.length === 0) {
        exhausted = true;
        break;
      }
      for (let start = 0; start < page.length && !full() && scanned < MAX_SCANNED; ) {
        const slice = page.slice(start, start + Math.min(status ? STATUS_BATCH : batch, MAX_SCANNED - scanned));
        start += slice.length;
        const statuses = status ? await deps.store.getStatuses(slice.map((p) => p.id)) : null;
        for (let next = 0; next < slice.length && !full(); ) {
          const run = nextRun(slice, statuses, status, next, Math.min(batch, limit - items.length));
          next += run.length;
          const docs = await deps.store.getDocsSized(run.filter((r) => r.read).map((r) => r.id));
          const gone: string[] = [];
          let d = 0;
          for (const r of run) {
            if (full()) break;
            cursor = r;
            scanned++;
            if (!r.read) continue;
            const found = docs[d++];
            if (!found) {
              gone.push(r.id);
              continue;
            }
            readDocs++;
            readChars += found.chars;
            if (!status || found.doc.status === status) {
              items.push(found.doc);
              chars += found.chars;
            }
          }
          await deps.store.forgetFromIndex(tenant, gone);
          // As many as the page's room holds at the size of those read so far.
          batch = Math.max(FIRST_DOC_BATCH, Math.floor((PAGE_CHARS - chars) / (readChars / Math.max(1, readDocs) || 1)));
        }
      }
    }
    // A full page (or a scan cut short by the filter) may have more behind it; the last page may be empty.
    const more = !exhausted && cursor !== null && (full() || scanned >= MAX_SCANNED);
    const nextCursor = more && cursor ? `${cursor.score}:${cursor.id}` : null;
    return c.json({ items: await withQueuePositions(deps, items), nextCursor }, 200);
  });
}
