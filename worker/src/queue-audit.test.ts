/**
 * The queue audit (queue-audit.ts) against a real redis-server and real BullMQ queues: a job queued
 * past the grace with its entry lost is queued again, once; every job that has an entry somewhere
 * (shared queue, a host's queue, a hand-off deadline, a requeue on its way), or is young, or is not
 * queued, is left alone; one worker of the fleet audits per interval.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Queue } from 'bullmq';
import type { Cluster } from 'ioredis';
import pino from 'pino';
import { newJobId } from '../../core/src/job-id.ts';
import { JobQueue, requeueEntryId } from '../../core/src/job-queue.ts';
import { newJobDocument, type JobSpec } from '../../core/src/job-spec.ts';
import { JobStore } from '../../core/src/job-store.ts';
import { hostQueueName, RedisKeys } from '../../core/src/redis-keys.ts';
import { useRedis } from '../../test/harness/use-redis.ts';
import { startRedisCluster } from '../../test/harness/redis-cluster.ts';
import type { Env } from '../../core/src/config.ts';
import { connectRedis, type RedisClient } from '../../core/src/redis.ts';
import { QueueAudit } from './queue-audit.ts';
import { TenantQuotas } from '../../core/src/tenant-quota.ts';

const redis = useRedis();
const GRACE_MS = 60_000;
/** SBX_JOB_TTL_SECONDS of these tests, and the active sets' life that goes with it. */
const LIVES = { jobTtlSeconds: 3600, activeTtlSeconds: 3600 + 600 + 3600 };

/** What the audit settles claimed jobs with (unlisted-claims.ts): the records, no requeues. */
function claimsOf(client: RedisClient, keys: RedisKeys) {
  return { store: new JobStore(client, keys, 3600), recovery: null };
}

function spec(id: string, tenant = 't'): JobSpec {
  return { id, tenant, image: 'x/y:1', command: ['true'], entrypoint: null, env: {}, workdir: null, user: null, stdin: null, limits: { memoryBytes: 1, cpus: 1, pids: 1, timeoutMs: 1000, outputBytes: 1, diskBytes: 1, cpuTimeMs: null, openFiles: 1 }, network: 'none', labels: {}, registryAuth: null, createdAt: new Date().toISOString() } as JobSpec;
}

test('jobs queued past the grace on no queue are queued again, once; jobs with an entry anywhere, young ones and running ones are left alone', async () => {
  const keys = new RedisKeys('audit1');
  const client = redis.client;
  const store = new JobStore(client, keys, 3600);
  const queue = new JobQueue(client, keys);
  const hostQueue = new Queue(hostQueueName('w1'), { connection: client, prefix: keys.queuePrefix() });
  const requeued: string[] = [];
  const audit = (workerId: string) => new QueueAudit({ redis: client, keys, queue, ...claimsOf(client, keys), workerId, everyMs: 1, graceMs: GRACE_MS, ...LIVES, logger: pino({ level: 'silent' }), requeued: { inc: () => void requeued.push(workerId) } });
  const old = Date.now() - 2 * GRACE_MS;
  /** A job record as admission and submission leave it (in its tenant's active set), `status` as given. */
  const job = async (made: number, status: 'queued' | 'running' = 'queued', attempts = 1, tenant = 't') => {
    const id = newJobId(made);
    const doc = { ...newJobDocument(spec(id, tenant)), attempts };
    assert.ok(await store.create(spec(id, tenant), doc));
    if (status !== 'queued') await client.hset(keys.jobState(id), 'status', status);
    if (attempts > 1) await client.hset(keys.jobState(id), 'attempt', String(attempts));
    await client.zadd(keys.tenantActive(tenant), 1, id);
    return id;
  };
  try {
    await client.zadd(keys.workers(), Date.now(), 'w1');
    const lost = await job(old);
    const lostOtherTenant = await job(old, 'queued', 1, 'u');
    const lostRequeue = await job(old, 'queued', 2);
    const young = await job(Date.now());
    const running = await job(old, 'running');
    const onShared = await job(old);
    await queue.add(onShared, 5);
    const requeuedOnShared = await job(old, 'queued', 2);
    await queue.requeue(requeuedOnShared, 2);
    const onHost = await job(old);
    await hostQueue.add('run', { id: onHost }, { jobId: onHost });
    const handedOff = await job(old);
    await client.zadd(keys.handoffs(), Date.now(), `w2 ${handedOff} 1`);
    const requeueOnItsWay = await job(old, 'queued', 2);
    await client.zadd(keys.requeuesPending(), Date.now(), requeueOnItsWay);

    assert.equal(await audit('a').pass(), 3);
    assert.ok(await queue.queue.getJob(lost), 'the lost job is on the shared queue');
    assert.ok(await queue.queue.getJob(lostOtherTenant), 'another tenant\'s too');
    assert.ok(await queue.queue.getJob(requeueEntryId(lostRequeue, 2)), 'a requeued attempt under its own entry id');
    assert.ok((await queue.position(lost))! < (await queue.position(onShared))!, 'ahead of the jobs waiting: it has waited');
    for (const id of [young, running, handedOff, requeueOnItsWay]) assert.equal(await queue.queue.getJob(id), undefined, `${id} left alone`);
    assert.equal(await queue.queue.getJob(onHost), undefined, 'the one on a host\'s queue is not put on the shared queue too');
    assert.equal((await queue.queue.getJob(onShared))?.opts.priority, 5, 'the one on the shared queue keeps its entry');

    await new Promise((r) => setTimeout(r, 5)); // the turn (everyMs 1) has lapsed
    assert.equal(await audit('b').pass(), 0, 'found again on the next pass: not queued twice');
    assert.deepEqual(requeued, ['a', 'a', 'a']);
  } finally {
    await Promise.all([queue.close(), hostQueue.close()]);
  }
});

test('one worker of the fleet audits per interval', async () => {
  const keys = new RedisKeys('audit2');
  const queue = new JobQueue(redis.client, keys);
  try {
    const audits = ['w1', 'w2', 'w3'].map((workerId) => new QueueAudit({ redis: redis.client, keys, queue, ...claimsOf(redis.client, keys), workerId, everyMs: 60_000, graceMs: GRACE_MS, ...LIVES, logger: pino({ level: 'silent' }) }));
    const passes = await Promise.all(audits.map((a) => a.pass()));
    assert.deepEqual(passes.filter((p) => p !== null), [0], 'one pass, by one worker');
  } finally {
    await queue.close();
  }
});

test('on a Redis Cluster every master\'s tenants are walked', { timeout: 60_000 }, async () => {
  const cluster = await startRedisCluster();
  let client: RedisClient | undefined;
  let queue: JobQueue | undefined;
  try {
    client = connectRedis({ SBX_REDIS_URL: 'redis://127.0.0.1:6379', SBX_REDIS_CLUSTER_NODES: cluster.nodes } as unknown as Env, 'audit-test', { forBullMQ: true });
    client.on('error', () => {});
    const keys = new RedisKeys('audit3');
    const store = new JobStore(client, keys, 3600);
    queue = new JobQueue(client, keys);
    // Tenants whose keys hash to different slots, so to different masters of three.
    const tenants = Array.from({ length: 12 }, (_, i) => `tenant-${i}`);
    const ids: string[] = [];
    for (const tenant of tenants) {
      const id = newJobId(Date.now() - 2 * GRACE_MS);
      assert.ok(await store.create(spec(id, tenant), newJobDocument(spec(id, tenant))));
      await client.zadd(keys.tenantActive(tenant), 1, id);
      ids.push(id);
    }
    const holding = await Promise.all((client as Cluster).nodes('master').map(async (n) => (await n.dbsize()) > 0));
    assert.ok(holding.filter(Boolean).length > 1, `the tenants' keys are on ${holding.filter(Boolean).length} masters`);
    const audit = new QueueAudit({ redis: client, keys, queue, ...claimsOf(client, keys), workerId: 'w1', everyMs: 60_000, graceMs: GRACE_MS, ...LIVES, logger: pino({ level: 'silent' }) });
    assert.equal(await audit.pass(), tenants.length, 'every tenant\'s lost job queued again');
    for (const id of ids) assert.ok(await queue.queue.getJob(id), `${id} on the shared queue`);
  } finally {
    await queue?.close();
    client?.disconnect();
    await cluster.stop();
  }
});

test('a queued job whose record has little life left is given a full one again, and so is its active set; a running one is not renewed', async () => {
  const keys = new RedisKeys('audit4');
  const client = redis.client;
  const store = new JobStore(client, keys, LIVES.jobTtlSeconds);
  const queue = new JobQueue(client, keys);
  try {
    const made = async (status: 'queued' | 'running') => {
      const id = newJobId(Date.now() - 2 * GRACE_MS);
      assert.ok(await store.create(spec(id), newJobDocument(spec(id))));
      await queue.add(id, 1); // on the queue: nothing to queue again
      if (status !== 'queued') await client.hset(keys.jobState(id), 'status', status);
      await client.zadd(keys.tenantActive('t'), 1, id);
      // Waited in the queue until its record nearly ran out (and its tenant stopped submitting).
      for (const k of [keys.jobState(id), keys.jobEvents(id), keys.tenantActive('t')]) await client.pexpire(k, 10_000);
      return id;
    };
    const queued = await made('queued');
    const running = await made('running');
    const audit = new QueueAudit({ redis: client, keys, queue, ...claimsOf(client, keys), workerId: 'w1', everyMs: 1000, graceMs: GRACE_MS, ...LIVES, logger: pino({ level: 'silent' }) });
    assert.equal(await audit.pass(), 0);
    const life = LIVES.jobTtlSeconds + 1 + 3600; // SBX_JOB_TTL_SECONDS + its timeout (1 s) + 1 h: as at its creation
    for (const k of [keys.jobState(queued), keys.jobEvents(queued)]) {
      const ttl = await client.ttl(k);
      assert.ok(ttl > life - 5 && ttl <= life, `${k}: ${ttl} s left (before: 10, then the job was gone unrun and unreported)`);
    }
    assert.ok((await client.ttl(keys.jobState(running))) <= 10, 'a running job\'s record is its worker\'s to keep');
    const setTtl = await client.ttl(keys.tenantActive('t'));
    assert.ok(setTtl > LIVES.activeTtlSeconds - 5, `the active set: ${setTtl} s left`);
  } finally {
    await queue.close();
  }
});

test('members of an active set whose job ended or whose record is gone leave it; queued and running ones stay', async () => {
  const keys = new RedisKeys('audit5');
  const client = redis.client;
  const store = new JobStore(client, keys, LIVES.jobTtlSeconds);
  const queue = new JobQueue(client, keys);
  try {
    const old = Date.now() - 2 * GRACE_MS;
    const member = async (status: 'queued' | 'running' | 'succeeded' | 'gone', made = old) => {
      const id = newJobId(made);
      assert.ok(await store.create(spec(id), newJobDocument(spec(id))));
      await queue.add(id, 1);
      if (status === 'gone') await client.del(keys.jobState(id), keys.jobEvents(id));
      else if (status !== 'queued') await client.hset(keys.jobState(id), 'status', status);
      await client.zadd(keys.tenantActive('t'), 17, id);
      return id;
    };
    const queued = await member('queued');
    const running = await member('running');
    const ended = await member('succeeded');
    const expired = await member('gone');
    const young = await member('gone', Date.now()); // may be between its admission and its record
    const audit = new QueueAudit({ redis: client, keys, queue, ...claimsOf(client, keys), workerId: 'w1', everyMs: 1000, graceMs: GRACE_MS, ...LIVES, logger: pino({ level: 'silent' }) });
    await audit.pass();
    const left = await client.zrange(keys.tenantActive('t'), 0, -1);
    assert.deepEqual(left.sort(), [queued, running, young].sort(), `before: ${ended} and ${expired} stayed, raising the tenant's next priorities`);
  } finally {
    await queue.close();
  }
});

test('a pass walks the tenants admission listed, not the keyspace: one walk of it an hour fleet-wide, for tenants no admission listed', async () => {
  const keys = new RedisKeys('audit6');
  const client = redis.client;
  const store = new JobStore(client, keys, 3600);
  const queue = new JobQueue(client, keys);
  const quotas = new TenantQuotas(client, keys, { activeTtlSeconds: LIVES.activeTtlSeconds });
  const scans = async () => Number(/cmdstat_scan:calls=(\d+)/.exec(await client.info('commandstats'))?.[1] ?? 0);
  const audit = (workerId: string) => new QueueAudit({ redis: client, keys, queue, ...claimsOf(client, keys), workerId, everyMs: 1, graceMs: GRACE_MS, ...LIVES, logger: pino({ level: 'silent' }) });
  const lostJob = async (tenant: string, admitted: boolean) => {
    const id = newJobId(Date.now() - 2 * GRACE_MS);
    assert.ok(await store.create(spec(id, tenant), newJobDocument(spec(id, tenant))));
    if (admitted) await quotas.admit(tenant, id, null);
    else await client.zadd(keys.tenantActive(tenant), 1, id); // as an API of an older version leaves it: not listed
    return id;
  };
  try {
    // Other keys in the keyspace: job records, as every tenant's jobs leave them for a day.
    for (let i = 0; i < 20_000; i += 2000) {
      const pipe = client.pipeline();
      for (let j = i; j < i + 2000; j++) pipe.set(`audit6:{job:j_${j}}:state`, 'x');
      await pipe.exec();
    }
    const unlisted = await lostJob('old-api', false);
    assert.equal(await audit('a').pass(), 1, 'the first pass walks the keyspace and finds the unlisted tenant\'s lost job');
    assert.ok(await queue.queue.getJob(unlisted));
    const lost = [await lostJob('team-a', true), await lostJob('team-b', true), await lostJob('old-api', false)];
    await new Promise((r) => setTimeout(r, 5)); // the turn (everyMs 1) has lapsed
    const before = await scans();
    assert.equal(await audit('b').pass(), 3, 'admitted tenants, and the one the walk found, are audited');
    const walked = (await scans()) - before;
    assert.equal(walked, 0, `a pass within the hour scanned the keyspace (${walked} SCAN calls for ${await client.dbsize()} keys)`);
    for (const id of lost) assert.ok(await queue.queue.getJob(id), `${id} on the shared queue`);
  } finally {
    await queue.close();
  }
});
