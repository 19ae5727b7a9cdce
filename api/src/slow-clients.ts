/**
 * How long a client may take to send a request (P46). Node's own defaults let a connection that
 * trickles its headers live 90 s (60 s, looked at every 30 s) and one that trickles its body 300 s,
 * so a few thousand such sockets from anyone, with or without a key, hold the API's descriptors.
 * Headers must be in within SBX_API_HEADERS_TIMEOUT_MS, the whole request within
 * SBX_API_REQUEST_TIMEOUT_MS (408, then the connection closes); the connections are looked at every
 * second. Responses are not bounded here: event streams and ?wait=true run as long as their jobs.
 */
import type { ServerOptions } from 'node:http';
import type { Env } from '../../core/src/config.ts';

export function slowClientBounds(env: Pick<Env, 'SBX_API_HEADERS_TIMEOUT_MS' | 'SBX_API_REQUEST_TIMEOUT_MS'>): ServerOptions {
  return {
    headersTimeout: env.SBX_API_HEADERS_TIMEOUT_MS,
    requestTimeout: env.SBX_API_REQUEST_TIMEOUT_MS,
    connectionsCheckingInterval: 1000, // both bounds are at least 1 s (core/src/config.ts)
  };
}
