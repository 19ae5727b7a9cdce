/**
 * Hand-offs between hosts: every worker consumes the shared queue and its own (hostQueueName), and a
 * job goes to another host's queue at most once: by the API when it is submitted (`placed: 'submit'`,
 * api/src/submit-placement.ts), or by the worker that took it from the shared queue (its BullMQ data
 * carries `hops`). A hand-off is also
 * recorded in the handoffs zset with a deadline: any worker's sweep sends a job that its host has not
 * taken by then (the host filled up, or died) back to the shared queue, still with its hop spent, so
 * queue time stays bounded by SBX_PLACEMENT_MAX_WAIT_MS plus one sweep.
 */
import { Queue, type Job } from 'bullmq';
import type { RedisClient } from '../redis.ts';
import { hostQueueName, QUEUE_NAME, type RedisKeys } from '../redis-keys.ts';
import type { QueuedJob } from '../job-queue.ts';
import { defineScripts, luaEvalText, luaScript } from '../redis-scripts.ts';

interface ScriptedClient {
  sbxReserveHandoff(handoffs: string, byHost: string, capacity: string, host: string, member: string, deadline: number): Promise<number>;
  sbxAddHandoff(handoffs: string, byHost: string, member: string, deadline: number): Promise<number>;
  sbxDropHandoff(handoffs: string, byHost: string, member: string): Promise<number>;
  sbxReconcileHandoffs(handoffs: string, byHost: string): Promise<number>;
}
// A hand-off is a member of two zsets, written together: the handoffs zset (by deadline: the sweep)
// and the by-host index (by host: what placeOn counts).
const SCRIPTS = {
  sbxReserveHandoff: luaScript('reserveHandoff-3'),
  sbxAddHandoff: luaScript('addHandoff-2'),
  sbxDropHandoff: luaScript('dropHandoff-2'),
  sbxReconcileHandoffs: luaScript('reconcileHandoffs-2'),
};

/** removeEmptyHostQueue-11 without its leading comment: sent as EVAL (rare: a worker gone for good). */
const REMOVE_EMPTY = luaEvalText(luaScript('removeEmptyHostQueue-11'));
/** The queue keys removeEmptyHostQueue-11 takes, in its order. */
const REMOVE_EMPTY_KEYS = ['wait', 'paused', 'active', 'prioritized', 'delayed', 'waiting-children', 'completed', 'failed', 'meta', 'events', 'id'] as const;

/** What a queue entry carries: the job id, and what placement needs without reading the job. */
export interface PlacedJob extends QueuedJob {
  image?: string;
  memoryBytes?: number;
  /** Hand-offs so far. */
  hops?: number;
  from?: string;
  reason?: 'image' | 'capacity';
  /** `submit`: the API put it on this host's queue when it was submitted (the host held its image and had room). */
  placed?: 'submit';
}

const ENTRY = { removeOnComplete: true, removeOnFail: true, attempts: 1 } as const;

/** How many queue objects (one per host written to or read from) are kept, and how long one unused is. */
export interface HostQueuesLimits {
  /** At most this many (default 256): past it, the least recently used idle ones are closed. */
  maxQueues?: number;
  /** One unused for this long is closed (default 60 s): a host gone for good is not written to again. */
  idleMs?: number;
}

interface Held {
  queue: Queue<PlacedJob>;
  usedAt: number;
  /** Calls in flight on it (never closed under them). */
  busy: number;
  /** Its setup failed: every call on it would fail the same way, so the next use makes a new one. */
  broken: boolean;
}

export class HostQueues {
  /** By queue name, least recently used first (an entry used is moved to the end). */
  private readonly queues = new Map<string, Held>();
  private readonly maxQueues: number;
  private readonly idleMs: number;
  private prunedAt = 0;
  private readonly scripted: ScriptedClient;

  constructor(
    private readonly connection: RedisClient,
    private readonly redis: RedisClient,
    private readonly keys: RedisKeys,
    private readonly maxWaitMs: number,
    limits: HostQueuesLimits = {},
  ) {
    this.scripted = defineScripts<ScriptedClient>(redis, SCRIPTS);
    this.maxQueues = Math.max(1, limits.maxQueues ?? 256);
    this.idleMs = limits.idleMs ?? 60_000;
  }

  /** Queue objects held now (one per host queue used lately, and the shared queue's). */
  get size(): number {
    return this.queues.size;
  }

  /**
   * `fn` with the queue object of `name`, made on first use. The API writes to the queue of every
   * host it places on, and hosts come and go (each restart under a new id is a new queue): the objects
   * of queues unused for `idleMs`, and past `maxQueues` the least recently used, are closed (the
   * queue's entries stay in Redis; a later use makes a new object).
   */
  private async using<T>(name: string, fn: (q: Queue<PlacedJob>) => Promise<T>): Promise<T> {
    const now = Date.now();
    let held = this.queues.get(name);
    if (held) this.queues.delete(name); // to the end: the most recently used
    if (held?.broken) void held.queue.close().catch(() => {}); // its calls in flight fail anyway
    if (!held || held.broken) held = this.open(name);
    held.usedAt = now;
    this.queues.set(name, held);
    if (this.queues.size > this.maxQueues || now - this.prunedAt > this.idleMs / 4) this.prune(now);
    held.busy++;
    try {
      return await fn(held.queue);
    } finally {
      held.busy--;
      held.usedAt = Date.now();
    }
  }

  /**
   * A new queue object for `name`. BullMQ sets one up once (waits for the connection, then INFO for
   * Redis's version) and keeps the outcome: if that fails (the API's connection fails fast while
   * Redis is down: a master dying as the object is made), every later call on the object fails with
   * the same error, Redis back or not. Such an object is marked and replaced at its next use.
   */
  private open(name: string): Held {
    const held: Held = { queue: new Queue<PlacedJob>(name, { connection: this.connection, prefix: this.keys.queuePrefix(), defaultJobOptions: ENTRY }), usedAt: Date.now(), busy: 0, broken: false };
    held.queue.waitUntilReady().catch(() => (held.broken = true));
    return held;
  }

  /** Close idle queue objects: those unused for idleMs, then the least recently used while over maxQueues. */
  private prune(now: number): void {
    this.prunedAt = now;
    let over = this.queues.size - this.maxQueues;
    for (const [name, held] of this.queues) {
      if (held.busy > 0) continue;
      if (over <= 0 && now - held.usedAt <= this.idleMs) continue;
      this.drop(name);
      over--;
    }
  }

  private drop(name: string): void {
    const held = this.queues.get(name);
    if (!held || held.busy > 0) return;
    this.queues.delete(name);
    void held.queue.close().catch(() => {});
  }

  /**
   * Put the job on `to`'s own queue, due back on the shared queue after the wait limit. The deadline
   * is sent first and the entry right behind it, without waiting (one round trip; in this order when
   * `redis` is the queue's connection, as the API's is).
   */
  async handOff(to: string, data: PlacedJob, priority: number): Promise<void> {
    const deadline = this.scripted.sbxAddHandoff(this.keys.handoffs(), this.keys.handoffsByHost(), handoffMember(to, data.id, priority), Date.now() + this.maxWaitMs);
    await Promise.all([deadline, this.addEntry(to, data, priority)]);
  }

  /**
   * handOff() for a placement decided from one process's view of the fleet (an API copy's at
   * submission, a worker's as it takes a job): the deadline is added only if Redis, where their
   * placements meet, says `to` still has a slot once every hand-off pending for it is counted
   * (reserveHandoff-3.lua), and only then the entry. False: nothing was written (others placed there
   * meanwhile); the caller queues the job on the shared queue, or runs it itself, instead of leaving
   * it on `to`'s queue to wait for a slot or its deadline. One round trip more than handOff(): the entry
   * may not go out before the answer (`to` would take it as soon as it is there).
   */
  async placeOn(to: string, data: PlacedJob, priority: number): Promise<boolean> {
    const reserved = await this.scripted.sbxReserveHandoff(this.keys.handoffs(), this.keys.handoffsByHost(), this.keys.workerCapacity(), to, handoffMember(to, data.id, priority), Date.now() + this.maxWaitMs);
    if (reserved !== 1) return false;
    await this.addEntry(to, data, priority);
    return true;
  }

  /** The job's entry on `to`'s own queue. */
  private async addEntry(to: string, data: PlacedJob, priority: number): Promise<void> {
    await this.using(hostQueueName(to), (q) => q.add('run', data, { jobId: data.id, priority }));
  }

  /**
   * Host `to` is done with job `id`'s entry (claimed it, handed it on, or found it ended): its deadline
   * is moot. Not sooner: until then the deadline is what sends the job on if the host dies holding it.
   */
  async taken(to: string, id: string, priority: number): Promise<void> {
    await this.endHandoff(handoffMember(to, id, priority));
  }

  /** A hand-off over: out of the handoffs zset and the by-host index. */
  private async endHandoff(member: string): Promise<void> {
    await this.scripted.sbxDropHandoff(this.keys.handoffs(), this.keys.handoffsByHost(), member);
  }

  /**
   * The by-host index without the hand-offs an older version's process ended in the handoffs zset
   * only (reconcileHandoffs-2.lua; O(pending hand-offs), now and then). Returns how many went.
   */
  reconcile(): Promise<number> {
    return this.scripted.sbxReconcileHandoffs(this.keys.handoffs(), this.keys.handoffsByHost());
  }

  /** Whether job `id` waits on some host's queue (its hand-off deadline is pending). */
  holds(id: string): Promise<boolean> {
    return handOffPending(this.redis, this.keys, id);
  }

  /** Hand-offs past their deadline: back to the shared queue those still waiting on their host's. Returns how many. */
  async sweep(now = Date.now()): Promise<number> {
    const due = await this.redis.zrangebyscore(this.keys.handoffs(), '-inf', now, 'LIMIT', 0, 100);
    let returned = 0;
    for (const member of due) {
      const [to, id, priority] = member.split(' ');
      if (!to || !id) {
        await this.endHandoff(member);
        continue;
      }
      const name = hostQueueName(to);
      const job = await this.using(name, (host) => host.getJob(id));
      if (job) {
        // remove() refuses a locked entry: its host holds it (deciding on it, waiting for room). Its
        // deadline stays, later: the host removes it once the job is settled (JobFeeder, taken()),
        // and a host that died holding it lets its lock lapse, so a later sweep sends it on.
        if (!(await this.sendBack(name, job, priority))) {
          await this.redis.zadd(this.keys.handoffs(), 'XX', now + this.maxWaitMs, member); // XX: not back if its host ended it meanwhile
          continue;
        }
        returned++;
      } else if ((await this.redis.hget(this.keys.jobState(id), 'status')) === 'queued' && !(await this.using(QUEUE_NAME, (q) => q.getJob(id)))) {
        // Off its host's queue but on no other while still queued: a sweep was stopped between the
        // remove and the add (Redis killed, its worker gone). Its deadline kept it here: on it goes.
        // (If its host took it and has not claimed it yet, the claim, a compare-and-set, runs it once.)
        await this.toShared({ id, hops: 1 }, priority);
        returned++;
      }
      await this.endHandoff(member);
      // An entry placed on a host that had already left (a placement decided from a view of the fleet
      // read before it went, after it emptied its queue): once no entry is left, its queue's keys go.
      if ((await this.redis.exists(this.keys.worker(to))) === 0) await this.removeIfEmpty(to).catch(() => false);
    }
    return returned;
  }

  /**
   * Worker `worker` is gone for good (it stopped, or the janitor forgot it after its heartbeat
   * expired): every entry still on its own queue goes back to the shared queue (hop spent, as after
   * the deadline) with its deadline, and the queue's keys are removed once none is left (one script:
   * an entry added meanwhile keeps them; its deadline sends it on, and that sweep removes them).
   * An entry still locked (its host may yet be deciding on it) stays, with its deadline, and so do
   * the keys: the sweep sends it on once its lock lapses. Returns the entries sent back and whether
   * the keys went.
   */
  async retire(worker: string): Promise<{ returned: number; removed: boolean }> {
    const name = hostQueueName(worker);
    const entries = await this.using(name, (q) => q.getJobs(['wait', 'paused', 'prioritized', 'delayed', 'active'], 0, -1));
    let returned = 0;
    for (const job of entries) {
      if (!job?.id) continue;
      const priority = job.opts.priority ?? 1;
      if (!(await this.sendBack(name, job, String(priority)))) continue;
      await this.endHandoff(handoffMember(worker, job.data.id, priority));
      returned++;
    }
    const removed = await this.removeIfEmpty(worker);
    return { returned, removed };
  }

  /** The BullMQ keys of `worker`'s own queue, removed if it holds no entry (removeEmptyHostQueue-11); its queue object closed. */
  private async removeIfEmpty(worker: string): Promise<boolean> {
    const name = hostQueueName(worker);
    const base = `${this.keys.queuePrefix()}:${name}:`;
    const removed = (await this.connection.eval(REMOVE_EMPTY, REMOVE_EMPTY_KEYS.length, ...REMOVE_EMPTY_KEYS.map((k) => base + k), base)) === 1;
    this.drop(name);
    return removed;
  }

  /** Off host queue `name` (refused, false, while its entry is locked) and onto the shared queue. */
  private async sendBack(name: string, job: Job<PlacedJob>, priority: string | undefined): Promise<boolean> {
    if ((await this.using(name, (host) => host.remove(job.id!)).catch(() => 0)) !== 1) return false;
    const { placed: _placed, ...data } = job.data; // back on the shared queue: whoever takes it, it was not placed there
    await this.toShared({ ...data, hops: Math.max(1, data.hops ?? 1) }, priority);
    return true;
  }

  private async toShared(data: PlacedJob, priority: string | undefined): Promise<void> {
    await this.using(QUEUE_NAME, (q) => q.add('run', data, { jobId: data.id, priority: Number(priority) || 1 }));
  }

  async close(): Promise<void> {
    const held = [...this.queues.values()];
    this.queues.clear();
    await Promise.all(held.map((h) => h.queue.close()));
  }
}

const handoffMember = (to: string, id: string, priority: number) => `${to} ${id} ${priority}`;

/** Whether job `id` has a hand-off deadline pending (it waits on, or was just taken from, some host's queue). */
export async function handOffPending(redis: RedisClient, keys: RedisKeys, id: string): Promise<boolean> {
  let cursor = '0';
  do {
    const [next, found] = await redis.zscan(keys.handoffs(), cursor, 'MATCH', `* ${id} *`, 'COUNT', 1000);
    if (found.length > 0) return true;
    cursor = next;
  } while (cursor !== '0');
  return false;
}
