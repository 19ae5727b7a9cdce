/**
 * Takes jobs from BullMQ by hand (no processor: Worker.getNextJob) so that this host takes a job only
 * when it can hold it (capacity.ts), from two queues: the shared one and its own (jobs the API placed
 * here at submission, or other hosts handed to it: core/src/placement/host-queues.ts). Each fetched
 * job is decided on (choose-host.ts): run here, hand on to a better host once, or fail when no live
 * host could ever run it. An entry of its own queue put back for want of room gets the next free slot
 * before the shared queue does (it was placed here to start here). The queue entry is completed
 * as soon as that is decided (the job record, not BullMQ, tracks the job from then on); an entry
 * whose worker died before deciding is put back by BullMQ's stalled check (maxStalledCount 1).
 */
import { Counter, type Registry } from 'prom-client';
import { Job, Worker } from 'bullmq';
import { ExceedsCapacityError } from '../../../core/src/errors.ts';
import { untilRedisTakes, type NotNowListener } from '../../../core/src/redis-not-now.ts';
import { finishJob } from '../../../core/src/job-lifecycle.ts';
import type { JobPlacement } from '../../../core/src/job-spec.ts';
import type { JobStore } from '../../../core/src/job-store.ts';
import type { Logger } from '../../../core/src/logger.ts';
import type { RedisClient } from '../../../core/src/redis.ts';
import { hostQueueName, QUEUE_NAME, type RedisKeys } from '../../../core/src/redis-keys.ts';
import type { ImageStore } from '../images/image-store.ts';
import type { JobRunner } from '../job-runner.ts';
import type { HostCapacity } from './capacity.ts';
import { chooseHost, needsFleet, type Decision } from './choose-host.ts';
import { imageKeys, takeRoom, type CapacitySnapshot } from '../../../core/src/placement/fleet-records.ts';
import { FleetView } from './fleet.ts';
import { HostQueues, type PlacedJob } from '../../../core/src/placement/host-queues.ts';

export interface FeederOptions {
  workerId: string;
  /** BullMQ's connection (connectRedis(…, { forBullMQ: true })); each queue consumer adds a blocking one. */
  connection: RedisClient;
  redis: RedisClient;
  keys: RedisKeys;
  store: JobStore;
  images: Pick<ImageStore, 'list' | 'holds'>;
  runner: Pick<JobRunner, 'run'>;
  capacity: HostCapacity;
  cacheAware: boolean;
  /** SBX_PLACEMENT_MAX_WAIT_MS */
  maxWaitMs: number;
  /** A host whose capacity entry is older than this is dead (the heartbeat limit). */
  liveMs: number;
  logger: Logger;
  registry: Registry;
}

/**
 * A queue entry's lock, and how often BullMQ looks for entries whose lock lapsed. An entry taken by a
 * fetch whose answer never arrived (Redis restarted mid-reply) is locked by nobody alive: it goes back
 * to the queue within LOCK_MS + 2 × STALLED_CHECK_MS. Entries are held only while a job is decided on.
 */
const LOCK_MS = 10_000;
const STALLED_CHECK_MS = 5_000;
/** Jobs for one image decided on within this long share one look at the fleet. */
const LOOK_SHARED_MS = 50;

export class JobFeeder {
  private readonly fleet: FleetView;
  private readonly hostQueues: HostQueues;
  private readonly consumers: Worker<PlacedJob>[] = [];
  private readonly loops: Promise<void>[] = [];
  private readonly running = new Set<Promise<void>>();
  /** Image keys of held jobs whose image is being pulled here (published before the cache lists them). */
  private readonly pulling = new Map<string, number>();
  private readonly stopping = new AbortController();
  private sweeper: NodeJS.Timeout | null = null;
  private tokens = 0;
  private paused = false;
  private started = false;
  private unpause: Array<() => void> = [];
  /**
   * An entry of this host's own queue was put back for want of room: the next free slot goes to it,
   * not to the shared queue. Without this the shared queue's consumer, which always has an entry and
   * waits for room first, took every freed slot, and a job placed here waited until the hand-off
   * sweep sent it back to the shared queue (SBX_PLACEMENT_MAX_WAIT_MS), behind a backlog it should
   * have overtaken.
   */
  private ownBacklog = false;
  /**
   * Entries of this host's own queue being decided on or started, whose hand-off is still pending in
   * Redis (until complete()): counted there, so left out of the room this host publishes (room()).
   */
  private readonly ownUnsettled = new Set<string>();
  private ownTurn: { done: Promise<void>; end: () => void } | null = null;
  private readonly handoffs: Counter<'reason'>;
  private readonly returns: Counter;
  /** How often BullMQ's connection closed (a fetch sent before one and answered after it may have been sent twice). */
  private connectionDrops = 0;
  private readonly countDrop = () => void this.connectionDrops++;

  constructor(private readonly o: FeederOptions) {
    this.fleet = new FleetView(o.redis, o.keys, o.workerId, o.liveMs, o.logger);
    this.hostQueues = new HostQueues(o.connection, o.redis, o.keys, o.maxWaitMs);
    this.handoffs = new Counter({ name: 'sbx_placement_handoffs_total', help: 'Jobs this worker handed to another host\'s queue, by reason (image: it holds the image; capacity: no room here)', labelNames: ['reason'], registers: [o.registry] });
    for (const reason of ['image', 'capacity']) this.handoffs.inc({ reason }, 0);
    this.returns = new Counter({ name: 'sbx_placement_returns_total', help: 'Handed-off jobs sent back to the shared queue because their host had not taken them in SBX_PLACEMENT_MAX_WAIT_MS', registers: [o.registry] });
  }

  /** `onRefused`: told while Redis refuses the first writes for now (full, loading), which wait for it (redis-not-now.ts). */
  async start(onRefused?: NotNowListener): Promise<void> {
    const { capacity } = this.o;
    this.o.connection.on('close', this.countDrop);
    await untilRedisTakes(() => this.fleet.reset(), { onRefused });
    const cached = await this.o.images.list();
    await untilRedisTakes(() => this.fleet.syncImages(cached), { onRefused });
    this.started = true;
    capacity.onChange = () => this.fleet.publishCapacity(() => this.room());
    capacity.onChange();
    for (const name of [hostQueueName(this.o.workerId), QUEUE_NAME]) {
      const consumer = new Worker<PlacedJob>(name, null, {
        connection: this.o.connection,
        prefix: this.o.keys.queuePrefix(),
        autorun: false,
        lockDuration: LOCK_MS,
        stalledInterval: STALLED_CHECK_MS,
        maxStalledCount: 1, // only entries not decided on yet can stall: taking them again is safe
        drainDelay: 5,
      });
      consumer.on('error', (err) => this.o.logger.warn({ err: err.message, queue: name }, 'queue error'));
      void consumer.startStalledCheckTimer().catch(() => {});
      this.consumers.push(consumer);
      this.loops.push(this.loop(consumer));
    }
    const every = Math.max(50, Math.floor(this.o.maxWaitMs / 2));
    let sweeps = 0;
    this.sweeper = setInterval(() => {
      // Now and then: forget hosts silent for 10 heartbeat limits (a crashed worker that never came
      // back), and their own queues: entries back to the shared queue, then its keys (retire()); and
      // drop from the hand-offs' by-host index what an older version ended in the handoffs zset only.
      if (sweeps++ % 100 === 0) {
        void this.fleet.prune(this.o.liveMs * 10).then((gone) => this.retireQueues(gone)).catch(() => {});
        this.hostQueues.reconcile().then(
          (n) => n && this.o.logger.info({ handoffs: n }, 'hand-offs ended by an older version were counted as pending for their host: no longer'),
          (err: Error) => this.o.logger.warn({ err: err.message }, 'reconciling the hand-offs\' by-host index failed'),
        );
      }
      this.hostQueues.sweep().then(
        (n) => n && (this.returns.inc(n), this.o.logger.info({ jobs: n }, 'handed-off jobs not taken in time went back to the shared queue')),
        (err: Error) => this.o.logger.warn({ err: err.message }, 'hand-off sweep failed'),
      );
    }, every);
  }

  /** At each heartbeat: refresh this host's capacity entry and the image sets it is in. */
  async heartbeat(cached: ReadonlyArray<{ image: string; digest: string }>): Promise<void> {
    if (!this.started) return;
    this.o.capacity.onChange();
    await this.fleet.syncImages(cached, new Set(this.pulling.keys()));
  }

  /** Take no more jobs until resume() (Redis lost: redis-watchdog.ts); the jobs held are the caller's to kill. */
  async pause(_doNotWaitActive?: boolean): Promise<void> {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    for (const go of this.unpause.splice(0)) go();
  }

  /** Stop taking jobs and wait for the ones taken to end (the caller kills them after its grace). */
  async close(): Promise<void> {
    this.stopping.abort();
    this.o.connection.off('close', this.countDrop);
    this.resume();
    this.endOwnBacklog();
    if (this.sweeper) clearInterval(this.sweeper);
    await Promise.all(this.consumers.map((c) => c.close(true).catch(() => {})));
    await Promise.all(this.loops);
    await Promise.allSettled([...this.running]);
    await this.fleet.leave().catch(() => {});
    // Out of the fleet's view: this host's own queue goes back to the shared queue and its keys go
    // (a job placed here after this is sent on by its deadline, and that sweep removes them).
    await this.retireQueues([this.o.workerId]);
    await this.hostQueues.close();
  }

  /** The own queues of hosts gone for good: their entries to the shared queue, their keys removed (HostQueues.retire). */
  private async retireQueues(ids: readonly string[]): Promise<void> {
    for (const id of ids) {
      try {
        const { returned, removed } = await this.hostQueues.retire(id);
        if (returned || !removed) this.o.logger.info({ worker: id, returned, removed }, returned ? "a gone host's queued jobs went back to the shared queue" : "a gone host's queue still holds a locked entry: its keys go once the hand-off sweep sends it on");
      } catch (err) {
        this.o.logger.warn({ err: (err as Error).message, worker: id }, "removing a gone host's own queue failed");
      }
    }
  }

  private async loop(consumer: Worker<PlacedJob>): Promise<void> {
    const { capacity, logger } = this.o;
    const stop = this.stopping.signal;
    while (!stop.aborted) {
      if (this.paused) {
        await new Promise<void>((go) => this.unpause.push(go));
        continue;
      }
      const own = consumer.name !== QUEUE_NAME;
      // Full: wait for room, but this host's own queue keeps a blocking fetch out (when it has no entry
      // put back yet): an entry placed here meanwhile is seen at once, put back as ownBacklog, and takes
      // the next free slot. Without it the entry was seen only when a slot freed, and then raced the
      // shared queue's fetch for it, losing it again and again on a loaded host (a1, a2, a3, b).
      if (!capacity.canFetch() && !(own && !this.ownBacklog)) {
        await capacity.nextChange(stop);
        continue;
      }
      if (!own && this.ownBacklog) {
        await Promise.race([this.awaitOwnTurn(), capacity.nextChange(stop)]);
        continue;
      }
      const token = `${this.o.workerId}:${this.tokens++}`;
      let job: Job<PlacedJob> | undefined;
      const drops = this.connectionDrops;
      try {
        // With a backlog known, its entry is there: no blocking wait (which ends only at a new entry).
        job = await consumer.getNextJob(token, { block: !(own && this.ownBacklog) });
        if (this.connectionDrops !== drops) {
          await this.putBackStrays(consumer, token, job?.id).catch((err: Error) => logger.warn({ err: err.message, queue: consumer.name }, 'looking for entries taken by a fetch whose answer was lost failed; BullMQ takes them again after their lock expires'));
        }
      } catch (err) {
        if (stop.aborted) break;
        logger.warn({ err: (err as Error).message, queue: consumer.name }, 'taking a job from the queue failed');
        await delay(1000, stop);
        continue;
      }
      if (!job) {
        if (own) this.endOwnBacklog();
        continue;
      }
      if (!capacity.canFetch()) {
        // This fetch was waiting since before the host filled up (the other queue's consumer took a
        // job meanwhile): the job goes back where it was, for a host with room (or this one later).
        await job.moveToWait(token).catch((err: Error) => logger.warn({ err: err.message, jobId: job.data.id }, 'putting back a job taken without room failed; BullMQ takes it again after its lock expires'));
        if (own) this.ownBacklog = true;
        continue;
      }
      const decided = capacity.startDeciding();
      if (own) this.ownUnsettled.add(job.data.id);
      const handled = this.handle(job, token, decided)
        .catch((err: Error) => logger.error({ err, jobId: job.data.id }, 'placing a job failed; BullMQ takes it again after its lock expires'))
        .finally(() => {
          if (own) this.ownUnsettled.delete(job.data.id);
          decided();
          this.running.delete(handled);
        });
      this.running.add(handled);
    }
  }

  /**
   * A fetch Redis applied whose answer was lost with the connection (Redis killed before answering,
   * the link dropped) is sent again by ioredis after reconnecting, and takes the next entry: the
   * first is left locked with the fetch's token by nobody, and would wait out its lock (LOCK_MS)
   * and a stalled check before any worker took it. After a fetch across a closed connection, every
   * entry of that queue locked with its token, other than the one it returned, goes back at once.
   */
  private async putBackStrays(consumer: Worker<PlacedJob>, token: string, kept: string | undefined): Promise<void> {
    const conn = this.o.connection;
    for (const entryId of await conn.lrange(consumer.keys.active!, 0, -1)) {
      if (entryId === kept || (await conn.get(`${consumer.toKey(entryId)}:lock`)) !== token) continue;
      const stray = await Job.fromId<PlacedJob>(consumer, entryId);
      await stray?.moveToWait(token);
      this.o.logger.info({ jobId: stray?.data.id, queue: consumer.name }, 'a queue entry taken by a fetch whose answer was lost went back to its queue');
    }
  }

  /** Resolves once this host's own queue has no entry put back (endOwnBacklog), or the feeder stops. */
  private awaitOwnTurn(): Promise<void> {
    if (!this.ownTurn) {
      let end!: () => void;
      const done = new Promise<void>((resolve) => (end = resolve));
      this.ownTurn = { done, end };
    }
    return this.ownTurn.done;
  }

  private endOwnBacklog(): void {
    this.ownBacklog = false;
    this.ownTurn?.end();
    this.ownTurn = null;
  }

  private async handle(job: Job<PlacedJob>, token: string, decided: () => void): Promise<void> {
    const o = this.o;
    const data = job.data;
    const id = data.id;
    const priority = job.opts.priority ?? 1;
    // The record is read while the job is decided on, not after: one round trip less before the
    // claim, which checks in Redis that the job is still queued (a stale read cannot start it twice).
    const record = o.store.get(id);
    record.catch(() => {}); // awaited below, or dropped with the decision
    let { image, memoryBytes } = data;
    if (image === undefined || memoryBytes === undefined) {
      const stored = await record;
      if (!stored || stored.status !== 'queued') return void (await this.complete(job, token)); // ended or taken meanwhile
      image = stored.spec.image;
      memoryBytes = stored.spec.limits.memoryBytes;
    }
    const hops = data.hops ?? 0;
    const placedAtSubmit = data.placed === 'submit';
    const imageCached = await this.isCached(image);
    // Placed here by the API counts as the one hop a job may make (a job too large for this host still moves).
    const input = { memoryBytes, hops: placedAtSubmit ? hops + 1 : hops, imageCached, startsNow: o.capacity.startsNow(memoryBytes), memoryTotal: o.capacity.memoryTotal, cacheAware: o.cacheAware };
    let decision: Decision = { action: 'run' };
    if (needsFleet(input)) {
      const view = await this.fleet.lookShared(image, LOOK_SHARED_MS);
      decision = chooseHost({ ...input, ...view });
      // The view is shared with the jobs decided on in the next few ms: this one takes room in it.
      if (decision.action === 'handoff') takeRoom(view.hosts, decision.to, memoryBytes);
    }

    if (decision.action === 'handoff') {
      // Handed on only if Redis, where every host's and API copy's placements meet, says the host
      // still has a slot for it once the hand-offs pending for it are counted; else it runs here. A
      // job larger than this host's whole budget goes whatever: it could never run here.
      const handed: PlacedJob = { ...data, image, memoryBytes, hops: hops + 1, from: o.workerId, reason: decision.reason };
      const placed = memoryBytes > o.capacity.memoryTotal
        ? await this.hostQueues.handOff(decision.to, handed, priority).then(() => true)
        : await this.hostQueues.placeOn(decision.to, handed, priority);
      if (placed) {
        this.handoffs.inc({ reason: decision.reason });
        o.logger.debug({ jobId: id, to: decision.to, reason: decision.reason }, 'job handed to another host');
        return void (await this.complete(job, token));
      }
    }
    if (decision.action === 'fail') {
      const doc = await o.store.getDoc(id);
      const e = new ExceedsCapacityError(memoryBytes, decision.largestBudget);
      if (doc?.status === 'queued') await finishJob(o.store, doc, 'error', { code: e.code, message: e.message });
      o.logger.info({ jobId: id, memoryBytes, largestBudget: decision.largestBudget }, 'job can never fit a live host: failed');
      return void (await this.complete(job, token));
    }

    // Read again after a wait for memory: the record may have changed meanwhile (cancelled, say).
    const fresh = o.capacity.startsNow(memoryBytes) ? record : undefined;
    // Run here: its memory counts from now (waiting, first come first served, if it does not fit yet).
    const holding = o.capacity.hold(memoryBytes, image, imageCached);
    decided();
    const hold = await this.keepingLock(job, token, holding);
    const pulledKeys = imageCached ? [] : imageKeys(image);
    for (const k of pulledKeys) this.pulling.set(k, (this.pulling.get(k) ?? 0) + 1);
    if (!imageCached && o.cacheAware) void this.fleet.willHold(image).catch(() => {});
    const placement: JobPlacement = { imageCached, hops, handedFrom: data.from ? { worker: data.from, reason: data.reason ?? 'image' } : null, ...(placedAtSubmit ? { placedAtSubmit } : {}) };
    try {
      // The entry is completed once the claim is settled (after it in Redis's order, AOF included),
      // in the loop's next check phase: the run's next steps (cancel flag, image, slot, start mark)
      // go out first, and BullMQ's completion runs while Redis answers them.
      await o.runner.run(id, priority, placement, () => void setImmediate(() => void this.complete(job, token)), fresh);
    } finally {
      hold.release();
      for (const k of pulledKeys) {
        const n = (this.pulling.get(k) ?? 1) - 1;
        if (n > 0) this.pulling.set(k, n);
        else this.pulling.delete(k);
      }
      if (!imageCached) void this.syncImages();
    }
  }

  /** The room this host publishes: its capacity, with the own-queue jobs Redis still counts as hand-offs left out. */
  private room(): CapacitySnapshot {
    return this.o.capacity.snapshot(this.ownUnsettled.size);
  }

  /** The cache changed (a pull, and evictions after it): publish the difference now rather than at the next heartbeat. */
  private async syncImages(): Promise<void> {
    try {
      await this.fleet.syncImages(await this.o.images.list(), new Set(this.pulling.keys()));
    } catch (err) {
      this.o.logger.debug({ err: (err as Error).message }, 'publishing cached images failed');
    }
  }

  private async isCached(image: string): Promise<boolean> {
    return this.o.images.holds(image).catch(() => false);
  }

  /** While the job waits here for memory, its queue entry stays locked (a crash meanwhile hands it to another host). */
  private async keepingLock<T>(job: Job<PlacedJob>, token: string, work: Promise<T>): Promise<T> {
    const timer = setInterval(() => void job.extendLock(token, LOCK_MS).catch(() => {}), LOCK_MS / 3);
    try {
      return await work;
    } finally {
      clearInterval(timer);
    }
  }

  /**
   * Done with the queue entry (removed: removeOnComplete); an entry of this host's own queue takes its
   * hand-off deadline with it. Only now: a host that dies holding an entry it has not settled leaves
   * the deadline, and any worker's sweep sends the job on once the entry's lock lapses.
   */
  private async complete(job: Job<PlacedJob>, token: string): Promise<void> {
    const own = job.queueName !== QUEUE_NAME;
    // The room that counts this job, in Redis before its hand-off goes (same connection: in this order):
    // a placement checked here (reserveHandoff-3.lua) counts it in one or the other, never in neither.
    if (own && this.ownUnsettled.delete(job.data.id)) this.fleet.publishCapacityNow(this.room());
    await Promise.all([
      job.moveToCompleted(null, token, false).catch((err: Error) => this.o.logger.warn({ err: err.message, jobId: job.data.id }, 'completing a queue entry failed')),
      own && this.hostQueues.taken(this.o.workerId, job.data.id, job.opts.priority ?? 1).catch(() => {}),
    ]);
  }
}

function delay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
  });
}
