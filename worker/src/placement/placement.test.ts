/**
 * Placement's parts: the decision rules (pure), the capacity gate, and the hand-off queues and fleet
 * view against a real redis-server. End to end with real workers: test/e2e/placement.test.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Queue } from 'bullmq';
import pino from 'pino';
import { hostQueueName, QUEUE_NAME, RedisKeys } from '../../../core/src/redis-keys.ts';
import { useRedis } from '../../../test/harness/use-redis.ts';
import { HostCapacity, ObservedSlotPool } from './capacity.ts';
import { chooseHost, needsFleet, type DecisionInput } from './choose-host.ts';
import type { HostRoom } from '../../../core/src/placement/fleet-records.ts';
import { FleetView } from './fleet.ts';
import { HostQueues } from '../../../core/src/placement/host-queues.ts';

const MiB = 1024 * 1024;
const room = (id: string, slotsFree: number, memoryFree = 1024 * MiB, memoryTotal = 1024 * MiB): HostRoom => ({ id, slotsFree, slotsTotal: 4, memoryFree, memoryTotal });
const base: DecisionInput = { memoryBytes: 100 * MiB, hops: 0, imageCached: false, startsNow: true, memoryTotal: 1024 * MiB, cacheAware: true, hosts: [], holders: new Set() };

test('a job whose image is elsewhere goes to a holder with room; without room anywhere it runs here', () => {
  assert.deepEqual(chooseHost({ ...base, hosts: [room('b', 3), room('c', 1)], holders: new Set(['c']) }), { action: 'handoff', to: 'c', reason: 'image' });
  assert.deepEqual(chooseHost({ ...base, hosts: [room('b', 3), room('c', 0)], holders: new Set(['c']) }), { action: 'run' });
  // The holder lacks the memory for it.
  assert.deepEqual(chooseHost({ ...base, hosts: [room('c', 2, 50 * MiB)], holders: new Set(['c']) }), { action: 'run' });
  // Cached here, or cache-awareness off: no look at the fleet at all.
  assert.equal(needsFleet({ ...base, imageCached: true }), false);
  assert.equal(needsFleet({ ...base, cacheAware: false }), false);
  assert.deepEqual(chooseHost({ ...base, cacheAware: false, hosts: [room('c', 2)], holders: new Set(['c']) }), { action: 'run' });
});

test('at most one hop: a job handed on once runs where it landed', () => {
  assert.equal(needsFleet({ ...base, hops: 1, startsNow: false }), false);
  assert.deepEqual(chooseHost({ ...base, hops: 1, startsNow: false, hosts: [room('c', 2)], holders: new Set(['c']) }), { action: 'run' });
});

test('no room here: to a host with room, a holder first; none = wait here', () => {
  assert.deepEqual(chooseHost({ ...base, imageCached: true, startsNow: false, hosts: [room('b', 3), room('c', 1)], holders: new Set(['c']) }), { action: 'handoff', to: 'c', reason: 'capacity' });
  assert.deepEqual(chooseHost({ ...base, imageCached: true, startsNow: false, hosts: [room('b', 3), room('c', 1)] }), { action: 'handoff', to: 'b', reason: 'capacity' });
  assert.deepEqual(chooseHost({ ...base, imageCached: true, startsNow: false, hosts: [room('b', 0)] }), { action: 'run' });
});

test('memory above this host\'s whole budget: to a host whose budget fits (even after a hop), else fail naming the largest', () => {
  const big = { ...base, memoryBytes: 2048 * MiB, hops: 1 };
  assert.equal(needsFleet(big), true);
  assert.deepEqual(chooseHost({ ...big, hosts: [room('b', 0, 4096 * MiB, 4096 * MiB), room('c', 2)] }), { action: 'handoff', to: 'b', reason: 'capacity' });
  assert.deepEqual(chooseHost({ ...big, hosts: [room('c', 2, 1536 * MiB, 1536 * MiB)] }), { action: 'fail', largestBudget: 1536 * MiB });
  assert.deepEqual(chooseHost({ ...big, hosts: [] }), { action: 'fail', largestBudget: 1024 * MiB });
});

test('the room others see counts jobs waiting for a pull as taking a slot, though this host may take more meanwhile', async () => {
  const cap = new HostCapacity(new ObservedSlotPool(2), 1024 * MiB, 2);
  await cap.hold(10 * MiB, 'r/new:1', false); // pulling
  assert.equal(cap.snapshot().slotsFree, 1, 'one of the two slots is promised to the job whose image is being pulled');
  assert.ok(cap.canFetch(), 'a pull holds no slot: this host still takes jobs');
  await cap.hold(10 * MiB, 'r/new:1', false);
  assert.equal(cap.snapshot().slotsFree, 0, 'no room left for others to hand jobs to');
});

test('a burst for an image being pulled: this host takes one job per slot beyond the pull\'s first, not the whole burst', async () => {
  const cap = new HostCapacity(new ObservedSlotPool(2), 1024 * MiB, 4);
  await cap.hold(10 * MiB, 'r/new:1', false); // the pull's first job: overlaps whatever runs here
  assert.ok(cap.canFetch());
  await cap.hold(10 * MiB, 'r/new:1', false); // waits for the same pull, then for a slot
  assert.ok(cap.canFetch(), 'one slot still free after the pull');
  await cap.hold(10 * MiB, 'r/new:1', false);
  assert.equal(cap.canFetch(), false, 'the jobs waiting on that pull speak for both slots: the rest of the burst is left to other hosts');
  // Control: another image's pull is a pull of its own (bounded by SBX_PULL_CONCURRENCY), not a slot.
  const other = new HostCapacity(new ObservedSlotPool(2), 1024 * MiB, 4);
  for (const image of ['r/a:1', 'r/b:1', 'r/c:1']) await other.hold(10 * MiB, image, false);
  assert.ok(other.canFetch(), 'three pulls of three images, none waiting behind another');
});

test('the gate: no fetch while every slot is spoken for, pulls are at their bound, or memory is full', async () => {
  const slots = new ObservedSlotPool(2);
  const cap = new HostCapacity(slots, 300 * MiB, 1);
  assert.ok(cap.canFetch());
  const a = await cap.hold(100 * MiB, 'r/x:1', true); // cached: about to ask for a slot
  const b = await cap.hold(100 * MiB, 'r/x:1', true);
  assert.equal(cap.canFetch(), false, 'both slots are spoken for before the jobs asked');
  assert.equal(cap.snapshot().slotsFree, 0);
  cap.imageReady('r/x:1');
  cap.imageReady('r/x:1');
  const sa = await slots.take();
  const sb = await slots.take();
  assert.equal(cap.canFetch(), false);
  slots.give(sa);
  a.release();
  assert.ok(cap.canFetch());
  // A pull holds no slot, but pulls are bounded (1 here): a second job of the same image shares it.
  const pull = await cap.hold(10 * MiB, 'r/y:1', false);
  assert.equal(cap.canFetch(), false, 'one pull in flight of at most 1');
  assert.equal(cap.snapshot().slotsFree, 0, 'a host that takes nothing tells others it has no room');
  cap.imageReady('r/y:1');
  assert.equal(cap.canFetch(), false, 'the pulled job now speaks for the last slot');
  const sp = await slots.take();
  slots.give(sp);
  pull.release();
  // Memory: 100 MiB held of 300; a 250 MiB job waits for it, and nothing is fetched meanwhile.
  let got = false;
  const waiting = cap.hold(250 * MiB, 'r/x:1', true).then((h) => ((got = true), h));
  await new Promise((r) => setImmediate(r));
  assert.equal(got, false);
  assert.equal(cap.canFetch(), false);
  assert.equal(cap.startsNow(10 * MiB), false, 'a job waits for memory before it');
  b.release();
  slots.give(sb);
  const c = await waiting;
  assert.equal(cap.memoryFree, 50 * MiB);
  c.release();
  assert.equal(cap.memoryFree, 300 * MiB);
  await assert.rejects(cap.hold(301 * MiB, 'r/x:1', false), /can never fit/);
});

const redis = useRedis();
const keys = new RedisKeys('placetest');

test('a handed-off job its host does not take in time goes back to the shared queue, its hop spent', async () => {
  const queues = new HostQueues(redis.client, redis.client, keys, 60_000);
  const shared = new Queue(QUEUE_NAME, { connection: redis.client, prefix: keys.queuePrefix() });
  const target = new Queue(hostQueueName('host/b'), { connection: redis.client, prefix: keys.queuePrefix() });
  try {
    await queues.handOff('host/b', { id: 'j1', image: 'r/x:1', memoryBytes: 1, hops: 1, from: 'host/a', reason: 'image' }, 3);
    assert.equal(await target.count(), 1);
    assert.equal(await queues.sweep(Date.now()), 0, 'not due yet');
    assert.equal(await queues.sweep(Date.now() + 61_000), 1);
    assert.equal(await target.count(), 0);
    const back = await shared.getJob('j1');
    assert.equal(back?.data.hops, 1);
    assert.equal(back?.opts.priority, 3);
    assert.equal(await redis.client.zcard(keys.handoffs()), 0);
  } finally {
    await Promise.all([queues.close(), shared.close(), target.close()]);
  }
});

test('a sweep stopped between its steps (Redis killed, the worker gone): the next sweep puts the still-queued job on the shared queue', async () => {
  const queues = new HostQueues(redis.client, redis.client, keys, 60_000);
  const shared = new Queue(QUEUE_NAME, { connection: redis.client, prefix: keys.queuePrefix() });
  const target = new Queue(hostQueueName('host/c'), { connection: redis.client, prefix: keys.queuePrefix() });
  try {
    await redis.client.hset(keys.jobState('j2'), 'status', 'queued');
    await queues.handOff('host/c', { id: 'j2', image: 'r/x:1', memoryBytes: 1, hops: 1, from: 'host/a', reason: 'image' }, 2);
    // The sweep's second step fails as if Redis had gone away after its first.
    const realAdd = Queue.prototype.add;
    const realRemove = Queue.prototype.remove;
    let steps = 0;
    const failSecond = <F extends (...a: never[]) => Promise<unknown>>(real: F) => async function (this: Queue, ...args: Parameters<F>) {
      if (++steps === 2) throw new Error('Connection is closed.');
      return real.apply(this, args);
    };
    Queue.prototype.add = failSecond(realAdd) as typeof realAdd;
    Queue.prototype.remove = failSecond(realRemove) as typeof realRemove;
    try {
      await queues.sweep(Date.now() + 61_000).catch(() => {});
    } finally {
      Queue.prototype.add = realAdd;
      Queue.prototype.remove = realRemove;
    }
    assert.equal(await redis.client.zcard(keys.handoffs()), 1, 'its deadline stays for the next sweep');
    assert.equal(await queues.sweep(Date.now() + 61_000), 1);
    const back = await shared.getJob('j2');
    assert.ok(back, 'the job is on no queue after the next sweep: lost');
    assert.deepEqual([back.data.hops, back.opts.priority], [1, 2]);
    assert.equal(await target.getJob('j2'), undefined);
    assert.equal(await redis.client.zcard(keys.handoffs()), 0);
    // A deadline whose job is no longer queued (its host took and claimed it) is only dropped.
    await redis.client.hset(keys.jobState('j3'), 'status', 'running');
    await queues.handOff('host/c', { id: 'j3', image: 'r/x:1', memoryBytes: 1, hops: 1 }, 2);
    await target.remove('j3');
    assert.equal(await queues.sweep(Date.now() + 61_000), 0);
    assert.equal(await shared.getJob('j3'), undefined);
    assert.equal(await redis.client.zcard(keys.handoffs()), 0);
  } finally {
    await Promise.all([queues.close(), shared.close(), target.close()]);
  }
});

test('the fleet view: image sets follow the cache, dead hosts are left out, a restart forgets the old cache', async () => {
  const logger = pino({ level: 'silent' });
  const a = new FleetView(redis.client, keys, 'a', 1000, logger);
  const b = new FleetView(redis.client, keys, 'b', 1000, logger);
  await a.syncImages([{ image: 'reg/x:1', digest: 'sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' }]);
  await b.syncImages([]);
  a.publishCapacity(() => ({ slotsTotal: 2, slotsFree: 1, memoryTotal: 10, memoryFree: 5 }));
  await new Promise((r) => setTimeout(r, 20));
  let seen = await b.look('reg/x:1');
  assert.deepEqual([...seen.holders], ['a']);
  assert.deepEqual(seen.hosts, [{ id: 'a', slotsFree: 1, slotsTotal: 2, memoryFree: 5, memoryTotal: 10 }]);
  assert.deepEqual([...(await b.look('reg/x@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa')).holders], ['a'], 'by digest too');
  assert.deepEqual((await b.look(undefined, Date.now() + 5000)).hosts, [], 'an entry past the heartbeat limit is a dead host');
  await a.syncImages([{ image: 'reg/y:1', digest: 'sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb' }]); // x evicted, y pulled
  seen = await b.look('reg/x:1');
  assert.deepEqual([...seen.holders], []);
  const restarted = new FleetView(redis.client, keys, 'a', 1000, logger);
  await restarted.reset();
  assert.deepEqual([...(await b.look('reg/y:1')).holders], []);
  await restarted.leave();
  assert.deepEqual((await b.look()).hosts, []);
  // A host that crashed and never came back is forgotten after a while.
  const crashed = new FleetView(redis.client, keys, 'gone', 1000, logger);
  await crashed.syncImages([{ image: 'reg/z:1', digest: 'sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc' }]);
  crashed.publishCapacity(() => ({ slotsTotal: 1, slotsFree: 1, memoryTotal: 1, memoryFree: 1 }));
  await new Promise((r) => setTimeout(r, 20));
  assert.equal((await b.prune(60_000)).length, 0);
  assert.equal((await b.prune(60_000, Date.now() + 120_000)).length, 1);
  assert.equal(await redis.client.scard(keys.imageHolders('reg/z:1')), 0);
  assert.equal(await redis.client.hexists(keys.workerCapacity(), 'gone'), 0);
});
