/**
 * The janitor against a real redis-server: a worker is reaped only while it is still dead (its
 * heartbeat coming back in the middle of a reap keeps it in the index with its heartbeat), a dead
 * worker dropped from a listing (GET /v1/workers) still has its jobs settled, and what it settles is
 * counted (sbx_jobs_requeued_total, sbx_jobs_worker_lost_total).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { pino } from 'pino';
import { startRedis, type RunningRedis } from '../../test/harness/redis.ts';
import { JobAttempts } from '../../core/src/job-attempts.ts';
import { newJobDocument, type JobDocument, type JobSpec } from '../../core/src/job-spec.ts';
import { JobStore } from '../../core/src/job-store.ts';
import { createRegistry, workerMetrics } from '../../core/src/metrics.ts';
import type { RedisClient } from '../../core/src/redis.ts';
import { RedisKeys } from '../../core/src/redis-keys.ts';
import { WorkerDirectory, type WorkerInfo } from '../../core/src/worker-directory.ts';
import { Janitor, lostJobRecovery } from './janitor.ts';

let server: RunningRedis;
let redis: RedisClient;
let store: JobStore;
let directory: WorkerDirectory;
let recovery: ReturnType<typeof lostJobRecovery>;
const keys = new RedisKeys('jn');
const logger = pino({ level: 'silent' });
let n = 0;

before(async () => {
  server = await startRedis();
  redis = server.client();
  store = new JobStore(redis, keys, 3600);
  directory = new WorkerDirectory(redis, keys);
  recovery = lostJobRecovery(redis, keys, 1);
});
after(async () => {
  await recovery?.close();
  await server?.stop();
});

const info = (id: string): WorkerInfo => ({
  id, host: 'h', pid: 1, slotsTotal: 1, slotsFree: 1, runningJobs: [], cachedBytes: 0, images: [], cgroup: '', startedAt: new Date().toISOString(), lastHeartbeat: new Date().toISOString(),
});

/** A job claimed by `worker` (status pulling, in its running set), as a worker's claim leaves it. */
async function claimed(worker: string): Promise<JobDocument> {
  const id = `j_jn${++n}`;
  const spec = { id, tenant: 't', image: 'x/y:1', command: ['true'], entrypoint: null, env: {}, workdir: null, user: null, stdin: null, limits: { memoryBytes: 1, cpus: 1, pids: 1, timeoutMs: 1000, outputBytes: 1, diskBytes: 1, cpuTimeMs: null, openFiles: 1 }, network: 'none', labels: {}, registryAuth: null, createdAt: new Date().toISOString() } as JobSpec;
  const doc = newJobDocument(spec);
  assert.ok(await store.create(spec, doc));
  const mine = { ...doc, status: 'pulling' as const, worker };
  assert.equal(await store.transition(mine, ['queued'], 'status'), 'ok');
  await directory.addRunning(worker, id);
  return mine;
}

/** A worker that was in the index and whose heartbeat key has expired. */
async function deadWorker(id: string): Promise<void> {
  await directory.heartbeat(info(id), 60_000);
  await redis.del(keys.worker(id)); // as its TTL would
}

const inIndex = async (id: string) => (await redis.zscore(keys.workers(), id)) !== null;

test('a heartbeat that comes back while the janitor reaps a worker is kept, and the worker stays in the index', async () => {
  await deadWorker('w-back');
  const job = await claimed('w-back');
  // The worker's next heartbeat lands while the janitor is settling its jobs (between its look and its removal).
  const racingStore = new Proxy(store, {
    get(target, prop, receiver) {
      if (prop !== 'getDoc') return Reflect.get(target, prop, receiver);
      return async (id: string) => {
        await directory.heartbeat(info('w-back'), 60_000);
        return target.getDoc(id);
      };
    },
  });
  const janitor = new Janitor(redis, keys, racingStore, directory, logger, recovery);
  await janitor.reapDeadWorkers();
  assert.ok(await directory.isAlive('w-back'), 'the heartbeat written during the reap is still there');
  assert.ok(await inIndex('w-back'), 'the live worker is still in the index');
  assert.equal((await store.getDoc(job.id))?.status, 'queued', 'the job it held while it was dead was settled (queued again)');
});

test('a worker alive when the janitor looks is not touched: its running set is not settled', async () => {
  await directory.heartbeat(info('w-alive'), 60_000);
  const job = await claimed('w-alive');
  await new Janitor(redis, keys, store, directory, logger, recovery).reapDeadWorkers();
  assert.ok(await inIndex('w-alive'));
  assert.deepEqual(await directory.running('w-alive'), [job.id]);
  assert.equal((await store.getDoc(job.id))?.status, 'pulling');
});

test('a dead worker dropped from a listing (GET /v1/workers) before the janitor runs still has its jobs settled', async () => {
  await deadWorker('w-listed');
  const job = await claimed('w-listed');
  assert.ok(!(await directory.list()).some((w) => w.id === 'w-listed'), 'a dead worker is not listed');
  await new Janitor(redis, keys, store, directory, logger, recovery).reapDeadWorkers();
  assert.equal((await store.getDoc(job.id))?.status, 'queued', 'the janitor found the dead worker and queued its job again');
  assert.ok(!(await inIndex('w-listed')), 'once settled, the dead worker leaves the index');
  assert.deepEqual(await directory.running('w-listed'), []);
});

test('what the janitor settles is counted: sbx_jobs_requeued_total, sbx_jobs_worker_lost_total', async () => {
  const registry = createRegistry('worker');
  const metrics = workerMetrics(registry);
  await deadWorker('w-count');
  await claimed('w-count'); // command not started: queued again
  const started = await claimed('w-count');
  assert.ok(await new JobAttempts(redis, keys).markStarted(started.id, 1)); // command started: worker_lost
  await new Janitor(redis, keys, store, directory, logger, recovery, metrics).reapDeadWorkers();
  assert.equal((await store.getDoc(started.id))?.error?.code, 'worker_lost');
  const value = async (name: string) => (await registry.getSingleMetric(name)?.get())?.values.reduce((s, v) => s + v.value, 0);
  assert.equal(await value('sbx_jobs_requeued_total'), 1);
  assert.equal(await value('sbx_jobs_worker_lost_total'), 1);
});

test('a LIVE worker\'s job that Redis shows as its own after it stopped running it (writes lost in a restart) is settled; held ones are not', async () => {
  await directory.heartbeat(info('w-lostwrites'), 60_000);
  const orphan = await claimed('w-lostwrites'); // the claim survived a restart; what the worker wrote after it did not
  const held = await claimed('w-lostwrites'); // still running here
  const janitor = new Janitor(redis, keys, store, directory, logger, recovery);
  await janitor.reapDeadWorkers();
  assert.equal((await store.getDoc(orphan.id))?.status, 'pulling', 'a live worker is never reaped: without more, the job stays pulling forever');
  assert.equal(await janitor.settleOwnOrphans('w-lostwrites', new Set([held.id])), 1);
  assert.equal((await store.getDoc(orphan.id))?.status, 'queued', 'its command never started: queued again');
  assert.equal((await store.getDoc(held.id))?.status, 'pulling', 'a job the worker holds is untouched');
  assert.deepEqual(await directory.running('w-lostwrites'), [held.id]);
});
