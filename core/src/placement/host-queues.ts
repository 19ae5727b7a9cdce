/**
 * Hand-offs between hosts: every worker consumes the shared queue and its own (hostQueueName), and a
 * job goes to another host's queue at most once: by the API when it is submitted (`placed: 'submit'`,
 * api/src/submit-placement.ts), or by the worker that took it from the shared queue (its BullMQ data
 * carries `hops`). A hand-off is also
 * recorded in the handoffs zset with a deadline: any worker's sweep sends a job that its host has not
 * taken by then (the host filled up, or died) back to the shared queue, still with its hop spent, so
 * queue time stays bounded by SBX_PLACEMENT_MAX_WAIT_MS plus one sweep.
 */
import { Queue } from 'bullmq';
import type { RedisClient } from '../redis.ts';
import { hostQueueName, QUEUE_NAME, type RedisKeys } from '../redis-keys.ts';
import type { QueuedJob } from '../job-queue.ts';

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

export class HostQueues {
  private readonly queues = new Map<string, Queue<PlacedJob>>();

  constructor(
    private readonly connection: RedisClient,
    private readonly redis: RedisClient,
    private readonly keys: RedisKeys,
    private readonly maxWaitMs: number,
  ) {}

  private queue(name: string): Queue<PlacedJob> {
    let q = this.queues.get(name);
    if (!q) {
      q = new Queue<PlacedJob>(name, { connection: this.connection, prefix: this.keys.queuePrefix(), defaultJobOptions: ENTRY });
      this.queues.set(name, q);
    }
    return q;
  }

  /**
   * Put the job on `to`'s own queue, due back on the shared queue after the wait limit. The deadline
   * is sent first and the entry right behind it, without waiting (one round trip; in this order when
   * `redis` is the queue's connection, as the API's is).
   */
  async handOff(to: string, data: PlacedJob, priority: number): Promise<void> {
    const deadline = this.redis.zadd(this.keys.handoffs(), Date.now() + this.maxWaitMs, handoffMember(to, data.id, priority));
    await Promise.all([deadline, this.queue(hostQueueName(to)).add('run', data, { jobId: data.id, priority })]);
  }

  /**
   * Host `to` is done with job `id`'s entry (claimed it, handed it on, or found it ended): its deadline
   * is moot. Not sooner: until then the deadline is what sends the job on if the host dies holding it.
   */
  async taken(to: string, id: string, priority: number): Promise<void> {
    await this.redis.zrem(this.keys.handoffs(), handoffMember(to, id, priority));
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
        await this.redis.zrem(this.keys.handoffs(), member);
        continue;
      }
      const host = this.queue(hostQueueName(to));
      const job = await host.getJob(id);
      if (job) {
        // remove() refuses a locked entry: its host holds it (deciding on it, waiting for room). Its
        // deadline stays, later: the host removes it once the job is settled (JobFeeder, taken()),
        // and a host that died holding it lets its lock lapse, so a later sweep sends it on.
        if ((await host.remove(id).catch(() => 0)) !== 1) {
          await this.redis.zadd(this.keys.handoffs(), now + this.maxWaitMs, member);
          continue;
        }
        const { placed: _placed, ...data } = job.data; // back on the shared queue: whoever takes it, it was not placed there
        await this.toShared({ ...data, hops: Math.max(1, data.hops ?? 1) }, priority);
        returned++;
      } else if ((await this.redis.hget(this.keys.jobState(id), 'status')) === 'queued' && !(await this.queue(QUEUE_NAME).getJob(id))) {
        // Off its host's queue but on no other while still queued: a sweep was stopped between the
        // remove and the add (Redis killed, its worker gone). Its deadline kept it here: on it goes.
        // (If its host took it and has not claimed it yet, the claim, a compare-and-set, runs it once.)
        await this.toShared({ id, hops: 1 }, priority);
        returned++;
      }
      await this.redis.zrem(this.keys.handoffs(), member);
    }
    return returned;
  }

  private async toShared(data: PlacedJob, priority: string | undefined): Promise<void> {
    await this.queue(QUEUE_NAME).add('run', data, { jobId: data.id, priority: Number(priority) || 1 });
  }

  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].map((q) => q.close()));
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
