/**
 * A job's events as Server-Sent Events, read from its Redis Stream: every event's `id:` is its
 * stream id, so `Last-Event-ID` / `?lastEventId=` resumes exactly after it; a finished job replays
 * its record and the stream closes after `exit`. While the job is queued, a `queue` event (data
 * {position, etaMs}, 1 = next; etaMs the estimated wait from how fast the position has moved, null
 * until it has (queue-eta.ts)) is sent at once and whenever the
 * position changes, and {position: null, etaMs: null} once when it leaves the queue; a job queued
 * again after its worker was lost (status queued, attempts n) is queued again here too, under its
 * attempt's queue entry. A `queue` event, and the `error` event of a stream that failed, are not in
 * the stream; each carries the id of the last event sent before it (api.md: every event carries an
 * id), so a reconnection resumes after that event and gets the current position again.
 * Served by GET /v1/jobs/{id}/events and by POST /v1/jobs?stream=true (submit and follow at once).
 */
import type { ServerResponse } from 'node:http';
import type { Context } from 'hono';
import { streamSSE } from 'hono/streaming';
import { errorBody } from '../../core/src/errors.ts';
import { attemptOf } from '../../core/src/job-attempts.ts';
import { requeueEntryId } from '../../core/src/job-queue.ts';
import { isFinished, type JobDocument } from '../../core/src/job-spec.ts';
import { eventsPerPage } from '../../core/src/job-store.ts';
import type { AppDeps, AppEnv } from './deps.ts';
import { checkWorkerAlive } from './job-access.ts';
import type { Doorbell } from './job-events-hub.ts';
import { QueueEta } from './queue-eta.ts';

/**
 * A quiet stream's `: keep-alive` comment. api.md promises one at least every 15 s: sent only once
 * 15 s had passed, it came 15 s and a loop's latency (more on a busy machine) after the last write,
 * past a client's 15 s idle timeout; sent at 10 s, the loop has 5 s to spare.
 */
const KEEPALIVE_MS = 10_000;
const LIVENESS_CHECK_MS = 5_000;
/** While the job is queued, its queue position is looked at this often (one ZRANK). */
const QUEUE_POLL_MS = 500;

/**
 * Streams the events of the job `doc` (as last read) after `resumeFrom` ('0': all). `bell` must
 * already ring on the job's pings (subscribed before `doc` was read, so none is missed);
 * `unwatch` ends that subscription when the stream ends. `follow: false`: only the events there
 * are now, then the stream ends (for a job still running, without `exit`).
 */
export function streamJobEvents(c: Context<AppEnv>, deps: AppDeps, doc: JobDocument, resumeFrom: string, bell: Doorbell, unwatch: () => void, follow = true): Response | Promise<Response> {
  const id = doc.id;
  const channel = deps.keys.jobNotify(id);
  deps.metrics.sseClients.inc();
  c.header('Cache-Control', 'no-cache, no-transform');
  c.header('X-Accel-Buffering', 'no');
  // The id of the last event sent (or the resume point): what the events not in the stream carry.
  let after = resumeFrom;
  return streamSSE(
    c,
    async (stream) => {
      const abort = new AbortController();
      stream.onAbort(() => abort.abort());
      // The response's connection closing ends the stream. @hono/node-server only notices a close
      // while it pipes the stream, from its first read on: a connection reset before that, or a HEAD
      // (whose body is dropped unread), left this loop blocked on its first write, holding the
      // tenant's stream place and its subscription for good. Aborting the stream releases that write.
      const outgoing = (c.env as { outgoing?: ServerResponse } | undefined)?.outgoing;
      const closed = () => stream.abort();
      if (outgoing?.closed || outgoing?.destroyed) stream.abort();
      else outgoing?.once('close', closed);
      // This process stopping ends the stream; the client resumes on another with Last-Event-ID.
      if (deps.shutdown?.aborted) abort.abort();
      else deps.shutdown?.addEventListener('abort', closed, { once: true });
      try {
        // Events per read, sized to hold about EVENT_PAGE.bytes (a reader that is not read holds one page).
        let pageEvents = eventsPerPage([]);
        let lastWrite = Date.now();
        let lastLiveness = Date.now();
        // The job had ended before a read that found nothing after `after`: its exit event is at
        // or before the resume point, so nothing more will come (a resume after the last event).
        let ended = isFinished(doc.status);
        let queued = doc.status === 'queued';
        let attempt = attemptOf(doc); // its queue entry: requeueEntryId(id, attempt)
        let position: number | null = null;
        let lastQueueCheck = 0;
        const eta = new QueueEta();
        const sendPosition = async (next: number | null) => {
          if (next === position) return;
          position = next;
          const etaMs = position === null ? null : eta.estimate(position);
          await stream.writeSSE({ event: 'queue', id: after, data: JSON.stringify({ position, etaMs }) });
          lastWrite = Date.now();
        };
        while (!abort.signal.aborted) {
          const from = after;
          const events = await deps.hub.sharedRead(channel, from, () => deps.store.readEvents(id, from, pageEvents));
          if (events.length > 0) pageEvents = eventsPerPage(events);
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
          if (ended || !follow) return;
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
        outgoing?.off('close', closed);
        deps.shutdown?.removeEventListener('abort', closed);
        unwatch();
        deps.metrics.sseClients.dec();
      }
    },
    async (err, stream) => {
      deps.logger.warn({ err, jobId: id }, 'SSE stream failed');
      await stream.writeSSE({ event: 'error', id: after, data: JSON.stringify(errorBody('internal', 'the event stream failed; reconnect with Last-Event-ID')) });
    },
  );
}
