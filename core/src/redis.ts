/**
 * One place that knows how to reach Redis: standalone (URL), Sentinel or Cluster, picked by config.
 * Callers get an ioredis client (Redis or Cluster) and never branch on the mode themselves.
 */
import { Redis, Cluster, type RedisOptions } from 'ioredis';
import type { Env } from './config.ts';

export type RedisClient = Redis | Cluster;

function hostPort(s: string): { host: string; port: number } {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(s);
  if (!m) throw new Error(`expected host:port, got ${JSON.stringify(s)}`);
  return { host: m[1]!, port: Number(m[2]) };
}

/**
 * A new connection. `purpose` names it in CLIENT LIST. BullMQ needs maxRetriesPerRequest: null on
 * its connections; so does the worker's (`waitWhileDown`): what it records about a job it holds
 * (claim, start, end) waits for Redis to be back (a restart, a failover) rather than failing, which
 * would leave the job non-final with a live worker nobody settles. Everyone else (the API) fails
 * fast when Redis is down so it can answer 503.
 */
export function connectRedis(env: Env, purpose: string, opts: { forBullMQ?: boolean; waitWhileDown?: boolean } = {}): RedisClient {
  const url = new URL(env.SBX_REDIS_URL);
  const base: RedisOptions = {
    connectionName: `sbx-${purpose}`,
    maxRetriesPerRequest: opts.forBullMQ || opts.waitWhileDown ? null : 2,
    enableOfflineQueue: true,
    lazyConnect: false,
    password: url.password ? decodeURIComponent(url.password) : undefined,
    username: url.username ? decodeURIComponent(url.username) : undefined,
    tls: url.protocol === 'rediss:' ? {} : undefined,
    retryStrategy: (times) => Math.min(50 * 2 ** times, 2000),
  };
  if (env.SBX_REDIS_CLUSTER_NODES?.length) {
    return new Cluster(env.SBX_REDIS_CLUSTER_NODES.map(hostPort), { redisOptions: base, enableOfflineQueue: true });
  }
  if (env.SBX_REDIS_SENTINELS?.length) {
    return new Redis({ ...base, sentinels: env.SBX_REDIS_SENTINELS.map(hostPort), name: env.SBX_REDIS_SENTINEL_NAME });
  }
  return new Redis({
    ...base,
    host: url.hostname.replace(/^\[|\]$/g, ''),
    port: url.port ? Number(url.port) : 6379,
    db: url.pathname.length > 1 ? Number(url.pathname.slice(1)) : 0,
  });
}
