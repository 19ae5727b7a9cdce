/**
 * The BullMQ queue that carries job ids from the API to workers. The job record itself lives in
 * JobStore; BullMQ only orders and distributes ids. BullMQ's jobId = our id, so a job can never be
 * queued twice, and completed entries are removed at once (our record keeps the history).
 */
import { Queue } from 'bullmq';
import type { RedisClient } from './redis.ts';
import { QUEUE_NAME, type RedisKeys } from './redis-keys.ts';

/** BullMQ's highest priority (its PRIORITY_LIMIT, 2^21 - 1). */
export const MAX_PRIORITY = 2 ** 21 - 1;

/** A job's queue priority as BullMQ takes it: an integer in 1..MAX_PRIORITY. */
export const queuePriority = (priority: number): number => Math.min(Math.max(1, Math.floor(priority)), MAX_PRIORITY);

/** The queue entry id of attempt `attempt` of job `id` (the first attempt's is the job id itself). */
export const requeueEntryId = (id: string, attempt: number): string => (attempt > 1 ? `${id}-r${attempt}` : id);

export interface QueuedJob {
  id: string;
  /** Placement hints (worker/src/placement), so a worker decides without reading the job first. */
  image?: string;
  memoryBytes?: number;
}

export class JobQueue {
  readonly queue: Queue<QueuedJob>;

  /** `connection`: the one BullMQ sends this queue's commands over (shared, not duplicated). */
  constructor(readonly connection: RedisClient, private readonly keys: RedisKeys) {
    this.queue = new Queue<QueuedJob>(QUEUE_NAME, {
      connection,
      prefix: keys.queuePrefix(),
      defaultJobOptions: { removeOnComplete: true, removeOnFail: true, attempts: 1 },
    });
  }

  /**
   * Queue a job. `priority` (1 = first; core/src/tenant-quota.ts gives 1 + the tenant's active jobs)
   * orders jobs across tenants: BullMQ takes the lowest first and equal ones in the order added.
   * `hints`: the job's image and limits.memoryBytes, for placement.
   */
  async add(id: string, priority = 1, hints: Omit<QueuedJob, 'id'> = {}): Promise<void> {
    await this.queue.add('run', { id, ...hints }, { jobId: id, priority: queuePriority(priority) });
  }

  /**
   * Queue attempt `attempt` (> 1) of a job whose worker was lost before its command started
   * (core/src/job-lifecycle.ts): first in line (it has waited once already), under its own entry id
   * (`<id>-r<attempt>`: the first entry may still be held by the lost worker's lock), so adding the
   * same attempt twice adds it once.
   */
  async requeue(id: string, attempt: number): Promise<void> {
    await this.queue.add('run', { id }, { jobId: requeueEntryId(id, attempt), priority: 1 });
  }

  /** The hash BullMQ keeps of entry `entryId` on queue `queueName` (the shared one unless told): it exists while the entry does. */
  entryKey(entryId: string, queueName = QUEUE_NAME): string {
    return `${this.keys.queuePrefix()}:${queueName}:${entryId}`;
  }

  /** BullMQ's sorted set of the shared queue's waiting entries (score: priority × 2^32 + order added). */
  get waitingKey(): string {
    return this.queue.keys.prioritized!;
  }

  /**
   * Queue positions (1 = the next job a worker takes; null = not waiting in the queue, e.g. taken
   * already): the rank in BullMQ's prioritized sorted set (score = priority, then order added), one
   * ZRANK each (O(log n)), sent back to back (one round trip). Not a pipeline(): this is BullMQ's
   * connection, and ioredis copies its ~50 scripts into each Pipeline. Every job sbx queues has a
   * priority >= 1, so none sits in BullMQ's plain wait list.
   */
  async positions(ids: readonly string[]): Promise<Array<number | null>> {
    if (ids.length === 0) return [];
    const key = this.queue.keys.prioritized!;
    const client = (await this.queue.client) as unknown as RedisClient;
    const ranks = await Promise.all(ids.map((id) => client.zrank(key, id)));
    return ranks.map((rank) => (typeof rank === 'number' ? rank + 1 : null));
  }

  async position(id: string): Promise<number | null> {
    return (await this.positions([id]))[0] ?? null;
  }

  /**
   * Jobs waiting to be taken, for the queue-depth metric: the shared queue's (BullMQ's prioritized +
   * wait) and those on workers' own queues (placement: each has a hand-off deadline until its worker
   * takes it, core/src/placement/host-queues.ts).
   */
  async depth(): Promise<number> {
    const [counts, onHosts] = await Promise.all([this.queue.getJobCounts('prioritized', 'wait'), this.connection.zcard(this.keys.handoffs())]);
    return (counts.prioritized ?? 0) + (counts.wait ?? 0) + onHosts;
  }

  /** Best effort: drop a job that has not been picked up (a picked-up one sees it was cancelled). */
  async remove(id: string): Promise<void> {
    await this.queue.remove(id).catch(() => 0);
  }

  async close(): Promise<void> {
    await this.queue.close();
  }
}
