/**
 * Hand-offs swept back to the shared queue (host-queues.ts) against a real redis-server, when Redis
 * applies a step of the sweep and its answer is lost (Redis killed before answering, the link
 * dropped): ioredis sends the step again after reconnecting, and the job must still end up on the
 * shared queue, never on no queue at all while its record says `queued`.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { useReplyLosingRedis } from '../../../test/harness/reply-losing-proxy.ts';
import { JobQueue } from '../job-queue.ts';
import { hostQueueName, RedisKeys } from '../redis-keys.ts';
import { HostQueues } from './host-queues.ts';

// As a worker's BullMQ connection (core/src/redis.ts): commands wait out an outage and are sent again.
const redis = useReplyLosingRedis({ maxRetriesPerRequest: null });
let queues: HostQueues;
let shared: JobQueue;
let host: Queue;
const keys = new RedisKeys('hq');
const MAX_WAIT_MS = 50;
let n = 0;

before(async () => {
  await redis.ready;
  queues = new HostQueues(redis.viaProxy, redis.viaProxy, keys, MAX_WAIT_MS);
  shared = new JobQueue(redis.direct, keys);
  host = new Queue(hostQueueName('w1'), { connection: redis.direct, prefix: keys.queuePrefix() });
  // BullMQ's scripts loaded on the proxied connection: later calls are one EVALSHA each.
  await queues.sweep();
  const loading = new Queue(hostQueueName('w1'), { connection: redis.viaProxy, prefix: keys.queuePrefix() });
  await loading.remove('none');
  await loading.close();
});
after(async () => {
  await Promise.all([queues?.close(), shared?.close(), host?.close()]);
});

/** A queued job handed to host w1 whose deadline has passed. */
async function overdueHandOff(): Promise<string> {
  const id = `j_hq${++n}`;
  await redis.direct.hset(keys.jobState(id), 'status', 'queued');
  await queues.handOff('w1', { id, image: 'x/y:1', memoryBytes: 1, hops: 0, placed: 'submit' }, 1);
  await new Promise((r) => setTimeout(r, MAX_WAIT_MS + 10));
  return id;
}

test('an overdue hand-off goes back to the shared queue', async () => {
  const id = await overdueHandOff();
  assert.equal(await queues.sweep(), 1);
  assert.ok(await shared.queue.getJob(id), 'on the shared queue');
  assert.equal(await host.getJob(id), undefined, 'off its host\'s queue');
  assert.equal(await redis.direct.zcard(keys.handoffs()), 0, 'its deadline is gone');
});

// BullMQ's removeJob answers 1 for an entry already gone, so the removal sent again reads as done.
test('an overdue hand-off whose removal from its host\'s queue was applied but not answered still reaches the shared queue', async () => {
  const id = await overdueHandOff();
  const lost = redis.proxy.loseReplyTo('evalsha', hostQueueName('w1'), id); // BullMQ's removeJob script
  await queues.sweep();
  await lost;
  assert.equal(redis.proxy.lost, 1, 'the removal\'s answer was lost');
  assert.ok(await shared.queue.getJob(id), 'on the shared queue, not on no queue');
  assert.equal(await host.getJob(id), undefined, 'off its host\'s queue');
  assert.equal(await redis.direct.zcard(keys.handoffs()), 0, 'its deadline is gone');
});

test('a hand-off its host holds (locked) stays with its host, its deadline put off; once the lock lapses (the host died holding it) it goes back to the shared queue', async () => {
  const id = await overdueHandOff();
  const connection = new Redis(redis.server.url, { maxRetriesPerRequest: null }); // a BullMQ Worker's, as a worker's feeder
  // A host that takes the entry and then neither settles it nor renews its lock (it died).
  const consumer = new Worker(hostQueueName('w1'), null, { connection, prefix: keys.queuePrefix(), autorun: false, lockDuration: 300 });
  try {
    const taken = await consumer.getNextJob('tok');
    assert.equal(taken?.id, id);
    assert.equal(await queues.sweep(), 0);
    assert.equal(await shared.queue.getJob(id), undefined, 'not put on the shared queue while its host holds it');
    const deadline = Number(await redis.direct.zscore(keys.handoffs(), `w1 ${id} 1`));
    assert.ok(deadline > Date.now(), 'its deadline is kept, later');
    await new Promise((r) => setTimeout(r, Math.max(350, deadline - Date.now() + 10)));
    assert.equal(await queues.sweep(), 1);
    assert.ok(await shared.queue.getJob(id), 'on the shared queue once the lock lapsed');
    assert.equal(await redis.direct.zcard(keys.handoffs()), 0, 'its deadline is gone');
  } finally {
    await consumer.close();
    connection.disconnect();
  }
});
