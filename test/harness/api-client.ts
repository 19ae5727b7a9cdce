/** A small real HTTP client for the sbx API, used by end-to-end tests and benchmarks. */
import { readServerSentEvents, type ServerSentEvent } from '../../core/src/sse-reader.ts';
import type { JobDocument } from '../../core/src/job-spec.ts';

export interface ApiAnswer<T = unknown> {
  status: number;
  headers: Headers;
  body: T;
}

export class SbxClient {
  constructor(
    readonly baseUrl: string,
    readonly apiKey?: string,
  ) {}

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    return { ...(this.apiKey ? { authorization: `Bearer ${this.apiKey}` } : {}), ...extra };
  }

  async request<T = unknown>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<ApiAnswer<T>> {
    const res = await fetch(`${this.baseUrl}${path}`, {
      method,
      headers: this.headers(body === undefined ? headers : { 'content-type': 'application/json', ...headers }),
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, headers: res.headers, body: (text ? JSON.parse(text) : null) as T };
  }

  submit(job: Record<string, unknown>, opts: { wait?: boolean } = {}): Promise<ApiAnswer<JobDocument>> {
    return this.request<JobDocument>('POST', `/v1/jobs${opts.wait ? '?wait=true' : ''}`, job);
  }

  get(id: string, output = false): Promise<ApiAnswer<JobDocument>> {
    return this.request<JobDocument>('GET', `/v1/jobs/${id}${output ? '?output=true' : ''}`);
  }

  /** Read the job's SSE stream until it ends (after `exit`), optionally resuming after an event id. */
  async events(id: string, opts: { lastEventId?: string; until?: (e: ServerSentEvent) => boolean } = {}): Promise<ServerSentEvent[]> {
    const ctl = new AbortController();
    const res = await fetch(`${this.baseUrl}/v1/jobs/${id}/events`, {
      headers: this.headers(opts.lastEventId ? { 'last-event-id': opts.lastEventId } : {}),
      signal: ctl.signal,
    });
    if (res.status !== 200 || !res.body) throw new Error(`events answered ${res.status}: ${await res.text()}`);
    const out: ServerSentEvent[] = [];
    try {
      for await (const e of readServerSentEvents(res.body)) {
        out.push(e);
        if (opts.until?.(e)) break;
      }
    } finally {
      ctl.abort();
    }
    return out;
  }

  /** Poll until the job is finished (for tests that do not stream). */
  async waitFinished(id: string, timeoutMs = 30_000): Promise<JobDocument> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const { body } = await this.get(id, true);
      if (['succeeded', 'failed', 'timeout', 'oom', 'cancelled', 'error'].includes(body.status)) return body;
      if (Date.now() > deadline) throw new Error(`job ${id} still ${body.status} after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}
