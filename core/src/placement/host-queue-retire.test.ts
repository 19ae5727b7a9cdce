/**
 * A worker's own BullMQ queue (`{<p>}:jobs.host.<id>.<tag>:*`) goes when the worker goes for good:
 * HostQueues.retire() sends what is still on it back to the shared queue, then removes its keys, in
 * one step with the check that no entry is left (a locked entry keeps them: its host may still be
 * deciding on it). Before, nothing removed them (auditor: :meta, :events, :id with TTL -1 for ever).
 * Also: the API's queue objects, one per host ever placed on, stay bounded. Real redis-server.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { useRedis } from '../../../test/harness/use-redis.ts';
import { hostQueueName, QUEUE_NAME, RedisKeys } from '../redis-keys.ts';
import { HostQueues } from './host-queues.ts';

const redis = useRedis();

/** Every key of `worker`'s own queue. */
async function hostKeys(keys: RedisKeys, worker: string): Promise<string[]> {
  return (await redis.client.keys(`${keys.queuePrefix()}:${hostQueueName(worker)}:*`)).sort();
}

test('retire(): a gone worker\'s entries go back to the shared queue, then its queue\'s keys go; a locked entry keeps them until its lock lapses', async () => {
  const keys = new RedisKeys('retire');
  const queues = new HostQueues(redis.client, redis.client, keys, 600_000);
  const shared = new Queue(QUEUE_NAME, { connection: redis.client, prefix: keys.queuePrefix() });
  const connection = new Redis(redis.server.url, { maxRetriesPerRequest: null });
  // The worker's own consumer (as its feeder's), which took one entry and then died holding it.
  const consumer = new Worker(hostQueueName('w-gone'), null, { connection, prefix: keys.queuePrefix(), autorun: false, lockDuration: 60_000 });
  try {
    for (const id of ['j_r1', 'j_r2', 'j_r3']) await queues.handOff('w-gone', { id, image: 'x/y:1', memoryBytes: 1, hops: 0, placed: 'submit' }, 1);
    const held = await consumer.getNextJob('tok');
    assert.ok(held?.id);
    console.log(`before: ${(await hostKeys(keys, 'w-gone')).map((k) => k.slice(k.lastIndexOf(':') + 1)).join(' ')}`);

    const first = await queues.retire('w-gone');
    assert.deepEqual(first, { returned: 2, removed: false }, 'the two waiting entries went back; the locked one keeps the queue');
    for (const id of ['j_r1', 'j_r2', 'j_r3'].filter((i) => i !== held.id)) {
      const entry = await shared.getJob(id);
      assert.ok(entry, `${id} is on the shared queue`);
      assert.equal(entry.data.hops, 1, 'its hop spent');
      assert.equal(entry.data.placed, undefined);
    }
    assert.ok(await queues['using'](hostQueueName('w-gone'), (q) => q.getJob(held.id!)), 'the locked entry is still on its host\'s queue');
    assert.deepEqual(await redis.client.zrange(keys.handoffs(), 0, -1), [`w-gone ${held.id} 1`], 'only the locked entry\'s deadline is left');

    await redis.client.del(`${keys.queuePrefix()}:${hostQueueName('w-gone')}:${held.id}:lock`); // its lock lapses
    const second = await queues.retire('w-gone');
    assert.deepEqual(second, { returned: 1, removed: true });
    assert.ok(await shared.getJob(held.id), 'the formerly locked entry is on the shared queue');
    const left = await hostKeys(keys, 'w-gone');
    console.log(`after: ${left.length ? left.join(' ') : 'no key of the queue'}`);
    assert.deepEqual(left, [], 'no key of the gone worker\'s queue is left');
    assert.equal(await redis.client.zcard(keys.handoffs()), 0, 'no deadline left');
  } finally {
    await consumer.close();
    connection.disconnect();
    await Promise.all([queues.close(), shared.close()]);
  }
});

test('retire() of an empty queue removes its keys (meta, events, id…); one with an entry added in between keeps them', async () => {
  const keys = new RedisKeys('retire2');
  const queues = new HostQueues(redis.client, redis.client, keys, 600_000);
  try {
    await queues.handOff('w-empty', { id: 'j_e1', image: 'x/y:1', memoryBytes: 1, hops: 0 }, 1);
    // Its host took and completed the entry, as a feeder does (removeOnComplete): only BullMQ's keys are left.
    const connection = new Redis(redis.server.url, { maxRetriesPerRequest: null });
    const consumer = new Worker(hostQueueName('w-empty'), null, { connection, prefix: keys.queuePrefix(), autorun: false });
    const job = await consumer.getNextJob('t1');
    await job!.moveToCompleted(null, 't1', false);
    await queues.taken('w-empty', 'j_e1', 1);
    await consumer.close();
    connection.disconnect();
    const before = await hostKeys(keys, 'w-empty');
    console.log(`an emptied queue's keys: ${before.map((k) => k.slice(k.lastIndexOf(':') + 1)).join(' ')}`);
    assert.ok(before.length >= 2, 'BullMQ left keys behind');
    // The removal checks for entries in the same step: one there (added after retire() looked) keeps every key.
    await queues.handOff('w-empty', { id: 'j_e2', image: 'x/y:1', memoryBytes: 1, hops: 0 }, 1);
    assert.equal(await queues['removeIfEmpty']('w-empty'), false, 'an entry in it: not removed');
    assert.ok(await queues['using'](hostQueueName('w-empty'), (q) => q.getJob('j_e2')), 'the entry is still there');
    await queues['using'](hostQueueName('w-empty'), (q) => q.remove('j_e2'));
    assert.deepEqual(await queues.retire('w-empty'), { returned: 0, removed: true });
    assert.deepEqual(await hostKeys(keys, 'w-empty'), []);
  } finally {
    await queues.close();
  }
});

test("the hand-off sweep sends on an entry placed on a host that had left, and removes that host's queue", async () => {
  const keys = new RedisKeys('retire3');
  const queues = new HostQueues(redis.client, redis.client, keys, 60_000);
  const later = () => Date.now() + 120_000; // the sweep as it runs once the deadline has passed
  const shared = new Queue(QUEUE_NAME, { connection: redis.client, prefix: keys.queuePrefix() });
  try {
    await redis.client.hset(keys.jobState('j_late'), 'status', 'queued');
    // Placed from a view read before the host left (it has no heartbeat key: gone).
    await queues.handOff('w-left', { id: 'j_late', image: 'x/y:1', memoryBytes: 1, hops: 0, placed: 'submit' }, 1);
    assert.equal(await queues.sweep(later()), 1);
    assert.ok(await shared.getJob('j_late'), 'on the shared queue');
    assert.deepEqual(await hostKeys(keys, 'w-left'), [], "the gone host's queue keys went with it");
    // A live host's queue is left as it is.
    await redis.client.set(keys.worker('w-live'), '{}', 'PX', 60_000);
    await queues.handOff('w-live', { id: 'j_live', image: 'x/y:1', memoryBytes: 1, hops: 0, placed: 'submit' }, 1);
    assert.equal(await queues.sweep(later()), 1);
    assert.ok((await hostKeys(keys, 'w-live')).length > 0, "a live host's queue keys are kept");
  } finally {
    await Promise.all([queues.close(), shared.close()]);
  }
});

test('the API keeps a bounded number of queue objects, however many hosts it placed on; no entry is lost by it', async () => {
  const keys = new RedisKeys('bounded');
  const queues = new HostQueues(redis.client, redis.client, keys, 600_000, { maxQueues: 4 });
  const reader = new HostQueues(redis.client, redis.client, keys, 600_000);
  try {
    for (let i = 0; i < 30; i++) await queues.handOff(`w-${i}`, { id: `j_b${i}`, image: 'x/y:1', memoryBytes: 1, hops: 0, placed: 'submit' }, 1);
    console.log(`queue objects held after placing on 30 hosts: ${queues.size}`);
    assert.ok(queues.size <= 4, `at most 4 held (${queues.size})`);
    for (let i = 0; i < 30; i++) assert.ok(await reader['using'](hostQueueName(`w-${i}`), (q) => q.getJob(`j_b${i}`)), `entry j_b${i} is on w-${i}'s queue`);
    // A host written to again after its object was closed gets a new one.
    await queues.handOff('w-0', { id: 'j_again', image: 'x/y:1', memoryBytes: 1, hops: 0 }, 1);
    assert.ok(await reader['using'](hostQueueName('w-0'), (q) => q.getJob('j_again')));
  } finally {
    await Promise.all([queues.close(), reader.close()]);
  }
});
