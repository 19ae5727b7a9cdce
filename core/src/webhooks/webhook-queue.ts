/**
 * Webhook deliveries waiting to be made: a second BullMQ queue beside the jobs queue, under the same
 * `{<prefix>}` hash tag, processed by the workers (worker/src/webhooks). JobStore puts a job on it
 * when the job reaches a final status, whoever finished it (worker, API cancel, janitor); a retry is
 * the same entry again, delayed. An entry carries only the job id and the attempt number: the body
 * is read from the job record at each attempt.
 *
 * Fair between tenants: an attempt's queue priority is the number of its tenant's attempts queued or
 * in progress (`<p>:{tenant:<t>}:webhooks`), so a tenant whose receivers hang cannot keep another
 * tenant's webhooks waiting behind its backlog. Each attempt may hold a delivery slot for up to
 * SBX_WEBHOOK_TIMEOUT_MS; without this, 1,000 of them to a receiver that never answers held a
 * worker's 8 slots for 20 minutes before anyone else's turn.
 */
import { Queue } from 'bullmq';
import { queuePriority } from '../job-queue.ts';
import type { RedisClient } from '../redis.ts';
import type { RedisKeys } from '../redis-keys.ts';

export const WEBHOOK_QUEUE_NAME = 'webhooks';

export interface WebhookTask {
  id: string;
  /** Whose job it is (its fairness); absent in entries queued before it was recorded. */
  tenant?: string;
  /** 1 = the first attempt. */
  attempt: number;
  /** When the first attempt was queued (ms): retries stop SBX_WEBHOOK_RETRY_MS after it. */
  firstAt: number;
}

/** An attempt counted this long ago was left by a crash (retries end after SBX_WEBHOOK_RETRY_MS, 1 h by default). */
const STALE_MS = 2 * 3_600_000;

export class WebhookQueue {
  readonly queue: Queue<WebhookTask>;

  constructor(
    private readonly connection: RedisClient,
    private readonly keys: RedisKeys,
  ) {
    this.queue = new Queue<WebhookTask>(WEBHOOK_QUEUE_NAME, {
      connection,
      prefix: keys.queuePrefix(),
      defaultJobOptions: { removeOnComplete: true, removeOnFail: true, attempts: 1 },
    });
  }

  /** The first attempt for job `id` of `tenant` (at most one entry per attempt: BullMQ's jobId). */
  async enqueue(id: string, tenant: string | undefined): Promise<void> {
    await this.add({ id, ...(tenant ? { tenant } : {}), attempt: 1, firstAt: Date.now() }, 0);
  }

  /** The first attempt, unless it is in the queue already; whether it was queued now. */
  async enqueueIfAbsent(id: string, tenant: string | undefined): Promise<boolean> {
    if (await this.queue.getJob(`${id}-1`)) return false;
    await this.enqueue(id, tenant);
    return true;
  }

  /** Queues `task` after `delayMs`, behind the attempts of tenants with fewer outstanding. */
  async add(task: WebhookTask, delayMs: number): Promise<void> {
    const priority = task.tenant ? await this.count(task) : 1;
    await this.queue.add('deliver', task, { jobId: entryId(task), delay: Math.max(0, Math.round(delayMs)), priority: queuePriority(priority) });
  }

  /** `task` was attempted (whatever came of it): it no longer counts for its tenant. */
  async done(task: WebhookTask): Promise<void> {
    if (task.tenant) await this.connection.zrem(this.keys.tenantWebhooks(task.tenant), entryId(task));
  }

  /** Counts `task` for its tenant; how many it has outstanding with it. Leftovers of crashes age out. */
  private async count(task: WebhookTask): Promise<number> {
    const key = this.keys.tenantWebhooks(task.tenant!);
    const now = Date.now();
    const replies = await this.connection.multi().zremrangebyscore(key, '-inf', now - STALE_MS).zadd(key, now, entryId(task)).zcard(key).pexpire(key, STALE_MS).exec();
    const counted = replies?.[2]?.[1];
    return typeof counted === 'number' ? counted : 1;
  }

  async close(): Promise<void> {
    await this.queue.close();
  }
}

function entryId(task: WebhookTask): string {
  return `${task.id}-${task.attempt}`;
}
