/**
 * The queue audit's look at claimed jobs (unlisted-claims.ts) against a real redis-server: a pulling
 * or running job of a tenant's active set that no live worker's running set names is settled as a
 * lost worker's when its worker is dead (queued again if its command never started, else
 * worker_lost), listed again in its worker's set when that worker is alive, and left alone when a
 * live worker's set names it or it is young. What it costs a pass in Redis commands is counted.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import pino from 'pino';
import { newJobId } from '../../core/src/job-id.ts';
import { settleLostJob } from '../../core/src/job-lifecycle.ts';
import { requeueEntryId } from '../../core/src/job-queue.ts';
import { newJobDocument, type JobDocument, type JobSpec } from '../../core/src/job-spec.ts';
import { JobStore } from '../../core/src/job-store.ts';
import { RedisKeys } from '../../core/src/redis-keys.ts';
import { useRedis } from '../../test/harness/use-redis.ts';
import { monitorRedis } from '../../test/harness/redis-monitor.ts';
import { lostJobRecovery } from './janitor.ts';
import { QueueAudit } from './queue-audit.ts';

const redis = useRedis();
const GRACE_MS = 60_000;
const LIVES = { jobTtlSeconds: 3600, activeTtlSeconds: 3600 + 600 + 3600 };
const silent = pino({ level: 'silent' });

function spec(id: string): JobSpec {
  return { id, tenant: 't', image: 'x/y:1', command: ['true'], entrypoint: null, env: {}, workdir: null, user: null, stdin: null, limits: { memoryBytes: 1, cpus: 1, pids: 1, timeoutMs: 1000, outputBytes: 1, diskBytes: 1, cpuTimeMs: null, openFiles: 1 }, network: 'none', labels: {}, registryAuth: null, createdAt: new Date().toISOString() } as JobSpec;
}

/** A job of tenant `t`'s active set, claimed by `worker` (the claim as JobRunner.run() sends it), then moved to `status`. */
async function claimed(store: JobStore, keys: RedisKeys, worker: string, status: 'pulling' | 'running', made = Date.now() - 2 * GRACE_MS, started = false): Promise<string> {
  const id = newJobId(made);
  const doc = newJobDocument(spec(id));
  assert.ok(await store.create(spec(id), doc));
  await store.redis.zadd(keys.tenantActive('t'), 1, id);
  const pulling: JobDocument = { ...doc, status: 'pulling', worker };
  assert.equal(await store.claim(pulling, started), 'ok');
  if (status === 'running') assert.equal(await store.transition({ ...pulling, status: 'running' }, ['pulling'], 'status'), 'ok');
  return id;
}

async function alive(keys: RedisKeys, worker: string, jobs: string[] = [], indexed = true): Promise<void> {
  const c = redis.client;
  await c.set(keys.worker(worker), JSON.stringify({ id: worker }), 'PX', 60_000);
  if (indexed) await c.zadd(keys.workers(), Date.now(), worker);
  if (jobs.length) await c.sadd(keys.workerJobs(worker), ...jobs);
}

const status = async (store: JobStore, id: string) => (await store.getDoc(id))!;

test('claimed jobs in no live worker\'s running set: a dead worker\'s are settled, a live worker\'s listed again, the rest left alone', async () => {
  const keys = new RedisKeys('unlisted1');
  const client = redis.client;
  const store = new JobStore(client, keys, 3600);
  const recovery = lostJobRecovery(client, keys, 1);
  const counted = { requeued: 0, lost: 0 };
  const metrics = { jobsRequeued: { inc: () => void counted.requeued++ }, jobsWorkerLost: { inc: () => void counted.lost++ } } as never;
  const audit = new QueueAudit({ redis: client, keys, queue: recovery.queue, workerId: 'auditor', everyMs: 1, graceMs: GRACE_MS, ...LIVES, logger: silent, store, recovery, metrics });
  try {
    // Dead workers: one gone from the index (reaped with an empty set, or stopped), one still in it with its set.
    const notStarted = await claimed(store, keys, 'dead/1', 'pulling');
    const startedPulling = await claimed(store, keys, 'dead/1', 'pulling', undefined, true);
    const running = await claimed(store, keys, 'dead/1', 'running');
    const inDeadSet = await claimed(store, keys, 'dead/2', 'running');
    await client.zadd(keys.workers(), Date.now() - 60_000, 'dead/2');
    await client.sadd(keys.workerJobs('dead/2'), inDeadSet);
    const young = await claimed(store, keys, 'dead/1', 'running', Date.now());
    // Live workers: one whose set lost an entry, one listing its job, one alive but not in the index.
    const unlistedLive = await claimed(store, keys, 'live/1', 'running');
    const listedLive = await claimed(store, keys, 'live/1', 'pulling');
    await alive(keys, 'live/1', [listedLive]);
    const unindexedLive = await claimed(store, keys, 'back/1', 'pulling');
    await alive(keys, 'back/1', [], false);

    assert.equal(await audit.pass(), 0, 'no queued job was on no queue');

    const requeued = await status(store, notStarted);
    assert.equal(requeued.status, 'queued', 'its command never started: queued again');
    assert.equal(requeued.attempts, 2);
    assert.equal(requeued.history?.[0]?.worker, 'dead/1');
    assert.ok(await recovery.queue.queue.getJob(requeueEntryId(notStarted, 2)), 'with its queue entry');
    for (const id of [startedPulling, running, inDeadSet]) {
      const doc = await status(store, id);
      assert.equal(doc.status, 'error', id);
      assert.equal(doc.error?.code, 'worker_lost', id);
    }
    assert.deepEqual(counted, { requeued: 1, lost: 3 });
    assert.equal((await status(store, young)).status, 'running', 'young: left alone');
    for (const [id, worker, s] of [[unlistedLive, 'live/1', 'running'], [listedLive, 'live/1', 'pulling'], [unindexedLive, 'back/1', 'pulling']] as const) {
      assert.equal((await status(store, id)).status, s, `${id}: a live worker's job is never settled here`);
      assert.equal(await client.sismember(keys.workerJobs(worker), id), 1, `${id}: in its worker's running set`);
    }

    await new Promise((r) => setTimeout(r, 5)); // the turn (everyMs 1) has lapsed
    assert.equal(await audit.pass(), 0);
    assert.deepEqual(counted, { requeued: 1, lost: 3 }, 'nothing settled twice');
  } finally {
    await recovery.close();
  }
});

test('a dead worker\'s job requeued and claimed by a live worker whose entry has not landed yet: listed, not settled', async () => {
  const keys = new RedisKeys('unlisted2');
  const client = redis.client;
  const store = new JobStore(client, keys, 3600);
  const recovery = lostJobRecovery(client, keys, 1);
  try {
    // Requeued by a janitor, then claimed by live/1 (attempt 2), whose set entry has not landed yet.
    const id = await claimed(store, keys, 'dead/1', 'pulling');
    await alive(keys, 'live/1');
    const audit = new QueueAudit({ redis: client, keys, queue: recovery.queue, workerId: 'auditor', everyMs: 1, graceMs: GRACE_MS, ...LIVES, logger: silent, store, recovery });
    const stale = await status(store, id);
    const requeued = (await settleLostJob(store, recovery, stale))!.doc;
    assert.equal(await store.claim({ ...requeued, status: 'pulling', worker: 'live/1' }, false), 'ok');
    await audit.pass();
    const doc = await status(store, id);
    assert.equal(doc.status, 'pulling');
    assert.equal(doc.worker, 'live/1');
    assert.equal(doc.attempts, 2);
    assert.equal(await client.sismember(keys.workerJobs('live/1'), id), 1, 'listed in its live worker\'s set');
  } finally {
    await recovery.close();
  }
});

test('cost: a claimed job listed by a live worker adds no command to a pass; each worker of the index adds two', async (t) => {
  const keys = new RedisKeys('unlisted3');
  const client = redis.client;
  const store = new JobStore(client, keys, 3600);
  const recovery = lostJobRecovery(client, keys, 1);
  const WORKERS = 5;
  const JOBS = 200;
  try {
    const byWorker = new Map<string, string[]>();
    for (let i = 0; i < JOBS; i++) {
      const worker = `live/${i % WORKERS}`;
      const id = await claimed(store, keys, worker, 'running');
      byWorker.set(worker, [...(byWorker.get(worker) ?? []), id]);
    }
    for (const [worker, jobs] of byWorker) await alive(keys, worker, jobs);
    const audit = new QueueAudit({ redis: client, keys, queue: recovery.queue, workerId: 'auditor', everyMs: 1, graceMs: GRACE_MS, ...LIVES, logger: silent, store, recovery });
    const sent: string[] = [];
    const monitor = await monitorRedis(redis.server.url, (c) => c.source !== 'lua' && sent.push(c.args[0]!.toLowerCase()));
    try {
      await audit.pass();
      await client.ping(); // MONITOR reports in order: everything of the pass has been seen once this is
      await new Promise((r) => setTimeout(r, 100));
    } finally {
      await monitor.stop();
    }
    const count = (name: string) => sent.filter((c) => c === name).length;
    t.diagnostic(`a pass over ${JOBS} running jobs of ${WORKERS} live workers: ${sent.length - 1} commands (hmget ${count('hmget')}, exists ${count('exists')}, smembers ${count('smembers')}, sismember ${count('sismember')})`);
    assert.equal(count('hmget'), JOBS, 'one read of each job\'s status, as before: no document read');
    assert.equal(count('smembers'), WORKERS);
    assert.equal(count('exists'), WORKERS);
    assert.equal(count('sismember') + count('sadd'), 0);
  } finally {
    await recovery.close();
  }
});
