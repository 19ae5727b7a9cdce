/**
 * Placement at submit time against a real redis-server: the API reads the fleet the workers publish
 * (worker/src/placement/fleet.ts) and queues a job straight on the queue of a live host that holds
 * its image and has room, with a hand-off deadline; anything else goes to the shared queue.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Queue } from 'bullmq';
import pino from 'pino';
import { JobQueue } from '../../core/src/job-queue.ts';
import { apiMetrics, createRegistry } from '../../core/src/metrics.ts';
import { chooseAtSubmit } from '../../core/src/placement/choose-at-submit.ts';
import { FleetSnapshot, type FleetState } from '../../core/src/placement/fleet-snapshot.ts';
import { HostQueues } from '../../core/src/placement/host-queues.ts';
import { hostQueueName, QUEUE_NAME, RedisKeys } from '../../core/src/redis-keys.ts';
import { useRedis } from '../../test/harness/use-redis.ts';
import { FleetView } from '../../worker/src/placement/fleet.ts';
import { SubmitPlacement } from './submit-placement.ts';

const MiB = 1024 * 1024;
const DIGEST = `sha256:${'a'.repeat(64)}`;

test('a job goes to the holder with room (most free slots first); none = the shared queue', () => {
  const host = (id: string, slotsFree: number, memoryFree = 512 * MiB) => ({ id, slotsFree, slotsTotal: 4, memoryFree, memoryTotal: 512 * MiB });
  const view: FleetState = { hosts: [host('a', 1), host('b', 3), host('c', 4)], holders: new Map([['reg.example/x:1', new Set(['a', 'b'])], [DIGEST, new Set(['a'])]]) };
  assert.equal(chooseAtSubmit(view, 'reg.example/x:1', 64 * MiB), 'b', 'the holder with the most free slots; c has more but not the image');
  assert.equal(chooseAtSubmit(view, `reg.example/x@${DIGEST}`, 64 * MiB), 'a', 'a pinned digest is looked up by digest');
  assert.equal(chooseAtSubmit(view, 'reg.example/y:1', 64 * MiB), null, 'nobody holds it');
  assert.equal(chooseAtSubmit({ ...view, hosts: [host('a', 0), host('b', 0), host('c', 4)] }, 'reg.example/x:1', 64 * MiB), null, 'holders full');
  assert.equal(chooseAtSubmit({ ...view, hosts: [host('a', 1, 32 * MiB), host('b', 3, 32 * MiB)] }, 'reg.example/x:1', 64 * MiB), null, 'holders lack the memory');
  assert.equal(chooseAtSubmit(null, 'reg.example/x:1', 64 * MiB), null, 'no fresh view');
  // Fairness: not ahead of what waits on the shared queue with the same priority or a better one.
  const waiting = { ...view, bestWaiting: 3 };
  assert.equal(chooseAtSubmit(waiting, 'reg.example/x:1', 64 * MiB, 5), null, 'priority 3 waits on the shared queue: a 5 goes behind it');
  assert.equal(chooseAtSubmit(waiting, 'reg.example/x:1', 64 * MiB, 3), null, 'the same priority: first come, first served');
  assert.equal(chooseAtSubmit(waiting, 'reg.example/x:1', 64 * MiB, 2), 'b', 'a better priority than anything waiting is placed');
  assert.equal(chooseAtSubmit({ ...view, bestWaiting: null }, 'reg.example/x:1', 64 * MiB, 40), 'b', 'nothing waits');
});

const redis = useRedis();
const keys = new RedisKeys('submitplace');

const logger = pino({ level: 'silent' });
/** HGETALLs served so far (the fleet snapshot's read of the capacity hash). */
const capacityReads = () => redis.client.info('commandstats').then((s) => Number(/cmdstat_hgetall:calls=(\d+)/.exec(s)?.[1] ?? 0));
const env = { SBX_PLACEMENT_CACHE_AWARE: true, SBX_PLACEMENT_MAX_WAIT_MS: 1000, SBX_HEARTBEAT_MS: 2000 };

/**
 * Until the read of the fleet that a first submission started is in (it began before that job was
 * queued, so the shared queue's waiting jobs it saw are those before). A fixed 150 ms instead was past
 * before the read's two round trips were answered on a busy host: the next job found no view.
 */
const firstRead = async (placement: SubmitPlacement) => (placement as unknown as { fleet: { refreshing: Promise<void> | null } }).fleet.refreshing;

/** A worker as the others see it: its room and its cache, published the way worker/src/placement does. */
async function publishHost(id: string, images: string[], slotsFree: number): Promise<FleetView> {
  const fleet = new FleetView(redis.client, keys, id, 10_000, logger);
  await fleet.syncImages(images.map((image, i) => ({ image, digest: `sha256:${String(i).repeat(64)}` })));
  fleet.publishCapacity(() => ({ slotsTotal: 4, slotsFree, memoryTotal: 1024 * MiB, memoryFree: 1024 * MiB }));
  await new Promise((r) => setTimeout(r, 20));
  return fleet;
}

test('the API places a job on the queue of the host holding its image, with a deadline; the others go to the shared queue', async () => {
  const a = await publishHost('host-a', ['reg.example/x:1'], 2);
  const b = await publishHost('host-b', ['reg.example/y:1'], 0); // holds y but has no room
  const queue = new JobQueue(redis.client, keys);
  const metrics = apiMetrics(createRegistry('api'));
  // The view is read once, at the first submission, and not again during the test: a re-read would
  // give host-a its published room back between j1 and j3 (with the default 100 ms, 1 run in 30).
  const placement = new SubmitPlacement(queue, redis.client, redis.client, keys, env, metrics, logger, { refreshMs: 600_000 });
  const hostA = new Queue(hostQueueName('host-a'), { connection: redis.client, prefix: keys.queuePrefix() });
  const shared = new Queue(QUEUE_NAME, { connection: redis.client, prefix: keys.queuePrefix() });
  const later = new SubmitPlacement(queue, redis.client, redis.client, keys, env, metrics, logger);
  try {
    // The first submission after a quiet spell has no view yet: shared queue; it starts the reads.
    assert.equal(await placement.enqueue('j0', 1, { image: 'reg.example/x:1', memoryBytes: MiB }), null);
    await firstRead(placement);
    assert.equal(await placement.enqueue('j1', 5, { image: 'reg.example/x:1', memoryBytes: MiB }), 'host-a');
    assert.equal(await placement.enqueue('j2', 1, { image: 'reg.example/x:1', memoryBytes: MiB }), 'host-a');
    assert.equal(await placement.enqueue('j3', 1, { image: 'reg.example/x:1', memoryBytes: MiB }), null, 'host-a\'s two free slots are spoken for until the next read');
    assert.equal(await placement.enqueue('j4', 1, { image: 'reg.example/y:1', memoryBytes: MiB }), null, 'the holder of y is full');
    assert.equal(await placement.enqueue('j5', 1, { image: 'reg.example/z:1', memoryBytes: MiB }), null, 'nobody holds z');

    const placed = await hostA.getJob('j1');
    assert.deepEqual(placed?.data, { id: 'j1', image: 'reg.example/x:1', memoryBytes: MiB, hops: 0, placed: 'submit', reason: 'image' });
    assert.equal(placed?.opts.priority, 5);
    assert.deepEqual((await shared.getJobs(['prioritized'])).map((j) => j.id).sort(), ['j0', 'j3', 'j4', 'j5']);
    const deadlines = await redis.client.zrange(keys.handoffs(), 0, -1, 'WITHSCORES');
    assert.deepEqual(deadlines.filter((_, i) => i % 2 === 0).sort(), ['host-a j1 5', 'host-a j2 1'], 'each placed job is due back on the shared queue if its host does not take it');
    const metricText = await metrics.jobsPlaced.get();
    assert.deepEqual(Object.fromEntries(metricText.values.map((v) => [v.labels.where, v.value])), { host: 2, shared: 4 });

    // A host that stopped publishing (dead) is never chosen, though it holds the image and has room
    // (a new API's view, read every 100 ms).
    await redis.client.hset(keys.workerCapacity(), 'host-a', JSON.stringify({ s: 4, st: 4, m: 1024 * MiB, mt: 1024 * MiB, t: Date.now() - 60_000 }));
    const before = await capacityReads();
    assert.equal(await later.enqueue('j6', 1, { image: 'reg.example/x:1', memoryBytes: MiB }), null, 'no view yet');
    await new Promise((r) => setTimeout(r, 250));
    assert.ok((await capacityReads()) > before, 'the fleet was read');
    assert.equal(await later.enqueue('j7', 1, { image: 'reg.example/x:1', memoryBytes: MiB }), null, 'host-a is past the heartbeat limit');
  } finally {
    await Promise.all([placement.close(), later.close(), queue.close(), hostA.close(), shared.close(), a.leave(), b.leave()]);
  }
});

test('two API copies (behind a load balancer) do not together place more on a host than its free slots: the rest go to a host with room, or the shared queue', async () => {
  const copyKeys = new RedisKeys('submitcopies');
  const fleet = new FleetView(redis.client, copyKeys, 'host-h', 10_000, logger);
  await fleet.syncImages([{ image: 'reg.example/x:1', digest: `sha256:${'c'.repeat(64)}` }]);
  fleet.publishCapacity(() => ({ slotsTotal: 2, slotsFree: 2, memoryTotal: 1024 * MiB, memoryFree: 1024 * MiB }));
  // A host without the image, one free slot: where a job host-h turns away goes instead of the shared queue.
  const puller = new FleetView(redis.client, copyKeys, 'host-p', 10_000, logger);
  puller.publishCapacity(() => ({ slotsTotal: 1, slotsFree: 1, memoryTotal: 1024 * MiB, memoryFree: 1024 * MiB }));
  await new Promise((r) => setTimeout(r, 20));
  const queue = new JobQueue(redis.client, copyKeys);
  const metrics = apiMetrics(createRegistry('api'));
  // Each copy reads the fleet once (its view stays as read: two free slots on host-h).
  const [a, b] = [0, 1].map(() => new SubmitPlacement(queue, redis.client, redis.client, copyKeys, env, metrics, logger, { refreshMs: 600_000 }));
  const hostH = new Queue(hostQueueName('host-h'), { connection: redis.client, prefix: copyKeys.queuePrefix() });
  const hostP = new Queue(hostQueueName('host-p'), { connection: redis.client, prefix: copyKeys.queuePrefix() });
  const shared = new Queue(QUEUE_NAME, { connection: redis.client, prefix: copyKeys.queuePrefix() });
  try {
    for (const [copy, warm] of [[a!, 'warm-a'], [b!, 'warm-b']] as const) {
      assert.equal(await copy.enqueue(warm, 9, { image: 'reg.example/x:1', memoryBytes: MiB }), null, 'no view yet: the shared queue');
      await firstRead(copy);
    }
    // Priority 5, ahead of the warm-ups' 9 waiting on the shared queue (placement never overtakes an equal or better one there).
    const hints = { image: 'reg.example/x:1', memoryBytes: MiB };
    assert.deepEqual([await a!.enqueue('a1', 5, hints), await a!.enqueue('a2', 5, hints)], ['host-h', 'host-h'], 'copy a: its view has two free slots');
    // Copy b's view says the same two free slots; Redis holds a1 and a2's pending hand-offs. So b1
    // goes to host-p, which has room (it pulls the image), and b2, with host-h full in b's view now
    // and no other holder, to the shared queue.
    assert.deepEqual([await b!.enqueue('b1', 5, hints), await b!.enqueue('b2', 5, hints)], ['host-p', null], 'copy b: host-h has no slot left for them');
    assert.deepEqual((await hostH.getJobs(['prioritized', 'wait'])).map((j) => j.id).sort(), ['a1', 'a2']);
    assert.deepEqual((await hostP.getJobs(['prioritized', 'wait'])).map((j) => [j.id, j.data.reason]), [['b1', 'capacity']]);
    assert.deepEqual((await shared.getJobs(['prioritized', 'wait'])).map((j) => j.id).sort(), ['b2', 'warm-a', 'warm-b']);
    assert.deepEqual((await redis.client.zrange(copyKeys.handoffs(), 0, -1)).sort(), ['host-h a1 5', 'host-h a2 5', 'host-p b1 5'], 'a deadline only for the placed ones');

    // The host took a1 and says so (its room first, then the hand-off goes): one slot is free again in Redis.
    fleet.publishCapacityNow({ slotsTotal: 2, slotsFree: 1, memoryTotal: 1024 * MiB, memoryFree: 1023 * MiB });
    fleet.publishCapacityNow({ slotsTotal: 3, slotsFree: 2, memoryTotal: 1024 * MiB, memoryFree: 1023 * MiB }); // and grew by a slot
    const hostQueues = new HostQueues(redis.client, redis.client, copyKeys, 60_000);
    await hostQueues.taken('host-h', 'a1', 5);
    await hostQueues.close();
    const c = new SubmitPlacement(queue, redis.client, redis.client, copyKeys, env, metrics, logger, { refreshMs: 600_000 });
    try {
      await c.enqueue('warm-c', 9, hints);
      await firstRead(c);
      // Priorities better than b1 and b2's 5 now waiting on the shared queue.
      assert.equal(await c.enqueue('c1', 2, hints), 'host-h', 'two free, one pending (a2): room for one more');
      assert.equal(await c.enqueue('c2', 1, hints), null, 'and then none (host-p\'s one slot is b1\'s)');
    } finally {
      await c.close();
    }
  } finally {
    await Promise.all([a!.close(), b!.close(), queue.close(), hostH.close(), hostP.close(), shared.close(), fleet.leave(), puller.leave()]);
  }
});

test('a job is not placed on a host while the shared queue holds one of its priority or better (a tenant with a backlog does not overtake the others there)', async () => {
  const fairKeys = new RedisKeys('submitfair');
  const fleet = new FleetView(redis.client, fairKeys, 'host-f', 10_000, logger);
  await fleet.syncImages([{ image: 'reg.example/x:1', digest: `sha256:${'f'.repeat(64)}` }]);
  fleet.publishCapacity(() => ({ slotsTotal: 4, slotsFree: 4, memoryTotal: 1024 * MiB, memoryFree: 1024 * MiB }));
  await new Promise((r) => setTimeout(r, 20));
  const queue = new JobQueue(redis.client, fairKeys);
  await queue.add('waiting', 3, { image: 'reg.example/x:1', memoryBytes: MiB }); // another tenant's job, priority 3
  const placement = new SubmitPlacement(queue, redis.client, redis.client, fairKeys, env, apiMetrics(createRegistry('api')), logger);
  try {
    await placement.enqueue('warm', 9, { image: 'reg.example/x:1', memoryBytes: MiB }); // no view yet: starts the reads
    await firstRead(placement);
    assert.equal(await placement.enqueue('backlog', 7, { image: 'reg.example/x:1', memoryBytes: MiB }), null, 'priority 7 behind the waiting 3: shared queue');
    assert.equal(await placement.enqueue('same', 3, { image: 'reg.example/x:1', memoryBytes: MiB }), null, 'the same priority: shared queue, behind it');
    assert.equal(await placement.enqueue('first', 1, { image: 'reg.example/x:1', memoryBytes: MiB }), 'host-f', 'a tenant\'s only job, ahead of everything waiting: placed');
  } finally {
    await placement.close();
    await queue.close();
  }
});

test('cache-awareness off: every job goes to the shared queue and the fleet is never read', async () => {
  const a = await publishHost('host-c', ['reg.example/x:1'], 4);
  const queue = new JobQueue(redis.client, keys);
  const placement = new SubmitPlacement(queue, redis.client, redis.client, keys, { ...env, SBX_PLACEMENT_CACHE_AWARE: false }, apiMetrics(createRegistry('api')), logger);
  try {
    const before = await capacityReads();
    for (let i = 0; i < 3; i++) {
      assert.equal(await placement.enqueue(`off${i}`, 1, { image: 'reg.example/x:1', memoryBytes: MiB }), null);
      await new Promise((r) => setTimeout(r, 120));
    }
    assert.equal(await capacityReads(), before, 'the capacity hash was read');
  } finally {
    await Promise.all([placement.close(), queue.close(), a.leave()]);
  }
});

test('the fleet snapshot stops reading once submissions stop', async () => {
  const snapshot = new FleetSnapshot(redis.client, keys, { liveMs: 10_000, refreshMs: 20, idleMs: 300 });
  const before = await capacityReads();
  for (const until = Date.now() + 300; Date.now() < until; ) {
    snapshot.current();
    await new Promise((r) => setTimeout(r, 10));
  }
  await new Promise((r) => setTimeout(r, 800));
  const afterIdle = await capacityReads();
  assert.ok(afterIdle - before >= 2, `read again and again while in use (${afterIdle - before} reads)`);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(await capacityReads(), afterIdle, 'no reads once 300 ms passed without a submission');
  snapshot.stop();
});
