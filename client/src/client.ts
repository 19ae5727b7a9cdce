/**
 * SbxClient: the sbx HTTP API (../shared/design/api.md) as typed methods. Every method either
 * returns the answer's typed body or throws an SbxApiError subclass (errors.ts); `request()` is the
 * untyped escape hatch that returns any answer as it came.
 */
import { apiErrorFromAnswer, SbxApiError, SbxNotFoundError } from './errors.ts';
import { readBody, Transport, type TransportOptions } from './http.ts';
import { isDigest, normalizeImageName } from './image-name.ts';
import { withLinkedSignal } from './linked-signal.ts';
import { jobEvents, rawJobEvents, type EventsOptions } from './job-events.ts';
import type { ServerSentEvent } from './sse.ts';
import type { ReceiptKey } from './receipt.ts';
import { isFinished, type ApiAnswer, type CachedImage, type CancelOptions, type ImageAction, type Job, type JobEvent, type JobPage, type JobRequest, type ListOptions, type OutputFile, type OutputFileInfo, type WorkerInfo } from './types.ts';

export type ClientOptions = TransportOptions;

export interface SubmitOptions {
  /** `?wait=true`: the answer waits until the job ends (at most the server's wait cap) and carries its output. */
  wait?: boolean;
  signal?: AbortSignal;
}

export interface WaitOptions {
  /** Fetch the output with the finished document (`GET ?output=true`). */
  output?: boolean;
  signal?: AbortSignal;
  /** Give up after this long (rejects with a TimeoutError). */
  timeoutMs?: number;
}

export class SbxClient {
  private readonly http: Transport;

  constructor(opts: ClientOptions | string) {
    this.http = new Transport(typeof opts === 'string' ? { baseUrl: opts } : opts);
  }

  get baseUrl(): string {
    return this.http.baseUrl;
  }

  /** Any request, any answer: the status, headers and JSON (or text) body, never thrown for a status. */
  async request<T = unknown>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<ApiAnswer<T>> {
    const res = await this.http.send({ method, path, body, headers });
    return { status: res.status, headers: res.headers, body: (await readBody(res.body)) as T };
  }

  /** POST /v1/jobs. With `wait`, the finished job and its output (or the job as it stands when the server's wait cap passed). */
  submit(job: JobRequest, opts: SubmitOptions = {}): Promise<Job> {
    return this.call<Job>('POST', '/v1/jobs', { body: job, query: { wait: opts.wait ? 'true' : undefined }, signal: opts.signal });
  }

  /** Submit and wait until it ends, however long: `?wait=true`, then the event stream if the wait cap passed first. */
  async run(job: JobRequest, opts: Omit<WaitOptions, 'output'> = {}): Promise<Job> {
    const doc = await this.submit(job, { wait: true, signal: opts.signal });
    return isFinished(doc.status) ? doc : this.wait(doc.id, { ...opts, output: true });
  }

  get(id: string, opts: { output?: boolean; signal?: AbortSignal } = {}): Promise<Job> {
    return this.call<Job>('GET', `/v1/jobs/${encodeURIComponent(id)}`, { query: { output: opts.output ? 'true' : undefined }, signal: opts.signal });
  }

  /** The files the job's `outputFiles` collected once it ended, each with its bytes (`data`); none before it ended. */
  async outputFiles(id: string, opts: { signal?: AbortSignal } = {}): Promise<OutputFile[]> {
    const body = await this.call<{ items: Array<OutputFileInfo & { content: string }> }>('GET', `/v1/jobs/${encodeURIComponent(id)}/files`, { signal: opts.signal });
    return body.items.map(({ content, ...info }) => ({ ...info, data: Buffer.from(content, 'base64') }));
  }

  /** Until the job is finished: its document if it already is, else the `exit` event of its stream (resumed across drops). */
  async wait(id: string, opts: WaitOptions = {}): Promise<Job> {
    // Not AbortSignal.any(): a program that passes one long-lived signal to many calls would keep a
    // WeakRef per call on it for good (Node 20; ./linked-signal.ts).
    const timeout = opts.timeoutMs === undefined ? undefined : AbortSignal.timeout(opts.timeoutMs);
    return withLinkedSignal([opts.signal, timeout], async (signal) => {
      let doc = await this.get(id, { output: opts.output, signal });
      if (isFinished(doc.status)) return doc;
      for await (const e of this.events(id, { signal })) {
        if (e.type === 'exit') {
          doc = e.job;
          break;
        }
      }
      return opts.output ? this.get(id, { output: true, signal }) : doc;
    });
  }

  /**
   * DELETE /v1/jobs/{id}: the job as it stands after the cancel (a running one usually `cancelled` already). 409 `already_finished` when it had ended.
   * `graceMs` (docker stop -t): a running job's command first gets `signal` (default its stopSignal, else SIGTERM) and this long to exit.
   */
  cancel(id: string, opts: CancelOptions = {}): Promise<Job> {
    return this.call<Job>('DELETE', `/v1/jobs/${encodeURIComponent(id)}`, { query: { graceMs: opts.graceMs, signal: opts.signal } });
  }

  /** One page of the tenant's jobs, newest first. */
  list(opts: ListOptions = {}): Promise<JobPage> {
    return this.call<JobPage>('GET', '/v1/jobs', { query: { status: opts.status, limit: opts.limit, cursor: opts.cursor } });
  }

  /** Every job of the tenant, newest first, following `nextCursor` page by page. */
  async *listAll(opts: Omit<ListOptions, 'cursor'> = {}): AsyncGenerator<Job> {
    let cursor: string | undefined;
    do {
      const page = await this.list({ ...opts, cursor });
      yield* page.items;
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
  }

  /**
   * Submit and follow in one request (`POST /v1/jobs?stream=true`): the job's id as soon as the
   * server answers, and its events as events(id) yields them (the same resumption after a dropped
   * connection, with GET). A server without `?stream` queues the job and answers with its document:
   * then the events come through events(id). Iterate `events` to its end (or return() it): it holds
   * the open answer.
   */
  async follow(job: JobRequest, opts: EventsOptions = {}): Promise<{ id: string; events: AsyncGenerator<JobEvent> }> {
    opts.signal?.throwIfAborted(); // an abort before the call submits nothing (its listener below would never fire)
    const abort = new AbortController();
    const onAbort = () => abort.abort(opts.signal?.reason);
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const answer = await this.http.send({ method: 'POST', path: '/v1/jobs', query: { stream: 'true' }, body: job, headers: { accept: 'text/event-stream' }, signal: abort.signal });
      if (answer.status === 200 && /^text\/event-stream/.test(answer.headers.get('content-type') ?? '')) {
        const id = /\/v1\/jobs\/([^/?#]+)$/.exec(answer.headers.get('location') ?? '')?.[1];
        if (!id) {
          abort.abort();
          throw new SbxApiError({ code: 'internal', message: 'the server streamed a submitted job without naming it (no Location header)', status: 200 });
        }
        return { id: decodeURIComponent(id), events: jobEvents(this.http, decodeURIComponent(id), opts, { answer, abort }) };
      }
      const body = await readBody(answer.body);
      if (answer.status < 200 || answer.status > 299) throw apiErrorFromAnswer(answer.status, body, answer.headers);
      const id = (body as Job).id;
      return { id, events: this.events(id, opts) };
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
    }
  }

  /** The job's events: status changes, stdout/stderr chunks, then `exit`; resumes by Last-Event-ID when the connection drops. */
  events(id: string, opts: EventsOptions = {}): AsyncGenerator<JobEvent> {
    return jobEvents(this.http, id, opts);
  }

  /** The same stream, events as sent (name, id, data text), with the same resumption: for relaying them verbatim. */
  rawEvents(id: string, opts: EventsOptions = {}): AsyncGenerator<ServerSentEvent> {
    return rawJobEvents(this.http, id, opts);
  }

  async images(): Promise<CachedImage[]> {
    return (await this.call<{ items: CachedImage[] }>('GET', '/v1/images')).items;
  }

  /** Pre-pull on every live worker. */
  pull(image: string): Promise<ImageAction> {
    return this.call<ImageAction>('POST', '/v1/images', { body: { image } });
  }

  /**
   * Evict an image from every worker's cache: by digest, or by name (every cached digest of it).
   * A name nothing cached matches is a SbxNotFoundError.
   */
  async rmi(imageOrDigest: string): Promise<ImageAction[]> {
    if (isDigest(imageOrDigest)) return [await this.evict(imageOrDigest)];
    const wanted = normalizeImageName(imageOrDigest);
    const digests = new Set((await this.images()).filter((i) => i.image === wanted || i.image === imageOrDigest).map((i) => i.digest));
    if (digests.size === 0) throw new SbxNotFoundError({ code: 'not_found', message: `no worker has ${imageOrDigest} cached`, status: 404 });
    return Promise.all([...digests].map((d) => this.evict(d)));
  }

  evict(digest: string): Promise<ImageAction> {
    return this.call<ImageAction>('DELETE', `/v1/images/${encodeURIComponent(digest)}`);
  }

  /** The public keys that verify job receipts (none: the server signs none); check one with checkReceipt(). */
  async receiptKeys(): Promise<ReceiptKey[]> {
    return (await this.call<{ items: ReceiptKey[] }>('GET', '/v1/receipt-keys')).items;
  }

  async workers(): Promise<WorkerInfo[]> {
    return (await this.call<{ items: WorkerInfo[] }>('GET', '/v1/workers')).items;
  }

  /** Closes the client's connections (when it made its own dispatcher). */
  close(): Promise<void> {
    return this.http.close();
  }

  private async call<T>(method: string, path: string, opts: { body?: unknown; query?: Record<string, string | number | undefined>; signal?: AbortSignal } = {}): Promise<T> {
    const res = await this.http.send({ method, path, ...opts });
    const body = await readBody(res.body);
    if (res.status < 200 || res.status > 299) throw apiErrorFromAnswer(res.status, body, res.headers);
    return body as T;
  }
}
