/**
 * The checks the `ws` library makes before it completes a WebSocket upgrade (ws 8's
 * WebSocketServer.handleUpgrade), made first. @hono/node-ws registers a waiter for every request
 * passed to upgradeWebSocket and only a completed upgrade removes it, so a handshake that `ws` then
 * refuses, or a client gone before it, stays in the API's memory for good: 5,000 malformed keys held
 * 49 MiB of heap after GC. An attach request that would be refused is refused here instead.
 */
import type { Socket } from 'node:net';

const KEY = /^[+/0-9A-Za-z]{22}==$/;
/** RFC 7230 tchar: what a subprotocol name may be made of. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** Why `ws` would not complete this upgrade, or null if it would. */
export function websocketHandshakeProblem(header: (name: string) => string | undefined, socket: Socket | undefined): string | null {
  if (!socket || socket.destroyed || !socket.readable || !socket.writable) return 'the connection is gone';
  if (!KEY.test(header('sec-websocket-key') ?? '')) return 'missing or invalid Sec-WebSocket-Key header';
  const version = header('sec-websocket-version');
  if (version !== '13' && version !== '8') return 'missing or invalid Sec-WebSocket-Version header (13)';
  const protocols = header('sec-websocket-protocol');
  if (protocols !== undefined && !validProtocols(protocols)) return 'invalid Sec-WebSocket-Protocol header';
  return null;
}

/** ws's subprotocol.parse, as a check: comma-separated distinct tokens, blanks only around them. */
function validProtocols(header: string): boolean {
  if (/^[ \t]/.test(header)) return false;
  const names = header.split(',').map((p) => p.replace(/^[ \t]+|[ \t]+$/g, ''));
  return names.every((n) => TOKEN.test(n)) && new Set(names).size === names.length;
}
