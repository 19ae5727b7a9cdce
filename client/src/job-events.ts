/**
 * `events(id)`: a job's Server-Sent Events as an async iterator that survives dropped connections.
 * After a break it reconnects with `Last-Event-ID` = the id of the last event it yielded, so the
 * server sends exactly the events after it: none lost (the stream is a Redis Stream kept with the
 * job) and none twice (the parser yields an event only when it is complete). It ends after `exit`.
 * Events not in the job's record (`queue`: its place in the queue; they carry the id of the event
 * before them) are live only and may come again after a reconnection.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { apiErrorFromAnswer, connectionError, SbxApiError, SbxConnectionError } from './errors.ts';
import { readBody, type RawAnswer, type Transport } from './http.ts';
import { parseServerSentEvents, type ServerSentEvent } from './sse.ts';
import type { Job, JobEvent, JobStatus } from './types.ts';

export interface EventsOptions {
  /** Start after this event id (a previous event's `id`); default: from the first event. */
  lastEventId?: string;
  /**
   * `false`: only the events recorded so far, then the iteration ends (before `exit` while the job
   * runs), as `docker logs` without `-f`. Default true: to the job's end.
   */
  follow?: boolean;
  signal?: AbortSignal;
  /** Reconnections in a row without receiving an event before giving up (default 8). */
  maxReconnects?: number;
  /** Called before each reconnection (to log it). */
  onReconnect?: (info: { attempt: number; lastEventId: string | null; error: unknown }) => void;
}

const BACKOFF_MS = [0, 100, 250, 500, 1000, 2000];

/**
 * An event stream already open: the answer of `POST /v1/jobs?stream=true` (SbxClient.follow), read
 * first instead of a GET; `abort` closes it.
 */
export interface OpenedStream {
  answer: RawAnswer;
  abort: AbortController;
}

/** The job's events as typed objects (see rawJobEvents for the resumption). */
export async function* jobEvents(http: Transport, id: string, opts: EventsOptions = {}, opened?: OpenedStream): AsyncGenerator<JobEvent> {
  for await (const raw of rawJobEvents(http, id, opts, opened)) yield toJobEvent(raw.event, raw.id, raw.data);
}

/**
 * The job's Server-Sent Events as sent (name, id, data text), across reconnections, ending after
 * `exit`. `opened`: a stream of the job already open, read before any GET (a break in it resumes
 * with GET and Last-Event-ID as usual).
 */
export async function* rawJobEvents(http: Transport, id: string, opts: EventsOptions = {}, opened?: OpenedStream): AsyncGenerator<ServerSentEvent> {
  let lastEventId = opts.lastEventId ?? null;
  let failures = 0;
  let first = opened;
  try {
    for (;;) {
      opts.signal?.throwIfAborted();
      let error: unknown = null;
      const ctl = first?.abort ?? new AbortController();
      const onAbort = () => ctl.abort(opts.signal?.reason);
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      try {
        const pending = first;
        first = undefined;
        const res = pending?.answer ?? (await http.send({
          method: 'GET',
          path: `/v1/jobs/${encodeURIComponent(id)}/events`,
          ...(opts.follow === false ? { query: { follow: 'false' } } : {}),
          headers: { accept: 'text/event-stream', ...(lastEventId ? { 'last-event-id': lastEventId } : {}) },
          signal: ctl.signal,
        }));
        if (res.status !== 200) {
          const e = apiErrorFromAnswer(res.status, await readBody(res.body), res.headers);
          if (res.status < 500 && res.status !== 429) throw e; // the client's fault: retrying will not help
          error = e;
        } else {
          for await (const raw of parseServerSentEvents(res.body)) {
            if (raw.event === 'error') {
              error = new SbxApiError({ code: 'internal', message: 'the event stream failed on the server', status: 200 });
              break;
            }
            if (raw.id !== null) lastEventId = raw.id; // events without an id are not in the record: nothing to resume after
            failures = 0;
            yield raw;
            if (raw.event === 'exit' && raw.id !== null) return;
          }
          if (error === null && opts.follow === false) return; // all there was
          error ??= new SbxConnectionError({ code: 'connection_closed', message: 'the event stream ended before the job did', status: 0 });
        }
      } catch (e) {
        if (opts.signal?.aborted) throw opts.signal.reason ?? e;
        if (e instanceof SbxApiError && !(e instanceof SbxConnectionError)) throw e;
        error = e instanceof SbxApiError ? e : connectionError(http.baseUrl, e);
      } finally {
        opts.signal?.removeEventListener('abort', onAbort);
        ctl.abort(); // closes the body when the consumer stopped early or the stream broke
      }
      failures++;
      if (failures > (opts.maxReconnects ?? 8)) throw error;
      opts.onReconnect?.({ attempt: failures, lastEventId, error });
      const retryAfterMs = error instanceof SbxApiError && error.retryAfter !== null ? error.retryAfter * 1000 : 0;
      const backoff = Math.max(retryAfterMs, BACKOFF_MS[Math.min(failures - 1, BACKOFF_MS.length - 1)]!);
      await delay(backoff, undefined, opts.signal ? { signal: opts.signal } : {}).catch((e: unknown) => {
        throw opts.signal?.reason ?? e; // the caller's own reason, as everywhere else here
      });
    }
  } finally {
    first?.abort.abort(); // an opened stream never read (stopped or aborted before the first attempt): closed
  }
}

function toJobEvent(event: string, id: string | null, data: string): JobEvent {
  const parsed = parseJson(data);
  if (event === 'queue') {
    // Not in the record: its id (the event before it, or none from an older API) is not its own.
    const q = parsed as { position: number | null; etaMs?: number | null };
    return { type: 'queue', id: null, position: q.position, etaMs: q.etaMs ?? null };
  }
  if (id === null) return { type: 'unknown', id, event, data: parsed };
  switch (event) {
    case 'status': {
      const d = parsed as { status: JobStatus; queuePosition?: number | null };
      return { type: 'status', id, status: d.status, ...(d.queuePosition !== undefined ? { queuePosition: d.queuePosition } : {}) };
    }
    case 'stdout':
    case 'stderr':
      return { type: event, id, data: (parsed as { data: string }).data };
    case 'exit':
      return { type: 'exit', id, job: parsed as Job };
    default:
      return { type: 'unknown', id, event, data: parsed };
  }
}

function parseJson(data: string): unknown {
  try {
    return JSON.parse(data);
  } catch {
    return data;
  }
}
