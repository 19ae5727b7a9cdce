/**
 * One place that knows how to reach Redis: standalone (URL), Sentinel or Cluster, picked by config.
 * Callers get an ioredis client (Redis or Cluster) and never branch on the mode themselves.
 */
import { Redis, Cluster, type RedisOptions } from 'ioredis';
import { redisDatabaseOf, type Env } from './config.ts';

export type RedisClient = Redis | Cluster;

export function hostPort(s: string): { host: string; port: number } {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(s);
  if (!m) throw new Error(`expected host:port, got ${JSON.stringify(s)}`);
  return { host: m[1]!, port: Number(m[2]) };
}

/**
 * The longest wait between two attempts to reconnect (they back off from 100 ms): half a heartbeat,
 * at most 2 s. A worker whose heartbeats stop landing for 5 heartbeats kills its jobs
 * (worker/src/redis-watchdog.ts), so after Redis comes back it must be connected again well within
 * that. With a flat 2 s cap, a connection down for 1.5 s waited 1.6 s more before its next try: past
 * a 2.5 s limit (500 ms heartbeats) even when Redis was back at once. The chaos test's 1 s restarts
 * beside two busy loops ended 4 running jobs worker_lost in 2 rounds of 10 before, none in 10 after.
 */
function reconnectCapMs(env: Pick<Env, 'SBX_HEARTBEAT_MS'>): number {
  return Math.min(2000, Math.max(100, Math.floor(env.SBX_HEARTBEAT_MS / 2)));
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
    retryStrategy: (times) => Math.min(50 * 2 ** times, reconnectCapMs(env)),
  };
  if (env.SBX_REDIS_CLUSTER_NODES?.length) {
    // A Cluster routes a command itself and ignores maxRetriesPerRequest: while its slot's master is
    // gone (killed, until its replica is promoted) the command is sent again every 100 ms at most
    // maxRedirections times (16), then fails "Too many Cluster redirections": after 1.6 s, sooner
    // than a failover (cluster-node-timeout, then an election). Connections that wait while Redis is
    // down wait through a failover too.
    const waits = base.maxRetriesPerRequest === null;
    // With every node gone the Cluster reconnects on its own schedule (100 ms + 2 ms a try, to 2 s):
    // as a standalone connection, at least twice a heartbeat (reconnectCapMs).
    const clusterRetryStrategy = (times: number) => Math.min(100 + times * 2, reconnectCapMs(env));
    return new Cluster(env.SBX_REDIS_CLUSTER_NODES.map(hostPort), { redisOptions: base, enableOfflineQueue: true, clusterRetryStrategy, ...(waits ? { maxRedirections: Infinity } : {}) });
  }
  const db = redisDatabaseOf(env.SBX_REDIS_URL);
  if (env.SBX_REDIS_SENTINELS?.length) {
    const client = new Redis({ ...base, db, ...sentinelOptions(env, base) });
    if (base.maxRetriesPerRequest !== null) failWhileNoSentinelAnswers(client);
    return client;
  }
  return new Redis({ ...base, host: url.hostname.replace(/^\[|\]$/g, ''), port: url.port ? Number(url.port) : 6379, db });
}

/**
 * How the Sentinels are asked for the master, and how that master is reached. rediss://: the master
 * is reached over TLS too (ioredis connects to it in plain TCP, password and all, unless told:
 * enableTLSForSentinelMode), its certificate checked against the address they name. The Sentinels
 * have credentials of their own (SBX_REDIS_SENTINEL_USERNAME/PASSWORD: the URL's are the master's)
 * and are asked over TLS with SBX_REDIS_SENTINEL_TLS, in plain TCP otherwise (they answer
 * addresses, and a forged answer meets the master's certificate check).
 */
function sentinelOptions(env: Env, base: RedisOptions): RedisOptions {
  return {
    sentinels: env.SBX_REDIS_SENTINELS!.map(hostPort),
    name: env.SBX_REDIS_SENTINEL_NAME,
    enableTLSForSentinelMode: base.tls !== undefined,
    sentinelUsername: env.SBX_REDIS_SENTINEL_USERNAME,
    sentinelPassword: env.SBX_REDIS_SENTINEL_PASSWORD,
    sentinelTLS: env.SBX_REDIS_SENTINEL_TLS ? {} : undefined,
    // ioredis's own waits between rounds of the Sentinels grow to 1 s: as for a master, at least
    // twice a heartbeat (reconnectCapMs).
    sentinelRetryStrategy: (times) => Math.min(10 * times, reconnectCapMs(env)),
  };
}

/** What the connector says when a round of every Sentinel found no master (ioredis's SentinelConnector). */
const NO_SENTINEL_ANSWERED = /^All sentinels are unreachable\b/;

/**
 * ioredis asks the Sentinels round after round inside one connection attempt, so the attempt never
 * fails and maxRetriesPerRequest never counts: while no Sentinel answers (all down, cut off, or
 * refusing sbx's password) a command waited for ever, and the API held its requests instead of
 * answering 503 as it does when a standalone Redis is down. A fail-fast connection fails what it
 * holds at the end of each round that found no master, and goes on asking.
 */
function failWhileNoSentinelAnswers(client: Redis): void {
  const flushQueue = (client as unknown as { flushQueue?: (err: Error, opts: { offlineQueue: boolean; commandQueue: boolean }) => void }).flushQueue;
  if (typeof flushQueue !== 'function') throw new Error('ioredis has no flushQueue(): failWhileNoSentinelAnswers needs another way to fail queued commands');
  client.on('error', (err: Error) => {
    if (client.status !== 'connecting' || !NO_SENTINEL_ANSWERED.test(err.message)) return;
    flushQueue.call(client, new SentinelsUnreachableError(err.message), { offlineQueue: true, commandQueue: false });
  });
}

/** A command failed because a round of the Sentinels gave no master to connect to (isRedisOutage: not an answer from Redis). */
export class SentinelsUnreachableError extends Error {
  readonly code = 'ESENTINELS';
  constructor(detail: string) {
    super(`Redis is unreachable through its Sentinels: a round of them gave no master to connect to (${detail})`);
    this.name = 'SentinelsUnreachableError';
  }
}
