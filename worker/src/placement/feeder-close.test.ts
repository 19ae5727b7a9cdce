/**
 * A worker that stops cleanly (JobFeeder.close(), at SIGTERM) leaves no key of its own BullMQ queue:
 * what waits on it goes back to the shared queue (a worker with room takes it at once, rather than
 * after the hand-off deadline), then the queue's keys go. Before, they stayed for ever
 * (`{<p>}:jobs.host.<id>.<tag>:meta`, `:events`, `:id`…, no TTL). Real redis-server, real BullMQ.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import pino from 'pino';
import { Registry } from 'prom-client';
import type { JobStore } from '../../../core/src/job-store.ts';
import { HostQueues } from '../../../core/src/placement/host-queues.ts';
import { hostQueueName, QUEUE_NAME, RedisKeys } from '../../../core/src/redis-keys.ts';
import { useRedis } from '../../../test/harness/use-redis.ts';
import { waitUntil } from '../../../test/harness/redis.ts';
import type { JobRunner } from '../job-runner.ts';
import { HostCapacity, ObservedSlotPool } from './capacity.ts';
import { JobFeeder } from './job-feeder.ts';

const MiB = 1024 * 1024;
const IMAGE = 'registry.test/busybox:1';
const redis = useRedis();

test("a worker's clean stop sends what waits on its own queue to the shared queue and removes the queue's keys", { timeout: 30_000 }, async () => {
  const keys = new RedisKeys('feederclose');
  // The feeder's own connection, as a worker's BullMQ one (closed gracefully at the end).
  const c = new Redis(redis.server.url, { maxRetriesPerRequest: null });
  const capacity = new HostCapacity(new ObservedSlotPool(1), 1024 * MiB, 1);
  const started: string[] = [];
  const runner: Pick<JobRunner, 'run'> = {
    async run(id) {
      started.push(id);
    },
  };
  const shared = new Queue(QUEUE_NAME, { connection: c, prefix: keys.queuePrefix() });
  const api = new HostQueues(c, c, keys, 600_000);
  const feeder = new JobFeeder({
    workerId: 'host-stop', connection: c, redis: c, keys,
    store: { get: async () => null } as unknown as JobStore,
    images: { list: async () => [], holds: async () => true },
    runner, capacity, cacheAware: false, maxWaitMs: 600_000, liveMs: 60_000,
    logger: pino({ level: 'silent' }), registry: new Registry(),
  });
  const hostKeys = async () => (await c.keys(`${keys.queuePrefix()}:${hostQueueName('host-stop')}:*`)).sort();
  try {
    // Its consumers are up (their keys made) but take nothing: the job placed here is still waiting
    // on this worker's own queue when it stops (as one placed while its slots were busy).
    await feeder.pause();
    await feeder.start();
    await api.handOff('host-stop', { id: 'j_placed', image: IMAGE, memoryBytes: MiB, hops: 0, placed: 'submit', reason: 'image' }, 1);
    // Its consumers' connections up (closing one still connecting rejects in BullMQ, unhandled).
    for (const consumer of (feeder as unknown as { consumers: Array<{ blockingConnection: { client: Promise<unknown> } }> }).consumers) await consumer.blockingConnection.client;
    await waitUntil(async () => (await c.exists(`${keys.queuePrefix()}:${hostQueueName('host-stop')}:stalled-check`)) === 1, 5_000, 'its consumers to be up');
    console.log(`before the stop: own queue keys ${(await hostKeys()).map((k) => k.slice(k.lastIndexOf(':') + 1)).join(' ')}`);
    await feeder.close();
    assert.deepEqual(started, [], 'nothing ran here');
    const moved = await shared.getJob('j_placed');
    assert.ok(moved, 'the placed job went back to the shared queue');
    assert.equal(moved.data.placed, undefined);
    assert.equal(await c.zcard(keys.handoffs()), 0, 'its hand-off deadline went with it');
    const left = await hostKeys();
    console.log(`after the stop: ${left.length ? left.join(' ') : 'no key of its own queue'}`);
    assert.deepEqual(left, [], "no key of the stopped worker's own queue is left");
  } finally {
    await Promise.all([api.close(), shared.close()]);
    await c.quit();
  }
});
