/**
 * API process edge: config → Redis → HTTP server → graceful shutdown. Stateless: run as many
 * copies as needed against the same Redis.
 */
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { ConfigError, loadConfig } from '../../core/src/config.ts';
import { JobQueue } from '../../core/src/job-queue.ts';
import { JobStore } from '../../core/src/job-store.ts';
import { exitOnFatalErrors } from '../../core/src/fatal-errors.ts';
import { createLogger } from '../../core/src/logger.ts';
import { apiMetrics, createRegistry } from '../../core/src/metrics.ts';
import { connectRedis } from '../../core/src/redis.ts';
import { guardEvictionPolicy } from '../../core/src/redis-eviction.ts';
import { RedisKeys } from '../../core/src/redis-keys.ts';
import { WorkerDirectory } from '../../core/src/worker-directory.ts';
import { secretBoxFromEnv } from '../../core/src/secrets/secret-box.ts';
import { createApp } from './app.ts';
import { injectWebSockets } from './routes/jobs-attach.ts';
import { JobEventsHub } from './job-events-hub.ts';
import { TenantPlaces } from './tenant-places.ts';
import { SubmitPlacement } from './submit-placement.ts';
import { anonymousListenProblem } from './listen-policy.ts';
import { createApiServer } from './http-server.ts';

function main(): void {
  let config;
  try {
    config = loadConfig();
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`sbx-api: ${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
  const env = config.env;
  const refusal = anonymousListenProblem(env);
  if (refusal) {
    process.stderr.write(`sbx-api: ${refusal}\n`);
    process.exit(2);
  }
  const logger = createLogger('sbx-api', env.SBX_LOG_LEVEL);
  exitOnFatalErrors(logger);
  const keys = new RedisKeys(env.SBX_REDIS_PREFIX);
  const redis = connectRedis(env, 'api');
  const sub = connectRedis(env, 'api-sub');
  // BullMQ's Queues on a connection of their own: they define ~50 scripts on theirs, and ioredis copies
  // every script of a connection into each pipeline()/multi() made on it (~0.2 ms of CPU each time).
  const queueRedis = connectRedis(env, 'api-queue');
  const registry = createRegistry('api');
  const queue = new JobQueue(queueRedis, keys);
  const metrics = apiMetrics(registry);
  const stopping = new AbortController();
  // An evicting Redis loses jobs silently: refused at start (exit 2), logged on a later reconnect.
  let redisChecked = false;
  void guardEvictionPolicy(redis, logger, 'sbx-api', env.SBX_HEARTBEAT_MS).then(() => (redisChecked = true));
  const deps = {
    config, logger, redis, keys, registry, queue, metrics, shutdown: stopping.signal,
    store: new JobStore(redis, keys, env.SBX_JOB_TTL_SECONDS, secretBoxFromEnv(env), queueRedis), // seals registryAuth
    placement: new SubmitPlacement(queue, queueRedis, redis, keys, env, metrics, logger.child({ component: 'placement' })),
    hub: new JobEventsHub(sub),
    streams: new TenantPlaces('streams'),
    requests: new TenantPlaces('requests'),
    workers: new WorkerDirectory(redis, keys),
    redisChecked: () => redisChecked,
  };
  redis.on('error', (err) => logger.warn({ err: err.message }, 'redis connection error'));
  sub.on('error', (err) => logger.warn({ err: err.message }, 'redis subscriber connection error'));
  queueRedis.on('error', (err) => logger.warn({ err: err.message }, 'redis queue connection error'));
  // ?wait=true jobs name this inbox as their waiter (no SUBSCRIBE per job); until Redis confirms it, waits subscribe per job.
  deps.hub.keepInbox(keys.apiInbox(randomBytes(8).toString('hex')), (err) => logger.warn({ err: err.message }, 'cannot subscribe the API inbox yet (tried again once Redis is back); meanwhile ?wait=true subscribes per job'));
  if (env.SBX_API_KEYS.length === 0) logger.warn({ host: env.SBX_API_HOST }, 'no SBX_API_KEYS configured: the API is open to anyone who can reach it');

  const app = createApp(deps);
  const server = createApiServer(app.fetch, env, logger);
  server.listen(env.SBX_API_PORT, env.SBX_API_HOST, () => {
    const info = server.address() as AddressInfo;
    logger.info({ url: `http://${info.address.includes(':') ? `[${info.address}]` : info.address}:${info.port}` }, 'sbx API listening');
  });
  injectWebSockets(app, server); // GET /v1/jobs/{id}/attach
  server.on('error', (err) => {
    logger.fatal({ err }, 'cannot listen');
    process.exit(1);
  });

  const stop = async (signal: string) => {
    if (stopping.signal.aborted) return;
    logger.info({ signal }, 'shutting down');
    setTimeout(() => process.exit(1), 5000).unref(); // Redis down: do not hang on the way out
    // No new connections; the requests in flight get their answers before Redis closes: waits answer
    // 202 with the job as it stands, event streams end (resumed elsewhere with Last-Event-ID).
    const drained = new Promise<void>((resolve) => server.close(() => resolve()));
    stopping.abort();
    server.closeIdleConnections();
    await Promise.race([drained, new Promise((r) => setTimeout(r, 3000).unref())]);
    await deps.placement.close().catch(() => {});
    await deps.queue.close().catch(() => {});
    await deps.store.close().catch(() => {});
    await deps.hub.close();
    redis.disconnect();
    queueRedis.disconnect();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

main();
