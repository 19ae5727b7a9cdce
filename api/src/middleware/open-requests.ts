/**
 * P50: each tenant has at most its quota's `requests` open at once on this API process. A request
 * holds its place from authentication until its answer has been written (or its connection closed):
 * an answer its client does not read keeps up to about a page of it in this process (P48), so
 * without a bound one tenant's thousands of unread answers fill the process's memory. Past the quota
 * the request is 429 rate_limited before its handler runs, so nothing is created.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { MiddlewareHandler } from 'hono';
import type { AppEnv } from '../deps.ts';
import type { TenantPlaces } from '../tenant-places.ts';

/** What ends with the request: its response, or for a WebSocket upgrade (no response) its socket. */
function endOfRequest(env: unknown): ServerResponse | IncomingMessage['socket'] | null {
  const bindings = env as { incoming?: IncomingMessage; outgoing?: ServerResponse } | undefined;
  return bindings?.outgoing ?? bindings?.incoming?.socket ?? null;
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
