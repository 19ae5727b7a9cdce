/**
 * The job feeder when Redis applies its fetch of a queue entry (BullMQ's moveToActive) and the answer
 * is lost (Redis killed before answering, the link dropped): the worker's connection sends the fetch
 * again after reconnecting, and that takes the next entry. The first entry is then locked with the
 * fetch's token by nobody, and waited out its lock (10 s) and a stalled check before it ran.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { Queue } from 'bullmq';
import { moveToActive } from 'bullmq/dist/esm/scripts/moveToActive-11.js';
import pino from 'pino';
import { Registry } from 'prom-client';
import type { JobStore } from '../../../core/src/job-store.ts';
import { QUEUE_NAME, RedisKeys } from '../../../core/src/redis-keys.ts';
import { waitUntil } from '../../../test/harness/redis.ts';
import { useReplyLosingRedis } from '../../../test/harness/reply-losing-proxy.ts';
import type { JobRunner } from '../job-runner.ts';
import { HostCapacity, ObservedSlotPool } from './capacity.ts';
import { JobFeeder } from './job-feeder.ts';

const MiB = 1024 * 1024;
const IMAGE = 'registry.test/busybox:1';
// As a worker's connection (core/src/redis.ts, forBullMQ): waits out an outage; a command not answered is sent again on reconnecting.
const redis = useReplyLosingRedis({ maxRetriesPerRequest: null });
/** ioredis sends BullMQ's scripts by their SHA-1 (EVALSHA): the fetch's command holds it. */
const FETCH_SHA = createHash('sha1').update(moveToActive.content).digest('hex');

test('a fetch Redis applied but whose answer was lost leaves no entry locked by nobody: both entries run at once', { timeout: 60_000 }, async (t) => {
  const keys = new RedisKeys('lostfetch');
  const capacity = new HostCapacity(new ObservedSlotPool(4), 1024 * MiB, 4);
  const started: string[] = [];
  const runner: Pick<JobRunner, 'run'> = {
    async run(id, _priority, _placement, claimed) {
      capacity.imageReady(IMAGE);
      started.push(id);
      claimed?.();
    },
  };
  const shared = new Queue(QUEUE_NAME, { connection: redis.direct, prefix: keys.queuePrefix() });
  const feeder = new JobFeeder({
    workerId: 'host-a', connection: redis.viaProxy, redis: redis.direct, keys,
    store: { get: async () => null } as unknown as JobStore,
    images: { list: async () => [], holds: async () => true },
    runner, capacity, cacheAware: false, maxWaitMs: 600_000, liveMs: 60_000,
    logger: pino({ level: 'silent' }), registry: new Registry(),
  });
  const entry = (id: string) => ({ name: 'run', data: { id, image: IMAGE, memoryBytes: MiB }, opts: { jobId: id, priority: 1 } });
  try {
    await feeder.start();
    await shared.addBulk([entry('a0')]); // the fetch script is loaded: the lost answer below is a fetch's, not NOSCRIPT's
    await waitUntil(async () => started.includes('a0'), 5_000, 'the first job');
    const lost = redis.proxy.loseReplyTo(FETCH_SHA);
    await shared.addBulk([entry('a1'), entry('a2')]); // both waiting when the blocked fetch wakes
    await lost;
    assert.equal(redis.proxy.lost, 1, 'the fetch\'s answer was lost');
    const since = Date.now();
    // Before, a1 stayed locked with the lost fetch's token until its lock lapsed (10 s), then a stalled check put it back.
    await waitUntil(async () => started.includes('a1') && started.includes('a2'), 5_000, 'both jobs to run (the one taken by the lost fetch too)');
    t.diagnostic(`started ${started.join(', ')}; both within ${Date.now() - since} ms of the lost answer`);
  } finally {
    await feeder.close();
    await shared.close();
  }
});
