/**
 * A host's pending hand-offs, as placements count them (reserveHandoff-3.lua), against a real
 * redis-server: counted from the by-host index, which holds exactly the pending hand-offs through
 * every way one starts and ends, and which a worker cleans of those an older version ended in the
 * handoffs zset only (during a rolling deploy) instead of counting them against the host for ever.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Queue } from 'bullmq';
import { useRedis } from '../../../test/harness/use-redis.ts';
import { hostQueueName, RedisKeys } from '../redis-keys.ts';
import { encodeRoom } from './fleet-records.ts';
import { HostQueues, type PlacedJob } from './host-queues.ts';

const redis = useRedis();
const MiB = 1024 * 1024;

function keys(name: string): RedisKeys {
  return new RedisKeys(`hi-${name}`);
}

function job(id: string): PlacedJob {
  return { id, image: 'reg.example/x:1', memoryBytes: MiB, hops: 0, placed: 'submit' };
}

async function room(k: RedisKeys, host: string, slotsFree: number): Promise<void> {
  await redis.client.hset(k.workerCapacity(), host, encodeRoom({ slotsFree, slotsTotal: 8, memoryFree: 1024 * MiB, memoryTotal: 1024 * MiB }, Date.now()));
}

async function sameMembers(k: RedisKeys, why: string): Promise<string[]> {
  const [byDeadline, byHost] = await Promise.all([redis.client.zrange(k.handoffs(), 0, -1), redis.client.zrange(k.handoffsByHost(), 0, -1)]);
  assert.deepEqual(byHost.sort(), [...byDeadline].sort(), `the by-host index holds the pending hand-offs: ${why}`);
  return byHost;
}

test('a host\'s pending hand-offs are its own in the count, and the by-host index follows them as they start and end', async () => {
  const k = keys('count');
  const hq = new HostQueues(redis.client, redis.client, k, 60_000);
  try {
    // Hand-offs pending for 300 other hosts, some of whose names start like host-a's.
    const pipe = redis.client.pipeline();
    for (let i = 0; i < 300; i++) {
      const member = `host-a${i} j${i} 1`;
      pipe.zadd(k.handoffs(), Date.now() + 60_000, member).zadd(k.handoffsByHost(), 0, member);
    }
    await pipe.exec();
    await room(k, 'host-a', 2);
    assert.equal(await hq.placeOn('host-a', job('a1'), 1), true, 'none of the others counts for host-a');
    await hq.handOff('host-a', job('a2'), 1); // unchecked: a job too large for the worker that handed it on
    assert.equal(await hq.placeOn('host-a', job('a3'), 1), false, 'two pending, two free: no slot left');
    assert.equal(await hq.placeOn('host-a', job('a1'), 1), true, 'a placement made again (its answer lost) counts once');
    let members = await sameMembers(k, 'after placements');
    assert.deepEqual(members.filter((m) => m.startsWith('host-a ')).sort(), ['host-a a1 1', 'host-a a2 1']);

    await hq.taken('host-a', 'a1', 1);
    assert.equal(await hq.placeOn('host-a', job('a3'), 1), true, 'a1 taken: a slot for a3');
    await sameMembers(k, 'after a take');

    // host-a goes for good: its entries back to the shared queue (retire), their hand-offs with them.
    assert.deepEqual(await hq.retire('host-a'), { returned: 3, removed: true }, 'a1, a2, a3 (a1\'s entry is left here: no worker completed it)');
    members = await sameMembers(k, 'after a retire');
    assert.equal(members.filter((m) => m.startsWith('host-a ')).length, 0);

    // A hand-off past its deadline whose job is gone: the sweep ends it.
    await redis.client.zadd(k.handoffs(), 0, 'host-a0 j0 1');
    await hq.sweep();
    members = await sameMembers(k, 'after a sweep');
    assert.equal(members.length, 299);
  } finally {
    await hq.close();
  }
});

test('a hand-off an older version ended in the handoffs zset only counts against its host until a worker reconciles the index', async () => {
  const k = keys('older');
  const hq = new HostQueues(redis.client, redis.client, k, 60_000);
  const hostB = new Queue(hostQueueName('host-b'), { connection: redis.client, prefix: k.queuePrefix() });
  try {
    await room(k, 'host-b', 1);
    assert.equal(await hq.placeOn('host-b', job('b1'), 1), true);
    // An older worker took b1 and ended its hand-off as it knew to: ZREM of the handoffs zset.
    await redis.client.zrem(k.handoffs(), 'host-b b1 1');
    await hostB.remove('b1');
    assert.equal(await hq.placeOn('host-b', job('b2'), 1), false, 'b1 still counted: the index does not know it ended');
    assert.equal(await hq.reconcile(), 1);
    assert.equal(await hq.placeOn('host-b', job('b2'), 1), true, 'the slot is free again');
    assert.equal(await hq.reconcile(), 0, 'nothing else to drop: b2 is pending');
    await sameMembers(k, 'after reconciling');
  } finally {
    await Promise.all([hq.close(), hostB.close()]);
  }
});
