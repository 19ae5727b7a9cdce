/**
 * The tests' API client is the product's: client/src (`SbxClient`, typed, errors by code, resuming
 * events). This file only keeps the answer-shaped calls the older end-to-end tests assert on
 * (`{ status, headers, body }`, the raw SSE events), each one call of that client; new tests use
 * `api.client` (or client/src directly) for the typed methods.
 */
import { SbxClient as Client, type ApiAnswer, type Job, type JobRequest, type ServerSentEvent } from '../../client/src/index.ts';

export type { ApiAnswer, ServerSentEvent };

export class SbxClient {
  /** The product client, for typed calls: `api.client.run(...)`, `api.client.events(id)`. */
  readonly client: Client;

  constructor(
    readonly baseUrl: string,
    readonly apiKey?: string,
  ) {
    this.client = new Client({ baseUrl, ...(apiKey ? { apiKey } : {}) });
  }

  request<T = unknown>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<ApiAnswer<T>> {
    return this.client.request<T>(method, path, body, headers);
  }

  submit(job: JobRequest | Record<string, unknown>, opts: { wait?: boolean } = {}): Promise<ApiAnswer<Job>> {
    return this.request<Job>('POST', `/v1/jobs${opts.wait ? '?wait=true' : ''}`, job);
  }

  get(id: string, output = false): Promise<ApiAnswer<Job>> {
    return this.request<Job>('GET', `/v1/jobs/${id}${output ? '?output=true' : ''}`);
  }

  /**
   * The job's SSE events as sent, until `exit` (or until `until` says stop), optionally after an event
   * id. `id` is the event's last event id as EventSource reports it (an event without `id:`, like
   * `queue`, carries the one before it).
   */
  async events(id: string, opts: { lastEventId?: string; until?: (e: ServerSentEvent) => boolean } = {}): Promise<ServerSentEvent[]> {
    const out: ServerSentEvent[] = [];
    for await (const raw of this.client.rawEvents(id, opts.lastEventId ? { lastEventId: opts.lastEventId } : {})) {
      const e = { ...raw, id: raw.lastEventId };
      out.push(e);
      if (opts.until?.(e)) break;
    }
    return out;
  }

  /** Until the job is finished, with its output. */
  waitFinished(id: string, timeoutMs = 30_000): Promise<Job> {
    return this.client.wait(id, { output: true, timeoutMs });
  }
}
