/**
 * Webhook deliveries waiting to be made: a second BullMQ queue beside the jobs queue, under the same
 * `{<prefix>}` hash tag, processed by the workers (worker/src/webhooks). JobStore puts a job on it
 * when the job reaches a final status, whoever finished it (worker, API cancel, janitor); a retry is
 * the same entry again, delayed. An entry carries only the job id and the attempt number: the body
 * is read from the job record at each attempt.
 */
import { Queue } from 'bullmq';
import type { RedisClient } from '../redis.ts';
import type { RedisKeys } from '../redis-keys.ts';

export const WEBHOOK_QUEUE_NAME = 'webhooks';

export interface WebhookTask {
  id: string;
  /** 1 = the first attempt. */
  attempt: number;
  /** When the first attempt was queued (ms): retries stop SBX_WEBHOOK_RETRY_MS after it. */
  firstAt: number;
}

export class WebhookQueue {
  readonly queue: Queue<WebhookTask>;

  constructor(connection: RedisClient, keys: RedisKeys) {
    this.queue = new Queue<WebhookTask>(WEBHOOK_QUEUE_NAME, {
      connection,
      prefix: keys.queuePrefix(),
      defaultJobOptions: { removeOnComplete: true, removeOnFail: true, attempts: 1 },
    });
  }

  /** The first attempt for job `id` (at most one entry per attempt: BullMQ's jobId). */
  async enqueue(id: string): Promise<void> {
    await this.add({ id, attempt: 1, firstAt: Date.now() }, 0);
  }

  /** The first attempt, unless it is in the queue already; whether it was queued now. */
  async enqueueIfAbsent(id: string): Promise<boolean> {
    if (await this.queue.getJob(`${id}-1`)) return false;
    await this.enqueue(id);
    return true;
  }

  async add(task: WebhookTask, delayMs: number): Promise<void> {
    await this.queue.add('deliver', task, { jobId: `${task.id}-${task.attempt}`, delay: Math.max(0, Math.round(delayMs)) });
  }

  async close(): Promise<void> {
    await this.queue.close();
  }
}
