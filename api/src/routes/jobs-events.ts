import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { InvalidRequestError } from '../../../core/src/errors.ts';
import type { AppDeps, AppEnv } from '../deps.ts';
import { streamJobEvents } from '../job-event-stream.ts';
import { Doorbell } from '../job-events-hub.ts';
import { loadJobForTenant } from '../job-access.ts';
import { isJobId } from '../../../core/src/job-id.ts';
import type { StoredJob } from '../../../core/src/job-store.ts';
import { errors, JobIdParams, streamsUsedUp } from '../openapi.ts';
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

/** GET /v1/jobs/{id}/events — the job's Server-Sent Events (api/src/job-event-stream.ts), resumable. */
export const jobsEventsRoute = createRoute({
  method: 'get', path: '/v1/jobs/{id}/events', tags: ['jobs'],
  summary: 'Live output as Server-Sent Events (status, stdout, stderr, exit; while queued also queue {position, etaMs}, carrying the id of the event before it); resume with Last-Event-ID',
  request: {
    params: JobIdParams,
    headers: z.object({
      'last-event-id': z.string().optional().openapi({ description: 'Resume after this event id: what a reconnecting EventSource sends (?lastEventId= does the same)' }),
    }),
    query: z.object({
      lastEventId: z.string().optional().openapi({ description: 'Resume after this event id (as the Last-Event-ID header does)' }),
      follow: z.enum(['true', 'false']).default('true').openapi({ description: '`false`: only the events recorded so far, then the stream ends (without `exit` while the job runs), as `docker logs` without `-f`' }),
    }),
  },
  responses: {
    200: { description: 'text/event-stream', content: { 'text/event-stream': { schema: z.string() } } },
    ...errors,
    429: streamsUsedUp,
  },
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
    let release: () => void;
    try {
      job = await loadJobForTenant(deps, requested, c.get('tenant'));
      if (!isResumableEventId(resumeFrom)) {
        throw new InvalidRequestError('lastEventId must be an event id previously received, like 1732280000000-0', [{ path: 'lastEventId', message: 'is not an event id' }]);
      }
      release = deps.streams.take(c.get('tenant'), c.get('quota')); // 429 past the tenant's quota
    } catch (e) {
      void watching?.then((unwatch) => unwatch(), () => {});
      throw e;
    }
    // A job was found: its id is a job id, so there is a subscription.
    const unwatch = await watching!.catch((e: unknown) => {
      release();
      throw e;
    });
    return streamJobEvents(c, deps, job.doc, resumeFrom, bell, () => {
      unwatch();
      release();
    }, c.req.valid('query').follow === 'true');
  });
}
