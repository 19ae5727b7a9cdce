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
  const stream = writableStream(redis);
  if (!stream) return send();
  stream.cork();
  try {
    return send();
  } finally {
    stream.uncork();
  }
}

/**
 * As sendTogether, for commands `send` issues over a few microtasks rather than at once: a library's
 * async wrapper (BullMQ's Queue.add awaits its client and builds the job before it writes). The
 * socket stays corked until the event loop's next check phase (setImmediate), when every microtask
 * of this turn has run; a command issued later than that (after I/O) goes out on its own, as usual.
 */
export function sendTogetherThisTurn<T>(redis: RedisClient, send: () => T): T {
  const stream = writableStream(redis);
  if (!stream) return send();
  stream.cork();
  setImmediate(() => stream.uncork());
  return send();
}

type CorkableStream = NodeJS.WritableStream & { cork(): void; uncork(): void; writable: boolean };

function writableStream(redis: RedisClient): CorkableStream | undefined {
  const stream = redis instanceof Redis && redis.status === 'ready' ? (redis as unknown as { stream?: CorkableStream }).stream : undefined;
  return stream?.writable ? stream : undefined;
}
