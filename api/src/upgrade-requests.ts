/**
 * Which requests are upgrades. Node hands every request that carries `Upgrade` to the server's
 * 'upgrade' listener once it has one, method and body left behind: `curl --http2` (an h2c upgrade on
 * any request) had its DELETE answered as a GET and its POST lost, and a websocket upgrade of another
 * route was buffered whole in memory (an event stream until its job ended, an 8 MB output per
 * request). Only a WebSocket upgrade of `GET /v1/jobs/{id}/attach` is one here; any other request
 * is served as the plain request it also is (RFC 9110 §7.8: a server may ignore Upgrade).
 */
import { IncomingMessage } from 'node:http';

const ATTACH_PATH = /^\/v1\/jobs\/[^/?#]+\/attach(?:\?|$)/;

/** Whether `req` asks to become the attach WebSocket (what the 'upgrade' listener serves). */
export function isAttachUpgrade(req: Pick<IncomingMessage, 'method' | 'url' | 'headers'>): boolean {
  if (req.method !== 'GET' || !ATTACH_PATH.test(req.url ?? '')) return false;
  const upgrade = req.headers.upgrade;
  return typeof upgrade === 'string' && upgrade.split(',').some((token) => token.trim().toLowerCase() === 'websocket');
}

const ASKED = Symbol('sbx upgrade asked');

/**
 * The server's IncomingMessage (createServer's `IncomingMessage` option): `upgrade` is what the
 * parser saw only for an attach WebSocket upgrade. Node reads it, once method, URL and headers are
 * set, to choose between its 'upgrade' listener and the plain request path.
 */
export class ApiIncomingMessage extends IncomingMessage {
  // Over the `upgrade` field Node's parser and IncomingMessage's constructor set.
  get upgrade(): boolean {
    return (this as unknown as Record<symbol, boolean>)[ASKED] === true && isAttachUpgrade(this);
  }
  set upgrade(asked: boolean) {
    (this as unknown as Record<symbol, boolean>)[ASKED] = asked;
  }
}
