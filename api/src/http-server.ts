/**
 * The API's HTTP server: Node's http server with the app as its request listener, and the answers
 * to requests that never reach the app. Those get the API's one error body (api.md "Errors") like
 * every other answer, not the empty 400, 408 and 431 that Node writes, nor @hono/node-server's
 * empty 400:
 *  - what Node's HTTP parser refuses (the server's 'clientError'): a malformed request line, header
 *    or chunk (400 invalid_request), a header block over Node's limit (431 headers_too_large), a
 *    request not sent within SBX_API_HEADERS_TIMEOUT_MS / SBX_API_REQUEST_TIMEOUT_MS (P46:
 *    408 request_timeout);
 *  - what @hono/node-server refuses before the app (a malformed Host, a backslash in the path), and
 *    an HTTP/1.1 request without Host, which Node itself would answer (400 invalid_request).
 * An Expect other than 100-continue is ignored (Node answers an empty 417), and only an attach
 * WebSocket upgrade is an upgrade (upgrade-requests.ts).
 */
import { createServer, STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { getRequestListener, RequestError } from '@hono/node-server';
import type { Env } from '../../core/src/config.ts';
import { ERROR_STATUS, errorBody, INTERNAL_ERROR_MESSAGE, type ErrorCode } from '../../core/src/errors.ts';
import type { Logger } from '../../core/src/logger.ts';
import { slowClientBounds } from './slow-clients.ts';
import { ApiIncomingMessage } from './upgrade-requests.ts';

/** Every JSON answer's Content-Type (api.md: "All bodies are JSON (`application/json; charset=utf-8`)"). */
export const JSON_CONTENT_TYPE = 'application/json; charset=utf-8';

interface Answer {
  status: number;
  body: string;
}

function answer(code: ErrorCode, message: string): Answer {
  return { status: ERROR_STATUS[code], body: JSON.stringify(errorBody(code, message)) };
}

/** What a connection gets for a request Node's parser refused (err: the 'clientError' event's). */
export function clientErrorAnswer(err: Error & { code?: string }): Answer {
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW':
      return answer('headers_too_large', "the request's headers are larger than the server accepts");
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return answer('payload_too_large', "the request's chunk extensions are larger than the server accepts");
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return answer('request_timeout', 'the request was not sent in time; send it whole, without pauses');
    default:
      return answer('invalid_request', `malformed HTTP request: ${err.message}`);
  }
}

/** The raw HTTP response for `a` with `headers` (a JSON body unless they say otherwise); the connection closes after it. */
export function rawResponse(a: Answer, headers: Record<string, string> = {}): string {
  const all = { 'Content-Type': JSON_CONTENT_TYPE, ...headers, 'Content-Length': String(Buffer.byteLength(a.body)), Connection: 'close' };
  const lines = Object.entries(all).map(([name, value]) => `${name}: ${value}\r\n`).join('');
  return `HTTP/1.1 ${a.status} ${STATUS_CODES[a.status] ?? ''}\r\n${lines}\r\n${a.body}`;
}

/** Node's private handle on the response in progress on a connection (what its own default checks). */
type ClientSocket = Duplex & { _httpMessage?: { headersSent?: boolean } | null };

/**
 * A refused connection lingers (as nginx's lingering close): what the client still sends is read and
 * dropped until it has been quiet this long, for at most LINGER_MAX_MS and LINGER_MAX_BYTES in all.
 */
export const LINGER_IDLE_MS = 500;
export const LINGER_MAX_MS = 5000;
export const LINGER_MAX_BYTES = 64 * 1024 * 1024;

/**
 * The 'clientError' listener. As Node's default: an answer only where nothing of a response has been
 * written on the connection yet (a half-written response must not be followed by another). Unlike
 * Node's default, which closes at once, the connection then lingers: closing while the client still
 * sends (the rest of a body) makes its kernel reset the connection, and a reset can drop the answer
 * before the client reads it. Node's HTTP parser, which has failed, no longer reads the connection.
 * A request that timed out (P46) closes at once, as before: its client is the slow one.
 */
export function answerClientError(err: Error & { code?: string }, socket: Duplex): void {
  const inFlight = (socket as ClientSocket)._httpMessage;
  if (err.code === 'ECONNRESET' || !socket.writable || inFlight?.headersSent) {
    socket.destroy();
    return;
  }
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    // A client too slow to send its request (P46) is not waited for again.
    socket.write(rawResponse(clientErrorAnswer(err)));
    socket.destroy();
    return;
  }
  const close = () => {
    clearTimeout(quiet);
    clearTimeout(atMost);
    socket.destroy();
  };
  const quiet = setTimeout(close, LINGER_IDLE_MS).unref();
  const atMost = setTimeout(close, LINGER_MAX_MS).unref();
  let dropped = 0;
  socket.removeAllListeners('data');
  socket.on('data', (chunk: Buffer) => {
    dropped += chunk.length;
    if (dropped > LINGER_MAX_BYTES) close();
    else quiet.refresh();
  });
  socket.on('error', () => {});
  socket.once('end', close);
  socket.once('close', close);
  socket.end(rawResponse(clientErrorAnswer(err)));
}

function jsonResponse(a: Answer): Response {
  return new Response(a.body, { status: a.status, headers: { 'content-type': JSON_CONTENT_TYPE } });
}

/** @hono/node-server's errorHandler: a request it could not turn into a Request, or an app that threw outside its own onError. */
export function requestErrorResponse(err: unknown, logger: Logger): Response {
  if (err instanceof RequestError) return jsonResponse(answer('invalid_request', `malformed HTTP request: ${err.message}`));
  logger.error({ err }, 'unhandled error outside the app');
  return jsonResponse(answer('internal', INTERNAL_ERROR_MESSAGE));
}

function sendAnswer(res: ServerResponse, a: Answer): void {
  res.writeHead(a.status, { 'content-type': JSON_CONTENT_TYPE, 'content-length': Buffer.byteLength(a.body), connection: 'close' });
  res.end(a.body);
}

/** The server, not yet listening. `fetch`: the app's. */
export function createApiServer(fetch: (req: Request, env: unknown) => Response | Promise<Response>, env: Env, logger: Logger): Server {
  const listener = getRequestListener(fetch, { hostname: env.SBX_API_HOST, errorHandler: (err) => requestErrorResponse(err, logger) });
  // Node's own Host check answers with an empty body; this one answers as the API does.
  const serve = (req: IncomingMessage, res: ServerResponse) => {
    if (req.headers.host === undefined && req.httpVersionMajor === 1 && req.httpVersionMinor >= 1) {
      sendAnswer(res, answer('invalid_request', 'an HTTP/1.1 request needs a Host header'));
      return;
    }
    void listener(req, res);
  };
  // Only an attach WebSocket upgrade goes to the 'upgrade' listener (upgrade-requests.ts).
  const server = createServer({ ...slowClientBounds(env), requireHostHeader: false, IncomingMessage: ApiIncomingMessage }, serve);
  server.on('clientError', answerClientError);
  // An Expect other than 100-continue: Node's own answer is an empty 417; the API serves the request
  // (RFC 9110 §10.1.1 lets a server ignore an expectation it does not know).
  server.on('checkExpectation', serve);
  return server;
}
