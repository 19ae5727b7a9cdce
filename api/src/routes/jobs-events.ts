import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { streamSSE } from 'hono/streaming';
import { errorBody, InvalidRequestError } from '../../../core/src/errors.ts';
import { isFinished } from '../../../core/src/job-spec.ts';
import { attemptOf } from '../../../core/src/job-attempts.ts';
import { requeueEntryId } from '../../../core/src/job-queue.ts';
import type { AppDeps, AppEnv } from '../deps.ts';
import { Doorbell } from '../job-events-hub.ts';
import { checkWorkerAlive, loadJobForTenant } from '../job-access.ts';
import { isJobId } from '../../../core/src/job-id.ts';
import type { StoredJob } from '../../../core/src/job-store.ts';
import { errors, JobIdParams } from '../openapi.ts';

const KEEPALIVE_MS = 15_000;
const LIVENESS_CHECK_MS = 5_000;
/** While the job is queued, its queue position is looked at this often (one ZRANK). */
const QUEUE_POLL_MS = 500;
/** `<ms>-<seq>`, each part a decimal of at most 16 digits (checked against 2^53 - 1 below). */
const STREAM_ID = /^(\d{1,16})-(\d{1,16})$/;

/**
 * Whether `id` is a stream id to resume after: '0' (from the start) or `<ms>-<seq>` with both parts
 * <= 2^53 - 1. Stricter than Redis (each part <= 2^64 - 1, and `(` after the largest id overflows),
 * so an overflowing id is a 400 here instead of a raw Redis error, and every id we accept is one
 * JavaScript numbers represent exactly.
 */
export function isResumableEventId(id: string): boolean {
  if (id === '0') return true;
  const m = STREAM_ID.exec(id);
  return m !== null && Number(m[1]) <= Number.MAX_SAFE_INTEGER && Number(m[2]) <= Number.MAX_SAFE_INTEGER;
}

/**
 * GET /v1/jobs/{id}/events — Server-Sent Events read from the job's Redis Stream. Every event's
 * `id:` is its stream id, so `Last-Event-ID` / `?lastEventId=` resumes exactly after it; a
 * finished job replays its record and closes. While the job is queued, a `queue` event (data
 * {position}, 1 = next; no `id:`, it is not in the stream) is sent at once and whenever the position
 * changes, and {position: null} once when it leaves the queue; a job queued again after its worker
 * was lost (status queued, attempts n) is queued again here too, under its attempt's queue entry.
 */
export const jobsEventsRoute = createRoute({
  method: 'get', path: '/v1/jobs/{id}/events', tags: ['jobs'],
  summary: 'Live output as Server-Sent Events (status, stdout, stderr, exit; while queued also queue {position}, without id); resume with Last-Event-ID',
  request: { params: JobIdParams, query: z.object({ lastEventId: z.string().optional().openapi({ description: 'Resume after this event id (as the Last-Event-ID header does)' }) }) },
  responses: { 200: { description: 'text/event-stream', content: { 'text/event-stream': { schema: z.string() } } }, ...errors },
});

export function registerJobsEvents(app: OpenAPIHono<AppEnv>, deps: AppDeps): void {
  app.openapi(jobsEventsRoute, async (c) => {
    const requested = c.req.valid('param').id;
    const bell = new Doorbell();
    // The subscription goes out beside the read (one round trip less before the first event); it
    // is dropped again if the job is not this tenant's or the request is refused.
    const watching = isJobId(requested) ? deps.hub.watch(deps.keys.jobNotify(requested), bell.ring) : null;
    watching?.catch(() => {}); // awaited below, or dropped with the refusal
    const resumeFrom = c.req.header('last-event-id') ?? c.req.query('lastEventId') ?? '0';
    let job: StoredJob;
    try {
      job = await loadJobForTenant(deps, requested, c.get('tenant'));
      if (!isResumableEventId(resumeFrom)) {
        throw new InvalidRequestError('lastEventId must be an event id previously received, like 1732280000000-0', [{ path: 'lastEventId', message: 'is not an event id' }]);
      }
    } catch (e) {
      void watching?.then((unwatch) => unwatch(), () => {});
      throw e;
    }
    const unwatch = await watching!; // a job was found: its id is a job id
    const id = job.doc.id;
    deps.metrics.sseClients.inc();
    c.header('Cache-Control', 'no-cache, no-transform');
    c.header('X-Accel-Buffering', 'no');
    return streamSSE(
      c,
      async (stream) => {
        const abort = new AbortController();
        stream.onAbort(() => abort.abort());
        try {
          let after = resumeFrom;
          let lastWrite = Date.now();
          let lastLiveness = Date.now();
          // The job had ended before a read that found nothing after `after`: its exit event is at
          // or before the resume point, so nothing more will come (a resume after the last event).
          let ended = isFinished(job.doc.status);
          let queued = job.doc.status === 'queued';
          let attempt = attemptOf(job.doc); // its queue entry: requeueEntryId(id, attempt)
          let position: number | null = null;
          let lastQueueCheck = 0;
          const sendPosition = async (next: number | null) => {
            if (next === position) return;
            position = next;
            await stream.writeSSE({ event: 'queue', data: JSON.stringify({ position }) });
            lastWrite = Date.now();
          };
          while (!abort.signal.aborted) {
            const events = await deps.store.readEvents(id, after);
            for (const e of events) {
              await stream.writeSSE({ event: e.type, id: e.id, data: e.data });
              after = e.id;
              lastWrite = Date.now();
              if (e.type === 'exit') return;
              if (e.type !== 'status') continue;
              const s = JSON.parse(e.data) as { status?: string; attempts?: number };
              if (s.status === 'queued') {
                // Queued (again, after a lost worker: core/src/job-lifecycle.ts): look at once.
                [queued, attempt, lastQueueCheck] = [true, s.attempts ?? 1, 0];
              } else if (queued) {
                queued = false;
                await sendPosition(null);
              }
            }
            if (events.length > 0) continue;
            if (ended) return;
            if (queued && Date.now() - lastQueueCheck >= QUEUE_POLL_MS) {
              lastQueueCheck = Date.now();
              await sendPosition(await deps.queue.position(requeueEntryId(id, attempt)));
            }
            if (Date.now() - lastLiveness > LIVENESS_CHECK_MS) {
              lastLiveness = Date.now();
              const doc = await deps.store.getDoc(id);
              if (!doc) return; // expired under us
              if (isFinished(doc.status)) {
                ended = true;
                continue; // read once more: the exit event may have come after the last read
              }
              await checkWorkerAlive(deps, doc); // appends an exit event if its worker is gone
            }
            const idle = KEEPALIVE_MS - (Date.now() - lastWrite);
            if (idle <= 0) {
              await stream.write(': keep-alive\n\n');
              lastWrite = Date.now();
              continue;
            }
            await bell.wait(Math.min(idle, LIVENESS_CHECK_MS, queued ? QUEUE_POLL_MS : Infinity), abort.signal);
          }
        } finally {
          unwatch();
          deps.metrics.sseClients.dec();
        }
      },
      async (err, stream) => {
        deps.logger.warn({ err, jobId: id }, 'SSE stream failed');
        await stream.writeSSE({ event: 'error', data: JSON.stringify(errorBody('internal', 'the event stream failed; reconnect with Last-Event-ID')) });
      },
    );
  });
}
