/**
 * Redis is sbx's only state (the BullMQ queue, job records, output streams, quotas), and BullMQ
 * requires `maxmemory-policy noeviction`: a Redis that evicts keys when full drops a queue entry, a
 * job's record or its output without a word (a job answered 202 never runs, or a running job's
 * record is gone and its end is refused as "finished elsewhere"). Before, the API and the worker
 * started against such a Redis; BullMQ printed one unstructured console line ("IMPORTANT! Eviction
 * policy is allkeys-lru. It should be "noeviction"") and everything went on.
 *
 * Now each process reads the policy (INFO memory, every master of a Cluster) when its connection
 * is first ready and refuses to start (exit 2, one line naming the setting) unless it is
 * `noeviction`; on a later reconnect (a restart, a failover to a server configured otherwise), and
 * every 5 heartbeats, at least 5 s (a CONFIG SET on the live server), it logs the same as an error, once per
 * change, and goes on serving (stopping then would cut off running jobs and requests in flight). A server that does not tell its policy (INFO refused by an ACL, a managed
 * service that leaves the field out) is taken as it is, with a warning.
 */
import { Cluster, type Redis } from 'ioredis';
import type { Logger } from './logger.ts';
import type { RedisClient } from './redis.ts';

/** The policy a server reports (INFO memory `maxmemory_policy`), or null when it does not say. */
export async function maxmemoryPolicy(node: Redis): Promise<string | null> {
  const info = await node.info('memory');
  return /^maxmemory_policy:(\S+)/m.exec(info)?.[1] ?? null;
}

/** Why this Redis (each master of a Cluster) cannot hold sbx's state, or null when every server is `noeviction` or does not say. */
export async function evictionPolicyProblem(redis: RedisClient): Promise<string | null> {
  const nodes = redis instanceof Cluster ? redis.nodes('master') : [redis];
  for (const node of nodes) {
    const policy = await maxmemoryPolicy(node);
    if (policy === null || policy === 'noeviction') continue;
    const where = redis instanceof Cluster ? ` ${node.options.host}:${node.options.port}` : '';
    return `Redis${where} has maxmemory-policy ${policy}, which evicts keys when memory is full: sbx keeps its queue, job records and output there and needs maxmemory-policy noeviction (redis.conf, or CONFIG SET maxmemory-policy noeviction); a full Redis then refuses writes, which sbx answers 503 and waits out`;
  }
  return null;
}

/**
 * Checks the policy once `redis` is ready (now, if it is), then again on each reconnect and every 5
 * heartbeats (at least 5 s). Resolves after the first check that could be made; when that first
 * check finds an evicting policy the process `name` (sbx-api, sbx-worker) refuses to start: a fatal
 * log line, the problem on stderr, exit 2. Later, a problem is logged instead (once until the policy
 * changes again).
 */
export function guardEvictionPolicy(redis: RedisClient, logger: Logger, name: string, heartbeatMs: number): Promise<void> {
  const refuse = (problem: string): never => {
    logger.fatal({ setting: 'maxmemory-policy' }, problem);
    process.stderr.write(`${name}: ${problem}\n`);
    process.exit(2);
  };
  const recheckEveryMs = Math.max(5000, heartbeatMs * 5);
  let first = true;
  let logged: string | null = null;
  return new Promise<void>((resolve) => {
    const check = () => {
      void evictionPolicyProblem(redis).then(
        (problem) => {
          if (problem && first) refuse(problem);
          if (problem && problem !== logged) logger.error({ setting: 'maxmemory-policy' }, problem);
          logged = problem;
          if (first) setInterval(() => redis.status === 'ready' && check(), recheckEveryMs).unref();
          first = false;
          resolve();
        },
        (err: Error) => {
          // The connection went again meanwhile: checked at its next ready.
          if (!first || redis.status !== 'ready') return;
          logger.warn({ err: err.message }, 'cannot read Redis\'s maxmemory-policy (INFO memory); sbx needs noeviction and goes on without knowing it');
          first = false;
          resolve();
        },
      );
    };
    redis.on('ready', check);
    if (redis.status === 'ready') check();
  });
}
