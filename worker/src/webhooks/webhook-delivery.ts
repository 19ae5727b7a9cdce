/**
 * Delivering a finished job's webhook: one attempt per entry of the webhooks queue
 * (core/src/webhooks/webhook-queue.ts). The body is the finished job document as stored (without
 * its `callback` state), signed with the tenant's secret; the attempt is recorded on the job
 * (`callback.attempts`); a retryable failure (timeout, connection error, 5xx) queues the next attempt
 * with exponential backoff until SBX_WEBHOOK_RETRY_MS after the first; 4xx, redirects and
 * egress refusals end it at once. Runs on every worker (`startWebhookWorker`).
 */
import { Worker } from 'bullmq';
import type { Dispatcher } from 'undici';
import { webhookSecretFor, type Env } from '../../../core/src/config.ts';
import { EgressPolicy } from '../../../core/src/egress/egress-policy.ts';
import { egressAgent } from '../../../core/src/egress/guarded-connector.ts';
import type { CallbackAttempt, CallbackState, JobDocument } from '../../../core/src/job-spec.ts';
import type { JobStore } from '../../../core/src/job-store.ts';
import type { Logger } from '../../../core/src/logger.ts';
import type { WorkerMetrics } from '../../../core/src/metrics.ts';
import type { RedisClient } from '../../../core/src/redis.ts';
import type { RedisKeys } from '../../../core/src/redis-keys.ts';
import { WEBHOOK_QUEUE_NAME, WebhookQueue, type WebhookTask } from '../../../core/src/webhooks/webhook-queue.ts';
import { nextAttemptDelay, type BackoffPolicy } from './backoff.ts';
import { postWebhook, type PostOutcome } from './webhook-post.ts';

/** Attempts kept on the job document (the latest ones); the count of attempts made is not capped. */
export const MAX_RECORDED_ATTEMPTS = 50;

export type WebhookEnv = Pick<Env, 'SBX_WEBHOOK_SECRETS' | 'SBX_EGRESS_ALLOW' | 'SBX_WEBHOOK_TIMEOUT_MS' | 'SBX_WEBHOOK_RETRY_MS' | 'SBX_WEBHOOK_BACKOFF_MS' | 'SBX_WEBHOOK_BACKOFF_MAX_MS'>;

export interface WebhookDeliveryDeps {
  store: JobStore;
  queue: WebhookQueue;
  env: WebhookEnv;
  logger: Logger;
  metrics?: Pick<WorkerMetrics, 'webhookDeliveries' | 'webhookSeconds'>;
  /** Default: a keep-alive Agent behind the egress policy of env.SBX_EGRESS_ALLOW. */
  dispatcher?: Dispatcher;
}

/** What the receiver gets: the finished job document, without the webhook's own delivery state. */
export function webhookBody(doc: JobDocument): string {
  const { callback: _callback, queuePosition: _position, output: _output, ...rest } = doc;
  return JSON.stringify(rest);
}

export class WebhookDelivery {
  readonly dispatcher: Dispatcher;
  private readonly ownDispatcher: boolean;
  private readonly backoff: BackoffPolicy;

  constructor(private readonly deps: WebhookDeliveryDeps) {
    this.ownDispatcher = !deps.dispatcher;
    this.dispatcher = deps.dispatcher ?? egressAgent(new EgressPolicy(deps.env.SBX_EGRESS_ALLOW), { connect: { timeout: deps.env.SBX_WEBHOOK_TIMEOUT_MS } });
    this.backoff = { baseMs: deps.env.SBX_WEBHOOK_BACKOFF_MS, maxMs: deps.env.SBX_WEBHOOK_BACKOFF_MAX_MS, retryForMs: deps.env.SBX_WEBHOOK_RETRY_MS };
  }

  /** One attempt for `task`; queues the next one when it may help. It no longer counts for its tenant's fairness once done. */
  async attempt(task: WebhookTask): Promise<void> {
    try {
      await this.attemptOnce(task);
    } finally {
      await this.deps.queue.done(task).catch(() => {}); // else it ages out of the count
    }
  }

  private async attemptOnce(task: WebhookTask): Promise<void> {
    const job = await this.deps.store.get(task.id);
    const state = job?.doc.callback;
    if (!job || !state || state.delivered) return; // expired, no webhook, or done (a duplicate entry)
    const secret = webhookSecretFor(this.deps.env, job.tenant);
    const at = new Date();
    const outcome: PostOutcome = secret === null
      ? { status: null, ms: 0, delivered: false, retryable: false, error: { code: 'no_webhook_secret', message: `this worker has no webhook secret for tenant ${job.tenant} (SBX_WEBHOOK_SECRETS); not sent` } }
      : await postWebhook({ url: state.url, body: webhookBody(job.doc), secret, webhookId: job.doc.id, dispatcher: this.dispatcher, timeoutMs: this.deps.env.SBX_WEBHOOK_TIMEOUT_MS });
    const delay = outcome.retryable ? nextAttemptDelay(this.backoff, task.attempt, task.firstAt) : null;
    const record: CallbackAttempt = { at: at.toISOString(), ms: outcome.ms, status: outcome.status, error: outcome.error };
    const next: CallbackState = {
      url: state.url,
      delivered: outcome.delivered,
      attempts: [...state.attempts, record].slice(-MAX_RECORDED_ATTEMPTS),
      nextAttemptAt: delay === null ? null : new Date(Date.now() + delay).toISOString(),
    };
    // The next attempt is queued before this one is recorded: a crash in between repeats, never loses, one.
    if (delay !== null) await this.deps.queue.add({ ...task, attempt: task.attempt + 1 }, delay);
    await this.deps.store.recordCallback(task.id, next);
    const result = outcome.delivered ? 'delivered' : delay !== null ? 'retry' : 'failed';
    this.deps.metrics?.webhookDeliveries.inc({ result });
    if (outcome.status !== null) this.deps.metrics?.webhookSeconds.observe(outcome.ms / 1000);
    if (!outcome.delivered) this.deps.logger.info({ jobId: task.id, attempt: task.attempt, status: outcome.status, error: outcome.error?.code, retryInMs: delay }, 'webhook not delivered');
  }

  async close(): Promise<void> {
    if (this.ownDispatcher) await this.dispatcher.close();
  }
}

/** A delivery's queue entry lock, renewed while its attempt runs (BullMQ: every half of it). */
const WEBHOOK_LOCK_MS = 10_000;

/**
 * Process the webhooks queue on this worker: `concurrency` deliveries at once. `connection` must be
 * a BullMQ-ready client (maxRetriesPerRequest null), like the jobs queue's.
 */
export function startWebhookWorker(opts: {
  connection: RedisClient;
  keys: RedisKeys;
  store: JobStore;
  env: WebhookEnv & Pick<Env, 'SBX_WEBHOOK_CONCURRENCY'>;
  logger: Logger;
  metrics?: WebhookDeliveryDeps['metrics'];
  dispatcher?: Dispatcher;
}): { delivery: WebhookDelivery; close(): Promise<void> } {
  const queue = new WebhookQueue(opts.connection, opts.keys); // BullMQ's scripts stay off the store's connection
  const delivery = new WebhookDelivery({ store: opts.store, queue, env: opts.env, logger: opts.logger, ...(opts.metrics ? { metrics: opts.metrics } : {}), ...(opts.dispatcher ? { dispatcher: opts.dispatcher } : {}) });
  const worker = new Worker<WebhookTask>(WEBHOOK_QUEUE_NAME, async (entry) => delivery.attempt(entry.data), {
    connection: opts.connection,
    prefix: opts.keys.queuePrefix(),
    concurrency: opts.env.SBX_WEBHOOK_CONCURRENCY,
    drainDelay: 5,
    // A delivery whose worker died mid-attempt goes back to the queue once its lock lapses (within
    // lockDuration + 2 × stalledInterval; BullMQ's defaults, 30 s each, made that up to 90 s).
    // BullMQ gives up an entry that stalled more than maxStalledCount times (its default, 1, lost
    // the webhook of a delivery whose worker died twice); a webhook is delivered at least once, so
    // only one that kept killing the workers that took it is given up.
    lockDuration: WEBHOOK_LOCK_MS,
    stalledInterval: WEBHOOK_LOCK_MS / 2,
    maxStalledCount: 10,
  });
  worker.on('error', (err) => opts.logger.warn({ err: err.message }, 'webhook queue error'));
  worker.on('failed', (entry, err) => opts.logger.warn({ jobId: entry?.data.id, err: err.message }, 'webhook delivery failed'));
  return {
    delivery,
    async close() {
      await worker.close();
      await queue.close();
      await delivery.close();
    },
  };
}
