/**
 * The client's one way to the network: undici's request() on its own Agent. Non-2xx answers are
 * returned, not thrown (the typed methods turn them into SbxApiError); a failure to get any answer
 * becomes SbxConnectionError.
 */
import { Agent, request, type Dispatcher } from 'undici';
import { connectionError } from './errors.ts';

export interface TransportOptions {
  baseUrl: string;
  apiKey?: string;
  userAgent?: string;
  /** An undici dispatcher (Agent, ProxyAgent, MockAgent...); default: a keep-alive Agent of the client's own. */
  dispatcher?: Dispatcher;
}

export interface RawRequest {
  method: string;
  path: string;
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

export interface RawAnswer {
  status: number;
  headers: Headers;
  body: Dispatcher.ResponseData['body'];
}

export class Transport {
  readonly baseUrl: string;
  private readonly dispatcher: Dispatcher;
  private readonly ownDispatcher: boolean;

  constructor(private readonly opts: TransportOptions) {
    this.baseUrl = opts.baseUrl.replace(/\/+$/, '');
    this.ownDispatcher = !opts.dispatcher;
    this.dispatcher = opts.dispatcher ?? new Agent({ keepAliveTimeout: 10_000 });
  }

  url(path: string, query: RawRequest['query'] = {}): string {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined) q.set(k, String(v));
    const qs = q.toString();
    return `${this.baseUrl}${path}${qs ? (path.includes('?') ? '&' : '?') + qs : ''}`;
  }

  async send(req: RawRequest): Promise<RawAnswer> {
    const headers: Record<string, string> = { 'user-agent': this.opts.userAgent ?? 'sbx-client', ...(this.opts.apiKey ? { authorization: `Bearer ${this.opts.apiKey}` } : {}) };
    let body: string | undefined;
    if (req.body !== undefined) {
      headers['content-type'] = 'application/json';
      body = typeof req.body === 'string' ? req.body : JSON.stringify(req.body);
    }
    try {
      const res = await request(this.url(req.path, req.query), {
        method: req.method as Dispatcher.HttpMethod,
        headers: { ...headers, ...req.headers },
        body,
        signal: req.signal,
        dispatcher: this.dispatcher,
      });
      return { status: res.statusCode, headers: toHeaders(res.headers), body: res.body };
    } catch (e) {
      if (req.signal?.aborted) throw req.signal.reason ?? e;
      throw connectionError(this.baseUrl, e);
    }
  }

  async close(): Promise<void> {
    if (this.ownDispatcher) await this.dispatcher.close();
  }
}

function toHeaders(raw: Record<string, string | string[] | undefined>): Headers {
  const h = new Headers();
  for (const [k, v] of Object.entries(raw)) {
    if (Array.isArray(v)) for (const x of v) h.append(k, x);
    else if (v !== undefined) h.set(k, v);
  }
  return h;
}

/** The body as JSON when it parses, as text otherwise, null when empty. */
export async function readBody(body: RawAnswer['body']): Promise<unknown> {
  const text = await body.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
