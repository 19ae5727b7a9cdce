/**
 * Whether an error means "Redis did not answer" (503 dependency_unavailable) rather than "Redis
 * answered with an error" (a bug here: 500 internal); replies that say Redis cannot serve now
 * (LOADING, BUSY, …) count as not answering. Judged by ioredis's error types, not by
 * message text: a ReplyError (WRONGTYPE, NOSCRIPT, ERR …) is an answer; the other redis-errors
 * classes ioredis raises (MaxRetriesPerRequestError, ClusterAllFailedError, AbortError), no Sentinel
 * naming a master (SentinelsUnreachableError) and socket errors (ECONNREFUSED, …) are not; ioredis
 * rejects commands on a closed connection with a plain Error that has no code, so for those the
 * client's own state decides. One plain Error is told by its text: a Cluster's giving up on a slot
 * without a reachable master (CLUSTER_GAVE_UP).
 */
import { Cluster, ReplyError } from 'ioredis';
import { SentinelsUnreachableError, type RedisClient } from '../../core/src/redis.ts';
import { NOT_NOW_REPLIES } from '../../core/src/redis-not-now.ts';

/** redis-errors' base class (ReplyError extends it; ioredis does not export it by name). */
const RedisError = Object.getPrototypeOf(ReplyError) as Function;

const CONNECTION_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);

/**
 * Replies that mean Redis refuses sbx itself: a wrong or rotated password (WRONGPASS, NOAUTH), an
 * ACL that does not let sbx's user at its keys (NOPERM). Not a request's fault nor a bug of ours:
 * for the tenant, as if Redis were down, until the operator mends the credentials.
 */
const REFUSED_ACCESS = ['WRONGPASS', 'NOAUTH', 'NOPERM'];

/** "Not now" (core/src/redis-not-now.ts: loading, Cluster down, BUSY, OOM, …) and refused access. */
const UNAVAILABLE_REPLIES = new Set([...NOT_NOW_REPLIES, ...REFUSED_ACCESS]);

/**
 * ioredis's Cluster sends a command whose slot's master is gone (killed, until its replica is
 * promoted: seconds) again every 100 ms, then gives up with a plain Error of this text ("… Last
 * error: Error: Connection is closed.", "… CLUSTERDOWN …"): it has no class or code, and the
 * Cluster's own status stays `ready` (its other masters are). Before, a submission during a
 * failover answered 500 internal. Only a plain Error from a Cluster client counts: no reply of Redis
 * is one (a ReplyError), and no code of sbx throws it.
 */
const CLUSTER_GAVE_UP = 'Too many Cluster redirections.';

export function isRedisOutage(err: unknown, redis: RedisClient): boolean {
  if (!(err instanceof Error)) return false;
  if (err instanceof ReplyError) return UNAVAILABLE_REPLIES.has(err.message.split(' ', 1)[0] ?? '');
  if (err instanceof RedisError || err instanceof SentinelsUnreachableError) return true;
  if (CONNECTION_CODES.has((err as NodeJS.ErrnoException).code ?? '')) return true;
  if (Object.getPrototypeOf(err) !== Error.prototype) return false;
  return redis.status !== 'ready' || (redis instanceof Cluster && err.message.startsWith(CLUSTER_GAVE_UP));
}
