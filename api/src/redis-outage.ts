/**
 * Whether an error means "Redis did not answer" (503 dependency_unavailable) rather than "Redis
 * answered with an error" (a bug here: 500 internal). Judged by ioredis's error types, never by
 * message text: a ReplyError (WRONGTYPE, NOSCRIPT, ERR …) is an answer; the other redis-errors
 * classes ioredis raises (MaxRetriesPerRequestError, ClusterAllFailedError, AbortError) and socket
 * errors (ECONNREFUSED, …) are not; ioredis rejects commands on a closed connection with a plain
 * Error that has no code, so for those the client's own state decides.
 */
import { ReplyError } from 'ioredis';
import type { RedisClient } from '../../core/src/redis.ts';

/** redis-errors' base class (ReplyError extends it; ioredis does not export it by name). */
const RedisError = Object.getPrototypeOf(ReplyError) as Function;

const CONNECTION_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);

export function isRedisOutage(err: unknown, redis: RedisClient): boolean {
  if (!(err instanceof Error) || err instanceof ReplyError) return false;
  if (err instanceof RedisError) return true;
  if (CONNECTION_CODES.has((err as NodeJS.ErrnoException).code ?? '')) return true;
  return Object.getPrototypeOf(err) === Error.prototype && redis.status !== 'ready';
}
