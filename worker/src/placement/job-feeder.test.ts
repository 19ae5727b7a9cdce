/**
 * The job feeder against a real redis-server and real BullMQ queues, with a runner that holds each
 * job's slot until the test lets it go: which queue's job a freed slot goes to.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Queue } from 'bullmq';
import pino from 'pino';
import { Registry } from 'prom-client';
import type { JobStore } from '../../../core/src/job-store.ts';
import { HostQueues } from '../../../core/src/placement/host-queues.ts';
import { QUEUE_NAME, RedisKeys } from '../../../core/src/redis-keys.ts';
import { useRedis } from '../../../test/harness/use-redis.ts';
import { waitUntil } from '../../../test/harness/redis.ts';
import type { JobRunner } from '../job-runner.ts';
import { HostCapacity, ObservedSlotPool } from './capacity.ts';
import { JobFeeder } from './job-feeder.ts';
import { FleetView } from './fleet.ts';
import { hostQueueName } from '../../../core/src/redis-keys.ts';

const MiB = 1024 * 1024;
const IMAGE = 'registry.test/busybox:1';
const redis = useRedis();

/** A runner that takes a slot as the real one does (by priority) and keeps it until release(id). */
function heldRunner(capacity: HostCapacity) {
  const started: string[] = [];
  const releases = new Map<string, () => void>();
  const runner: Pick<JobRunner, 'run'> = {
    async run(id, priority, _placement, claimed) {
      capacity.imageReady(IMAGE);
      const slot = await capacity.slots.take(undefined, priority);
      started.push(id);
      claimed?.();
      await new Promise<void>((done) => releases.set(id, done));
      capacity.slots.give(slot);
    },
  };
  return { runner, started, release: (id: string) => releases.get(id)!() };
}

/** A feeder's options as these tests use them: `store` reads nothing, the image is here (unless `imageHere` is false), no sweep. */
function feederOptions(keys: RedisKeys, workerId: string, runner: Pick<JobRunner, 'run'>, capacity: HostCapacity, more: { imageHere?: boolean; cacheAware?: boolean; maxWaitMs?: number } = {}) {
  return {
    workerId, connection: redis.client, redis: redis.client, keys,
    store: { get: async () => null } as unknown as JobStore,
    images: { list: async () => [], holds: async () => more.imageHere ?? true },
    runner, capacity, cacheAware: more.cacheAware ?? false, maxWaitMs: more.maxWaitMs ?? 600_000, liveMs: 60_000,
    logger: pino({ level: 'silent' }), registry: new Registry(),
  };
}

test("a job placed on this host's own queue while every slot is busy takes the next free slot, ahead of the shared queue's", async (t) => {
  const keys = new RedisKeys('feedertest');
  const capacity = new HostCapacity(new ObservedSlotPool(1), 1024 * MiB, 1);
  const { runner, started, release } = heldRunner(capacity);
  const shared = new Queue(QUEUE_NAME, { connection: redis.client, prefix: keys.queuePrefix() });
  const hostQueues = new HostQueues(redis.client, redis.client, keys, 600_000); // no sweep sends it back during the test
  const feeder = new JobFeeder(feederOptions(keys, 'host-a', runner, capacity));
  try {
    // A backlog on the shared queue (a busy tenant's jobs, priority 50) and the one slot taken by its first.
    for (let i = 1; i <= 6; i++) await shared.add('run', { id: `a${i}`, image: IMAGE, memoryBytes: MiB }, { jobId: `a${i}`, priority: 50 });
    await feeder.start();
    await waitUntil(async () => started.length === 1, 5_000);
    assert.deepEqual(started, ['a1']);
    // The API placed another tenant's job here at submission (its view said a slot was free).
    await hostQueues.handOff('host-a', { id: 'b', image: IMAGE, memoryBytes: MiB, hops: 0, placed: 'submit', reason: 'image' }, 1);
    // The feeder sees it (its own queue's consumer takes it, finds no room, puts it back: a backlog of
    // its own), never by sleeping: under load that took longer than any fixed wait (200 ms failed at load 14).
    const own = new Queue(hostQueueName('host-a'), { connection: redis.client, prefix: keys.queuePrefix() });
    try {
      await waitUntil(async () => {
        const b = await own.getJob('b');
        return (b?.attemptsStarted ?? 0) >= 1 && ['waiting', 'prioritized'].includes(await own.getJobState('b'));
      }, 10_000, 'the feeder to take b from its own queue and put it back for want of a slot');
    } finally {
      await own.close();
    }
    assert.deepEqual(started, ['a1']);
    // Each slot freed: B must start at the next, or the one after (one shared fetch may be in flight
    // when the slot frees). Before the fix the shared queue's consumer took every freed slot.
    for (let n = 1; n <= 4 && !started.includes('b'); n++) {
      release(started.at(-1)!);
      await waitUntil(async () => started.length === n + 1, 5_000);
    }
    const at = started.indexOf('b');
    t.diagnostic(`started in order ${started.join(', ')}`);
    assert.ok(at >= 1 && at <= 2, `started in order ${started.join(', ')}: the placed job waited behind the shared queue`);
  } finally {
    for (const id of started) release(id);
    await feeder.close();
    await Promise.all([hostQueues.close(), shared.close()]);
  }
});

test('a job placed on a host that dies holding its entry, before claiming it, is sent on by another worker\'s sweep and runs there', { timeout: 90_000 }, async () => {
  const keys = new RedisKeys('feederdeath');
  const maxWaitMs = 300;
  // Host A takes the entry, then hangs before its claim and stops (its queue consumers and their stalled checks end): as a
  // process killed at that moment, nothing of it settles the entry or renews its lock. It sweeps nothing (maxWaitMs: never).
  let unhang = () => {};
  const hung = new Promise<void>((done) => (unhang = done));
  let took = () => {};
  const tookIt = new Promise<void>((done) => (took = done));
  const dying: Pick<JobRunner, 'run'> = { run: async () => (took(), await hung) };
  const feederA = new JobFeeder(feederOptions(keys, 'host-a', dying, new HostCapacity(new ObservedSlotPool(1), 1024 * MiB, 1)));
  const capacityB = new HostCapacity(new ObservedSlotPool(1), 1024 * MiB, 1);
  const { runner: runnerB, started: startedB, release } = heldRunner(capacityB);
  const feederB = new JobFeeder(feederOptions(keys, 'host-b', runnerB, capacityB, { maxWaitMs }));
  const placing = new HostQueues(redis.client, redis.client, keys, maxWaitMs);
  let closingA: Promise<void> | null = null;
  try {
    await feederA.start();
    await placing.handOff('host-a', { id: 'x', image: IMAGE, memoryBytes: MiB, hops: 0, placed: 'submit', reason: 'image' }, 1);
    await tookIt;
    closingA = feederA.close(); // stops taking and checking at once; waits (for ever) on the hung job
    await feederB.start();
    // Its entry's lock (10 s) lapses, then B's sweep finds the deadline A left and sends the job to the shared queue
    // (10–11 s on a quiet machine; the wait is long for a machine starved by other test files).
    await waitUntil(async () => startedB.includes('x'), 60_000, 'host B to run the job host A died holding');
  } finally {
    for (const id of startedB) release(id);
    unhang();
    await Promise.all([closingA ?? feederA.close(), feederB.close()]);
    await placing.close();
  }
});

test('a job this worker would hand to a holder of its image runs here when Redis says the holder has no slot left (hand-offs pending for it)', async () => {
  const keys = new RedisKeys('feederrefused');
  const logger = pino({ level: 'silent' });
  // host-h holds the image and says it has one free slot; an API copy has placed a job there already.
  const holder = new FleetView(redis.client, keys, 'host-h', 60_000, logger);
  await holder.syncImages([{ image: IMAGE, digest: `sha256:${'e'.repeat(64)}` }]);
  holder.publishCapacityNow({ slotsTotal: 1, slotsFree: 1, memoryTotal: 1024 * MiB, memoryFree: 1024 * MiB });
  await redis.client.zadd(keys.handoffs(), Date.now() + 600_000, 'host-h placed 1'); // as reserveHandoff-3.lua records it
  await redis.client.zadd(keys.handoffsByHost(), 0, 'host-h placed 1');
  const capacity = new HostCapacity(new ObservedSlotPool(2), 1024 * MiB, 1);
  const { runner, started, release } = heldRunner(capacity);
  const shared = new Queue(QUEUE_NAME, { connection: redis.client, prefix: keys.queuePrefix() });
  const hostH = new Queue(hostQueueName('host-h'), { connection: redis.client, prefix: keys.queuePrefix() });
  const feeder = new JobFeeder(feederOptions(keys, 'host-w', runner, capacity, { imageHere: false, cacheAware: true }));
  try {
    await shared.add('run', { id: 'j', image: IMAGE, memoryBytes: MiB }, { jobId: 'j', priority: 1 });
    await feeder.start();
    await waitUntil(async () => started.includes('j'), 5_000, 'the job to start here');
    assert.equal(await hostH.getJob('j'), undefined, 'not on the holder\'s queue');
    assert.deepEqual(await redis.client.zrange(keys.handoffs(), 0, -1), ['host-h placed 1'], 'no hand-off recorded for it');
  } finally {
    for (const id of started) release(id);
    await feeder.close();
    await Promise.all([shared.close(), hostH.close(), holder.leave()]);
  }
});

test('a job taken from this host\'s own queue counts once against its room in Redis: as a pending hand-off until it is claimed, then in the published free slots', async () => {
  const keys = new RedisKeys('feedercount');
  const capacity = new HostCapacity(new ObservedSlotPool(1), 1024 * MiB, 1);
  let claim!: () => void;
  const claimGate = new Promise<void>((r) => (claim = r));
  let finish!: () => void;
  const finishGate = new Promise<void>((r) => (finish = r));
  const runner: Pick<JobRunner, 'run'> = {
    async run(_id, priority, _placement, claimed) {
      capacity.imageReady(IMAGE);
      const slot = await capacity.slots.take(undefined, priority);
      await claimGate; // the claim in flight
      claimed?.();
      await finishGate;
      capacity.slots.give(slot);
    },
  };
  const hostQueues = new HostQueues(redis.client, redis.client, keys, 600_000);
  const feeder = new JobFeeder(feederOptions(keys, 'host-a', runner, capacity));
  /** What a placement checked in Redis sees: the published free slots less the hand-offs pending for host-a. */
  const roomInRedis = async () => {
    const [room, pending] = await Promise.all([redis.client.hget(keys.workerCapacity(), 'host-a'), redis.client.zrange(keys.handoffs(), 0, -1)]);
    return room === null ? Number.NaN : (JSON.parse(room) as { s: number }).s - pending.filter((m) => m.startsWith('host-a ')).length;
  };
  try {
    await feeder.start();
    await waitUntil(async () => (await roomInRedis()) === 1, 5_000, 'the one free slot published');
    await hostQueues.handOff('host-a', { id: 'p', image: IMAGE, memoryBytes: MiB, hops: 0, placed: 'submit', reason: 'image' }, 1);
    await waitUntil(async () => capacity.slots.asked === 1, 5_000, 'the placed job to take the slot');
    await new Promise((r) => setTimeout(r, 100)); // every coalesced publish out
    assert.equal(await roomInRedis(), 0, 'taken, not claimed yet: its hand-off counts it, the published room does not');
    claim();
    await waitUntil(async () => (await redis.client.zcard(keys.handoffs())) === 0, 5_000, 'the hand-off to go once claimed');
    assert.equal(await roomInRedis(), 0, 'claimed: the published room counts it');
  } finally {
    claim();
    finish();
    await feeder.close();
    await hostQueues.close();
  }
});
