import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { newJobId } from '../../../core/src/job-id.ts';
import { JobDocument, JobRequest, isFinished, newJobDocument } from '../../../core/src/job-spec.ts';
import type { AppDeps, AppEnv } from '../deps.ts';
import { TenantQuotas, tenantLimitsPolicy, tenantQuotaOptions } from '../../../core/src/tenant-quota.ts';
import { recordBytes } from '../../../core/src/tenant-storage-budget.ts';
import { buildJobSpec } from '../job-submission.ts';
import { checkCallbackUrl } from '../../../core/src/webhooks/callback-url.ts';
import { JobWatch } from '../job-waiter.ts';
import { jsonBody } from '../middleware/json-body.ts';
import { bodyErrors, ErrorBody, errorsNamingNoJob, flag, json, rateLimited } from '../openapi.ts';

const JOB_LOCATION = { Location: { description: 'The job: /v1/jobs/{id}', schema: { type: 'string' as const } } };
import { clientGoneSignal } from '../client-gone.ts';
import { withLinkedSignal } from '../../../client/src/linked-signal.ts';
import { InvalidRequestError } from '../../../core/src/errors.ts';
import { streamJobEvents } from '../job-event-stream.ts';
import { Doorbell } from '../job-events-hub.ts';
import { requeueLostSubmission } from '../lost-submission.ts';
import { StrandedRecords } from '../stranded-records.ts';
import { jobWithOutputResponse } from '../job-output-response.ts';
import { claimIdempotencyKey, idempotencyClaimAgeMs, releaseIdempotencyKey, settleIdempotencyKey } from '../idempotency-keys.ts';

export const jobsCreateRoute = createRoute({
  method: 'post', path: '/v1/jobs', summary: 'Submit a job', tags: ['jobs'],
  request: {
    query: z.object({
      wait: flag('`true`: answer when the job ends (at most the server\'s wait cap), with its output'),
      stream: flag('`true`: answer with the job\'s events as Server-Sent Events from its creation on, exactly as GET /v1/jobs/{id}/events sends them (Location names the job): submit and follow in one request. Not with wait'),
    }),
    body: { required: true, content: { 'application/json': { schema: JobRequest } } },
  },
  responses: {
    200: { description: 'With ?wait=true: the finished job, including output. With ?stream=true: its events (text/event-stream), as GET /v1/jobs/{id}/events', content: { 'application/json': { schema: JobDocument }, 'text/event-stream': { schema: z.string() } }, headers: JOB_LOCATION },
    202: { ...json(JobDocument, 'Accepted (Location: /v1/jobs/{id}); with ?wait=true the job as it stands when the wait cap passed'), headers: JOB_LOCATION },
    ...errorsNamingNoJob, 409: json(ErrorBody, 'already_finished: this idempotencyKey already ran a job whose record has expired (SBX_JOB_TTL_SECONDS); it is never run again'),
    ...bodyErrors,
    429: rateLimited('rate_limited: the tenant\'s jobs-at-once or submissions-per-second quota is used up, or its storage budget for the hour (`storedBytesPerHour`: job records and output), or it has used its requests per second (`requestsPerSecond`) or has its quota of requests open at once (`requests`), or with ?stream=true its open event streams (`streams`); Retry-After says when to retry. Nothing is created'),
  },
});

/** POST /v1/jobs — accept a job, queue it; with ?wait=true answer when it ends (or the cap passes). */
export function registerJobsCreate(app: OpenAPIHono<AppEnv>, deps: AppDeps): void {
  const quotas = new TenantQuotas(deps.redis, deps.keys, tenantQuotaOptions(deps.config));
  const stranded = new StrandedRecords(deps.store, quotas, deps.logger);
  app.openapi({ ...jobsCreateRoute, middleware: [jsonBody(deps.config.env.SBX_BODY_LIMIT_BYTES)] }, async (c) => {
    const req = c.req.valid('json');
    const tenant = c.get('tenant');
    const quota = c.get('quota');
    const wait = c.req.valid('query').wait === 'true';
    const follow = c.req.valid('query').stream === 'true';
    if (wait && follow) throw new InvalidRequestError('wait and stream cannot both be true: wait answers once the job ends, stream follows it as it runs', [{ path: 'stream', message: 'cannot be combined with wait=true' }]);
    const id = newJobId();
    checkCallbackUrl(req.callbackUrl, tenant, deps.config.env); // a secret for the tenant; http only to allow-listed hosts
    const spec = buildJobSpec(req, id, tenant, tenantLimitsPolicy(deps.config.limits, quota), new Date());
    if (quota?.storedBytesPerHour) spec.tenantStoredBytesPerHour = quota.storedBytesPerHour; // the worker charges it (tenant-storage-budget.ts)

    // With ?wait=true, watch for the new job's end: through this process's inbox, named as the job's
    // waiter when it is created (no SUBSCRIBE per job), else subscribed while it is created and queued.
    let watching = wait ? JobWatch.beforeCreate(deps, id) : null;
    // With ?stream=true, one of the tenant's stream places first (429 before anything is created), and
    // subscribed to the new job's pings while it is created: none is missed.
    let releaseStream = follow ? deps.streams.take(tenant, quota) : null;
    const bell = new Doorbell();
    let following = follow ? deps.hub.watch(deps.keys.jobNotify(id), bell.ring) : null;
    following?.catch(() => {}); // awaited below, or dropped in finally
    try {
      let doc: JobDocument;
      const existing = req.idempotencyKey ? await claimIdempotencyKey(deps, tenant, req.idempotencyKey, id) : null;
      // A refused submission gives its claim back (a record it may have left is found by the retry instead).
      const giveBackClaim = () => (req.idempotencyKey ? releaseIdempotencyKey(deps, tenant, req.idempotencyKey, id).catch(() => {}) : undefined);
      if (existing) {
        doc = existing;
        await requeueLostSubmission(deps, quotas, existing, quota, () => idempotencyClaimAgeMs(deps, tenant, req.idempotencyKey!));
        if (watching) {
          (await watching).close();
          watching = JobWatch.open(deps, existing.id);
        }
        if (following) {
          (await following)();
          following = deps.hub.watch(deps.keys.jobNotify(existing.id), bell.ring);
        }
      } else {
        // Quota (429 when used up), queue priority, and the image recorded as this tenant's.
        // What its record will take in Redis, counted against the tenant's storage budget (recordBytes).
        const stored = quota?.storedBytesPerHour ? recordBytes(JSON.stringify(spec)) : 0;
        const { priority } = await quotas.admit(tenant, id, quota, stored).catch(async (e: unknown) => {
          await giveBackClaim();
          throw e;
        });
        doc = newJobDocument(spec);
        try {
          // The queue entry goes out right behind the record, over the same connection (one round trip):
          // on the shared queue, or on a host's own one (placement at submission: the same connection).
          const inbox = (await watching)?.inbox ?? '';
          await deps.store.createThenQueue(spec, doc, inbox, deps.queue.connection, () => deps.placement.enqueue(id, priority, { image: spec.image, memoryBytes: spec.limits.memoryBytes }));
        } catch (e) {
          // The record may be written though its queue entry was refused: taken back, unless a worker
          // has claimed the job already (the entry went out, only its answer was lost): then it runs.
          const takeBack = await deps.store.abandon(id, tenant).then((abandoned) => (abandoned ? 'done' : 'claimed'), () => 'failed' as const);
          if (takeBack !== 'claimed') {
            // A record left behind: with an idempotencyKey the client's retry finds it (lost-submission.ts);
            // without, nothing names it, so it is taken back (and its place given back) once Redis answers.
            if (takeBack === 'failed' && !req.idempotencyKey) stranded.add(id, tenant);
            else await quotas.release(tenant, id).catch(() => { if (takeBack === 'done') stranded.add(id, tenant); });
            if (takeBack === 'done') await giveBackClaim();
            throw e;
          }
          deps.logger.warn({ jobId: id, err: (e as Error).message }, 'queueing a job failed, but a worker had claimed it already: accepted');
        }
        // Not awaited (no round trip more on the answer's path); unmarked, a later look marks it.
        if (req.idempotencyKey) void settleIdempotencyKey(deps, tenant, req.idempotencyKey, id).catch(() => {});
        deps.metrics.jobsSubmitted.inc({ tenant: deps.metrics.tenants.of(tenant) });
      }

      c.header('Location', `/v1/jobs/${doc.id}`);
      if (following) {
        const unwatch = await following;
        const release = releaseStream!;
        following = releaseStream = null; // the stream ends the subscription and gives its place back
        return streamJobEvents(c, deps, doc, '0', bell, () => {
          unwatch();
          release();
        });
      }
      if (watching && !isFinished(doc.status)) {
        // After the exit ping, document and output come in one round trip.
        // Until the end, the wait cap, the client going, or this process stopping (then 202 with the job as it stands).
        // Not AbortSignal.any(): deps.shutdown lives as long as the process and would keep a WeakRef
        // per waited submit for good on Node 20 (client/src/linked-signal.ts).
        const watched = await watching;
        doc = (await withLinkedSignal([clientGoneSignal(c), deps.shutdown], (until) => watched.untilFinished(deps.config.env.SBX_WAIT_CAP_MS, until, true))) ?? doc;
      }
      if (wait && isFinished(doc.status)) return jobWithOutputResponse(c, deps, doc);
      return c.json(doc, 202);
    } finally {
      if (watching) void watching.then((w) => w.close(), () => {});
      if (following) void following.then((unwatch) => unwatch(), () => {});
      releaseStream?.();
    }
  });
}
