/**
 * The janitor forgets a dead worker (heartbeat expired, its jobs settled) and with it that worker's
 * own BullMQ queue: entries still on it go back to the shared queue first, then its keys go. Before,
 * the keys (`{<p>}:jobs.host.<id>.<tag>:meta`, `:events`, `:id`…, no TTL) stayed for ever. Real redis-server.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import { Queue } from 'bullmq';
import { useRedis } from '../../test/harness/use-redis.ts';
import { JobStore } from '../../core/src/job-store.ts';
import { HostQueues } from '../../core/src/placement/host-queues.ts';
import { hostQueueName, QUEUE_NAME, RedisKeys } from '../../core/src/redis-keys.ts';
import { WorkerDirectory, type WorkerInfo } from '../../core/src/worker-directory.ts';
import { Janitor } from './janitor.ts';

const redis = useRedis();
const logger = pino({ level: 'silent' });

const info = (id: string): WorkerInfo => ({
  id, host: 'h', pid: 1, slotsTotal: 1, slotsFree: 1, runningJobs: [], cachedBytes: 0, images: [], cgroup: '', startedAt: new Date().toISOString(), lastHeartbeat: new Date().toISOString(),
});

test("forgetting a dead worker removes its own queue's keys, after sending its entries to the shared queue; a live one's stay", async () => {
  const keys = new RedisKeys('jhq');
  const c = redis.client;
  const directory = new WorkerDirectory(c, keys);
  const store = new JobStore(c, keys, 3600);
  const hostQueues = new HostQueues(c, c, keys, 600_000);
  const shared = new Queue(QUEUE_NAME, { connection: c, prefix: keys.queuePrefix() });
  const hostKeys = async (w: string) => (await c.keys(`${keys.queuePrefix()}:${hostQueueName(w)}:*`)).sort();
  try {
    for (const w of ['w-dead', 'w-live']) {
      await directory.heartbeat(info(w), 60_000);
      await hostQueues.handOff(w, { id: `j_${w}`, image: 'x/y:1', memoryBytes: 1, hops: 0, placed: 'submit' }, 1);
    }
    await c.del(keys.worker('w-dead')); // its heartbeat expired (SIGKILLed, never back)
    console.log(`before the reap: w-dead's queue keys: ${(await hostKeys('w-dead')).length}`);
    await new Janitor(c, keys, store, directory, logger, null, null, hostQueues).reapDeadWorkers();
    assert.equal(await c.zscore(keys.workers(), 'w-dead'), null, 'the dead worker was forgotten');
    const left = await hostKeys('w-dead');
    console.log(`after the reap: w-dead's queue keys: ${left.length ? left.join(' ') : 'none'}`);
    assert.deepEqual(left, [], "no key of the dead worker's queue is left");
    const moved = await shared.getJob('j_w-dead');
    assert.ok(moved, 'its entry went to the shared queue, not lost');
    assert.equal(moved.data.hops, 1);
    assert.equal(await c.zcard(keys.handoffs()), 1, "only the live worker's deadline is left");
    assert.ok((await hostKeys('w-live')).length > 0, "the live worker's queue is untouched");
    assert.equal(await shared.getJob('j_w-live'), undefined);
  } finally {
    await Promise.all([hostQueues.close(), shared.close()]);
  }
});
