/**
 * P50: each tenant has at most its quota's `requests` open at once on this API process. A request
 * holds its place from authentication until its answer has been written (or its connection closed):
 * an answer its client does not read keeps up to about a page of it in this process (P48), so
 * without a bound one tenant's thousands of unread answers fill the process's memory. Past the quota
 * the request is 429 rate_limited before its handler runs, so nothing is created.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Context, MiddlewareHandler } from 'hono';
import type { AppEnv } from '../deps.ts';
import type { TenantPlaces } from '../tenant-places.ts';

/** What ends with the request: its response, or for a WebSocket upgrade (no response) its socket. */
function endOfRequest(env: unknown): ServerResponse | IncomingMessage['socket'] | null {
  const bindings = env as { incoming?: IncomingMessage; outgoing?: ServerResponse } | undefined;
  return bindings?.outgoing ?? bindings?.incoming?.socket ?? null;
}

/**
 * The request holds an answer of about `pages` MiB, read whole, which its client may leave unread:
 * within the tenant's `requests` quota each MiB counts as a place (TenantPlaces.takePages), so that
 * such answers hold no more of the process's memory than the quota's places may. Past what is left:
 * RateLimitedError (429), before it is read. Given back when the request ends.
 */
export function holdPagesOfAnswer(c: Context<AppEnv>, places: TenantPlaces, pages: number): void {
  if (pages <= 1) return; // a page, as any answer
  const release = places.takePages(c.get('tenant'), c.get('quota'), pages);
  const end = endOfRequest(c.env);
  if (end === null || end.closed) queueMicrotask(release); // in-process (app.request in tests): nothing outlives the handler
  else end.once('close', release);
}

export function openRequests(places: TenantPlaces): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const release = places.take(c.get('tenant'), c.get('quota'));
    const end = endOfRequest(c.env);
    if (end === null) {
      // In-process (app.request in tests): no connection outlives the handler.
      try {
        return await next();
      } finally {
        release();
      }
    }
    if (end.closed) release();
    else end.once('close', release);
    return next();
  };
}
