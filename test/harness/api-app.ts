/**
 * The API app in-process against a real redis-server, for route tests through app.request().
 */
import { loadConfig } from '../../core/src/config.ts';
import { JobQueue } from '../../core/src/job-queue.ts';
import { JobStore } from '../../core/src/job-store.ts';
import { createLogger } from '../../core/src/logger.ts';
import { apiMetrics, createRegistry } from '../../core/src/metrics.ts';
import { connectRedis } from '../../core/src/redis.ts';
import { RedisKeys } from '../../core/src/redis-keys.ts';
import { WorkerDirectory } from '../../core/src/worker-directory.ts';
import { secretBoxFromEnv } from '../../core/src/secrets/secret-box.ts';
import { createApp } from '../../api/src/app.ts';
import type { JobDocument } from '../../core/src/job-spec.ts';
import type { AppDeps } from '../../api/src/deps.ts';
import { JobEventsHub } from '../../api/src/job-events-hub.ts';
import { TenantPlaces } from '../../api/src/tenant-places.ts';
import { SubmitPlacement } from '../../api/src/submit-placement.ts';
import { after, before } from 'node:test';
import { startRedis, type RunningRedis } from './redis.ts';

export function createTestApp(redisServer: RunningRedis, env: Record<string, string> = {}) {
  const config = loadConfig({ SBX_REDIS_URL: redisServer.url, SBX_LOG_LEVEL: 'silent', ...env });
  const keys = new RedisKeys(config.env.SBX_REDIS_PREFIX);
  const redis = connectRedis(config.env, 'api-test');
  const sub = connectRedis(config.env, 'api-test-sub');
  for (const c of [redis, sub]) c.on('error', () => {}); // refused connections are what some tests are about
  const registry = createRegistry('api');
  const queue = new JobQueue(redis, keys);
  const metrics = apiMetrics(registry);
  const logger = createLogger('api-test', 'silent');
  const deps: AppDeps = {
    config, keys, redis, registry, queue, metrics, logger,
    store: new JobStore(redis, keys, config.env.SBX_JOB_TTL_SECONDS, secretBoxFromEnv(config.env)),
    placement: new SubmitPlacement(queue, redis, redis, keys, config.env, metrics, logger),
    hub: new JobEventsHub(sub),
    streams: new TenantPlaces('streams'),
    requests: new TenantPlaces('requests'),
    workers: new WorkerDirectory(redis, keys),
  };
  const app = createApp(deps);
  return {
    app,
    deps,
    async close() {
      await deps.placement.close();
      await deps.queue.close();
      await deps.store.close();
      await deps.hub.close();
      redis.disconnect();
    },
  };
}

export type TestApp = ReturnType<typeof createTestApp>;

/**
 * The queued job `doc` as a live worker (`w-test`, heartbeating) holding it would make it: claimed,
 * then running (attempt 1). Returns the running document.
 */
export async function startAsWorker(deps: AppDeps, doc: JobDocument): Promise<JobDocument> {
  const now = new Date().toISOString();
  await deps.workers.heartbeat({ id: 'w-test', host: 'test', pid: process.pid, slotsTotal: 1, slotsFree: 0, runningJobs: [doc.id], cachedBytes: 0, images: [], cgroup: '', startedAt: now, lastHeartbeat: now }, 600_000);
  const pulling = { ...doc, status: 'pulling' as const, worker: 'w-test' };
  if ((await deps.store.claim(pulling, false)) !== 'ok') throw new Error(`job ${doc.id} could not be claimed`);
  const running = { ...pulling, status: 'running' as const };
  if ((await deps.store.transition(running, ['pulling'], 'status')) !== 'ok') throw new Error(`job ${doc.id} could not be moved to running`);
  return running;
}

/**
 * A route test's usual setup in one line: a private redis-server and the app on it, started in
 * before() and closed in after() of the enclosing suite (or file).
 */
export function useTestApp(env: Record<string, string> = {}): { readonly app: TestApp['app']; readonly deps: TestApp['deps']; readonly redis: RunningRedis } {
  let redis: RunningRedis | null = null;
  let t: TestApp | null = null;
  before(async () => {
    redis = await startRedis();
    t = createTestApp(redis, env);
  });
  after(async () => {
    await t?.close();
    await redis?.stop();
  });
  const started = <T>(v: T | null): T => {
    if (v === null) throw new Error('the test app is not started yet: use it inside a test or a hook');
    return v;
  };
  return {
    get app() {
      return started(t).app;
    },
    get deps() {
      return started(t).deps;
    },
    get redis() {
      return started(redis);
    },
  };
}
