/**
 * A signal that fires when the client goes away before its answer was sent (a `?wait=true` caller
 * that hangs up stops being waited for). Served by @hono/node-server, it is built from Node's
 * response directly: `c.req.raw.signal` would first build the full fetch Request (undici) of every
 * such request, several times the CPU of this. Elsewhere (app.request() in tests) it is Hono's.
 */
import type { HttpBindings } from '@hono/node-server';
import type { Context } from 'hono';

export function clientGoneSignal(c: Context): AbortSignal {
  const outgoing = (c.env as Partial<HttpBindings> | undefined)?.outgoing;
  if (!outgoing) return c.req.raw.signal;
  const controller = new AbortController();
  const gone = () => {
    if (!outgoing.writableFinished) controller.abort(new Error('the client closed the connection before the answer'));
  };
  if (outgoing.closed) gone();
  else outgoing.once('close', gone);
  return controller.signal;
}
