/**
 * BullMQ's queues stay off the store's own connection (issue 13: CPU per job). BullMQ defines ~50
 * scripts on the connection it is given, and ioredis copies every script of a connection into each
 * pipeline()/multi() made on it (0.15-0.45 ms of CPU each instead of ~0.01 ms). Real redis-server.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startRedis, type RunningRedis } from '../../test/harness/redis.ts';
import { JobQueue } from './job-queue.ts';
import { newJobDocument, type JobSpec } from './job-spec.ts';
import { JobStore } from './job-store.ts';
import type { RedisClient } from './redis.ts';
import { RedisKeys } from './redis-keys.ts';

let server: RunningRedis;
let redis: RedisClient;
let queueRedis: RedisClient;
const keys = new RedisKeys('conn');

/** The scripts defined on a connection (ioredis keeps them in scriptsSet). */
const scripts = (c: RedisClient) => Object.keys((c as unknown as { scriptsSet: Record<string, unknown> }).scriptsSet);

before(async () => {
  server = await startRedis();
  redis = server.client();
  queueRedis = server.client();
});
after(async () => {
  redis?.disconnect();
  queueRedis?.disconnect();
  await server?.stop();
});

test("a job with a callbackUrl ends: its webhook is queued over the queue connection, no BullMQ script lands on the store's", async () => {
  const store = new JobStore(redis, keys, 3600, null, queueRedis);
  const id = 'j_conn1';
  const spec = { id, tenant: 't', image: 'x/y:1', command: ['true'], entrypoint: null, env: {}, workdir: null, user: null, stdin: null, limits: { memoryBytes: 1, cpus: 1, pids: 1, timeoutMs: 1000, outputBytes: 1, diskBytes: 1, cpuTimeMs: null, openFiles: 1 }, network: 'none', labels: {}, registryAuth: null, callbackUrl: 'https://hooks.example/x', createdAt: new Date().toISOString() } as JobSpec;
  const doc = newJobDocument(spec);
  assert.ok(await store.create(spec, doc));
  await redis.zadd(keys.tenantActive('t'), Date.now(), id); // counted against the quota, as admission leaves it
  const ownScripts = scripts(redis);
  const final = { ...doc, status: 'succeeded' as const };
  assert.equal(await store.transition(final, ['queued'], 'exit', 't'), 'ok');
  assert.deepEqual(scripts(redis), ownScripts, "BullMQ's scripts were defined on the store's own connection");
  assert.ok(scripts(queueRedis).length > 20, "BullMQ's scripts are on the queue connection");
  assert.equal(await redis.exists(`${keys.queuePrefix()}:webhooks:${id}-1`), 1, 'the webhook is queued');
  assert.equal(await redis.zscore(keys.tenantActive('t'), id), null, 'the quota is released with the tenant given');
  await store.close();
});

test('queue positions are read without a pipeline on the queue connection, in order, null once not waiting', async () => {
  const queue = new JobQueue(queueRedis, keys);
  await queue.add('j_pos1', 3);
  await queue.add('j_pos2', 1);
  const client = queueRedis as unknown as { pipeline: () => unknown };
  const original = client.pipeline;
  let pipelines = 0;
  client.pipeline = function (this: unknown, ...args: unknown[]) {
    pipelines++;
    return (original as (...a: unknown[]) => unknown).apply(this, args);
  };
  try {
    assert.deepEqual(await queue.positions(['j_pos1', 'j_pos2', 'j_none']), [2, 1, null]);
  } finally {
    client.pipeline = original;
  }
  assert.equal(pipelines, 0, 'a pipeline() on the queue connection copies its ~50 BullMQ scripts');
  await queue.close();
});
