/**
 * Commands sent back to back in one socket write. ioredis writes each command to the socket on its
 * own (one syscall, and on loopback the whole TCP receive path, in this process's CPU time);
 * corking the socket while `send` issues them makes it one writev, and Redis reads them in one go.
 * Not a pipeline(): ioredis copies every script defined on the connection into each Pipeline.
 * `send` must issue its commands synchronously (it returns their promises). On a Cluster, or while
 * the connection is not ready (commands wait in ioredis's offline queue), it just calls `send`.
 */
import { Redis } from 'ioredis';
import type { RedisClient } from './redis.ts';

export function sendTogether<T>(redis: RedisClient, send: () => T): T {
  const stream = redis instanceof Redis && redis.status === 'ready' ? (redis as unknown as { stream?: NodeJS.WritableStream & { cork(): void; uncork(): void; writable: boolean } }).stream : undefined;
  if (!stream?.writable) return send();
  stream.cork();
  try {
    return send();
  } finally {
    stream.uncork();
  }
}
