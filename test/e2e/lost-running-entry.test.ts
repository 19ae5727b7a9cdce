/**
 * A job claimed by a worker whose running-set entry is missing (the claim and the entry are on
 * different Cluster nodes: the worker SIGKILLed between them, or Redis lost the entry's write while
 * keeping the claim: an AOF short of its last second, a failover to a lagging replica) still ends:
 * the queue audit (worker/src/queue-audit.ts) finds every pulling or running job of the tenants'
 * active sets whose worker is dead and settles it as a lost worker's (queued again if its command
 * never started, else error/worker_lost), and puts a live worker's back into its running set, where
 * that worker's own janitor settles it if its run there is over. Before, such a job stayed
 * non-final until its record expired (a day): no janitor reads a set that does not name it.
 *
 * The job is read from Redis here, never through the API: an API read settles a job whose worker is
 * dead by itself (api/src/job-access.ts), and the point is a job that nobody reads (a webhook client,
 * a dropped `sbx run`). The audit runs every 500 ms with a 1 s grace; heartbeats expire after 2.5 s.
 */
import assert from 'node:assert/strict';
import { beforeEach, test } from 'node:test';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { QUEUE_NAME, RedisKeys } from '../../core/src/redis-keys.ts';
import { JobStore } from '../../core/src/job-store.ts';
import type { JobDocument } from '../../core/src/job-spec.ts';
import { waitUntil } from '../harness/redis.ts';
import { useStack } from '../harness/use-stack.ts';
import type { ManagedProcess } from '../harness/stack.ts';

const e2e = useStack({ workers: 0, env: { SBX_QUEUE_AUDIT_MS: '500', SBX_QUEUE_AUDIT_GRACE_MS: '1000' } });
const keys = new RedisKeys();
const FINAL = new Set(['succeeded', 'failed', 'timeout', 'oom', 'cancelled', 'error']);
/** Heartbeat TTL (2.5 s) + the audit's grace and period + a worker's janitor period (5 s), with room for a busy host. */
const SETTLED_WITHIN_MS = 20_000;

async function withRedis<T>(use: (redis: Redis) => Promise<T>): Promise<T> {
  const redis = new Redis(e2e.stack.env.SBX_REDIS_URL!, { maxRetriesPerRequest: null });
  try {
    return await use(redis);
  } finally {
    redis.disconnect();
  }
}

/** The job's document as Redis holds it (not through the API, which would settle it on reading). */
async function recorded(redis: Redis, id: string): Promise<JobDocument> {
  const doc = await redis.hget(keys.jobState(id), 'doc');
  assert.ok(doc, `job ${id} has a record`);
  return JSON.parse(doc) as JobDocument;
}

let diagnostic: (message: string) => void = () => {};
beforeEach((t) => void (diagnostic = (m) => 'diagnostic' in t && t.diagnostic(m)));

async function settled(redis: Redis, id: string, what: string): Promise<JobDocument> {
  const started = Date.now();
  await waitUntil(async () => FINAL.has((await recorded(redis, id)).status), SETTLED_WITHIN_MS, what).catch(async (e: Error) => {
    throw new Error(`${e.message}; the job is still ${(await recorded(redis, id)).status}`);
  });
  const doc = await recorded(redis, id);
  diagnostic(`${what}: ${doc.status} after ${Date.now() - started} ms`);
  return doc;
}

/** A job that prints, then sleeps `seconds`; returns once it runs on `worker`. */
async function runningJob(worker: ManagedProcess, seconds: number): Promise<string> {
  const { api, stack } = e2e;
  const res = await api.submit({ image: stack.images.busybox, command: ['sh', '-c', `echo up; exec sleep ${seconds}`] });
  assert.equal(res.status, 202);
  await api.events(res.body.id, { until: (e) => e.event === 'stdout' });
  const doc = (await api.get(res.body.id)).body;
  assert.equal(doc.status, 'running', worker.log());
  return res.body.id;
}

const isUp = (w: ManagedProcess) => w.child.exitCode === null && w.child.signalCode === null;

async function stopAll(): Promise<void> {
  for (const w of e2e.stack.workers) if (isUp(w)) await w.kill('SIGTERM');
}

/** The one worker of the stack, started if there is not exactly one (the tests pass it on: a start costs seconds). */
async function soleWorker(): Promise<ManagedProcess> {
  const up = e2e.stack.workers.filter(isUp);
  if (up.length === 1) return up[0]!;
  await stopAll();
  return e2e.stack.startWorker();
}

test('a claim that landed for a worker that died before its running-set entry: the job is queued again and runs', { timeout: 60_000 }, async () => {
  await stopAll(); // no worker: the job stays queued until the claim below
  const { api, stack } = e2e;
  const res = await api.submit({ image: stack.images.busybox, command: ['echo', 'ran after all'] });
  assert.equal(res.status, 202);
  const id = res.body.id;
  await withRedis(async (redis) => {
    // The claim of a worker that is gone, exactly as JobRunner.run() sends it; its entry on the queue
    // completed (a worker completes it once its claim is decided), and no running-set entry.
    const store = new JobStore(redis, keys, 3600);
    const stored = (await store.get(id))!;
    assert.equal(await store.claim({ ...stored.doc, status: 'pulling', worker: 'gone-before-its-entry/1' }, false), 'ok');
    const shared = new Queue(QUEUE_NAME, { connection: redis, prefix: keys.queuePrefix() });
    try {
      assert.equal(await shared.remove(id), 1);
    } finally {
      await shared.close();
    }
    const auditor = await stack.startWorker();
    const doc = await settled(redis, id, 'a claimed job of a worker that never listed it');
    assert.equal(doc.status, 'succeeded', auditor.log());
    assert.equal(doc.attempts, 2, 'its second attempt ran');
    assert.equal(doc.history?.[0]?.worker, 'gone-before-its-entry/1');
    assert.equal(doc.history?.[0]?.error?.code, 'worker_lost');
  });
  assert.match(JSON.stringify((await api.get(id, true)).body), /ran after all/);
});

test('a live worker\'s running job whose running-set entry was lost ends as it should, its entry put back meanwhile', { timeout: 60_000 }, async () => {
  const worker = await soleWorker();
  const id = await runningJob(worker, 6); // long enough for the audit (every 500 ms) on a busy host
  const workerId = (await withRedis((r) => recorded(r, id))).worker!;
  await withRedis(async (redis) => {
    assert.equal(await redis.srem(keys.workerJobs(workerId), id), 1);
    await waitUntil(async () => (await redis.sismember(keys.workerJobs(workerId), id)) === 1 || FINAL.has((await recorded(redis, id)).status), 10_000, 'the entry back or the job ended');
    assert.equal((await recorded(redis, id)).status, 'running', 'the audit put its entry back while it ran');
    const doc = await settled(redis, id, 'a live worker\'s job that ran on');
    assert.equal(doc.status, 'succeeded', worker.log());
  });
});

test('a live worker\'s job whose end and running-set entry Redis lost: settled worker_lost, not running for ever', { timeout: 60_000 }, async () => {
  const worker = await soleWorker();
  const { api, stack } = e2e;
  const done = await api.submit({ image: stack.images.busybox, command: ['echo', 'done'] }, { wait: true });
  assert.equal(done.body.status, 'succeeded');
  const id = done.body.id;
  await withRedis(async (redis) => {
    // Redis back from a restart that lost the job's last writes: its end (and the release from its
    // tenant's active set that goes with it) and its running-set entry; the worker ran on meanwhile.
    const ended = await recorded(redis, id);
    const running: JobDocument = { ...ended, status: 'running', exitCode: null, signal: null, timings: { ...ended.timings, finishedAt: null } };
    const tenant = (await redis.hget(keys.jobState(id), 'tenant'))!;
    await redis.hset(keys.jobState(id), 'status', 'running', 'doc', JSON.stringify(running));
    await redis.persist(keys.jobState(id));
    await redis.zadd(keys.tenantActive(tenant), 1, id);
    assert.equal(await redis.sismember(keys.workerJobs(ended.worker!), id), 0);
    const doc = await settled(redis, id, 'a live worker\'s job whose end was lost');
    assert.equal(doc.status, 'error', worker.log());
    assert.equal(doc.error?.code, 'worker_lost');
  });
});

test('a worker SIGKILLed with a running job its running set lost: the job ends worker_lost', { timeout: 60_000 }, async () => {
  const victim = await soleWorker();
  const id = await runningJob(victim, 600);
  const worker = (await withRedis((r) => recorded(r, id))).worker!;
  await withRedis(async (redis) => {
    assert.equal(await redis.srem(keys.workerJobs(worker), id), 1, 'its running-set entry removed, as Redis losing that write would');
    const auditor = await e2e.stack.startWorker(); // the fleet that outlives the victim
    await victim.kill('SIGKILL');
    const doc = await settled(redis, id, 'the lost worker\'s unlisted running job');
    assert.equal(doc.status, 'error', auditor.log());
    assert.equal(doc.error?.code, 'worker_lost');
    assert.equal(doc.worker, worker);
  });
});
