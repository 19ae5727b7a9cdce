/**
 * Every Redis key sbx uses, built here and nowhere else. A job's keys share the hash tag
 * `{job:<id>}` so they live in one Cluster slot and one Lua script may touch them all.
 *
 * | key                                 | type   | lifetime                                   |
 * | ----------------------------------- | ------ | ------------------------------------------ |
 * | <p>:{job:<id>}:state                | hash   | doc, spec, status, tenant, cancel; TTL     |
 * | <p>:{job:<id>}:events               | stream | status/stdout/stderr/exit events; same TTL |
 * | <p>:{job:<id>}:notify               | pubsub | "something was appended" pings (no data)   |
 * | <p>:{job:<id>}:stdin                | stream | interactive: stdin/control frames, API → worker; deleted when the job ends |
 * | <p>:tenant:<t>:jobs                 | zset   | job ids by creation ms; trimmed past TTL   |
 * | <p>:tenant:<t>:idem:<sha256(key)>   | string | job id; 24 h                               |
 * | <p>:{tenant:<t>}:active             | zset   | ids of its queued/running jobs → priority  |
 * | <p>:{tenant:<t>}:rate               | hash   | submission token bucket (tokens, ts)       |
 * | <p>:{tenant:<t>}:images             | zset   | canonical images its jobs used → last ms   |
 * | <p>:{tenant:<t>}:repair             | string | at most one lazy repair of :active a second|
 * | <p>:{workers}:index                 | zset   | worker id by last heartbeat ms             |
 * | <p>:{workers}:info:<id>             | string | worker info JSON; TTL = 5 heartbeats       |
 * | <p>:{workers}:jobs:<id>             | set    | ids of the jobs it runs now                |
 *
 * The fleet's keys share the hash tag `{workers}` so listing them is one pipeline in one slot; a
 * tenant's quota keys share `{tenant:<t>}` so one Lua script admits a job (core/src/tenant-quota.ts).
 * | <p>:control                         | pubsub | cancel / image commands to workers         |
 * | {<p>}:jobs:*                        | BullMQ | the queue (BullMQ's own keys)              |
 */
import { createHash } from 'node:crypto';

export const IDEMPOTENCY_TTL_SECONDS = 24 * 3600;

export class RedisKeys {
  constructor(readonly prefix = 'sbx') {}

  jobState(id: string): string {
    return `${this.prefix}:{job:${id}}:state`;
  }
  jobEvents(id: string): string {
    return `${this.prefix}:{job:${id}}:events`;
  }
  jobNotify(id: string): string {
    return `${this.prefix}:{job:${id}}:notify`;
  }
  /** Interactive jobs: frames from attached clients to the worker (core/src/stdin-stream.ts). */
  jobStdin(id: string): string {
    return `${this.prefix}:{job:${id}}:stdin`;
  }
  tenantJobs(tenant: string): string {
    return `${this.prefix}:tenant:${tenant}:jobs`;
  }
  idempotency(tenant: string, key: string): string {
    return `${this.prefix}:tenant:${tenant}:idem:${createHash('sha256').update(key).digest('hex')}`;
  }
  /** Per-tenant quota state; tenant names are [a-z0-9_-], so they cannot break the hash tag. */
  tenantActive(tenant: string): string {
    return `${this.prefix}:{tenant:${tenant}}:active`;
  }
  tenantRate(tenant: string): string {
    return `${this.prefix}:{tenant:${tenant}}:rate`;
  }
  tenantImages(tenant: string): string {
    return `${this.prefix}:{tenant:${tenant}}:images`;
  }
  tenantRepair(tenant: string): string {
    return `${this.prefix}:{tenant:${tenant}}:repair`;
  }
  workers(): string {
    return `${this.prefix}:{workers}:index`;
  }
  worker(id: string): string {
    return `${this.prefix}:{workers}:info:${id}`;
  }
  workerJobs(id: string): string {
    return `${this.prefix}:{workers}:jobs:${id}`;
  }
  control(): string {
    return `${this.prefix}:control`;
  }
  /**
   * Jobs whose final transition is under way and whose webhook is not queued yet (score: when),
   * beside the webhook queue in its slot; what a crash between the two leaves is queued by the janitor.
   */
  webhooksPending(): string {
    return `${this.queuePrefix()}:webhooks:pending`;
  }
  /** BullMQ prefix: a hash tag, so all of the queue's keys share one Cluster slot. */
  queuePrefix(): string {
    return `{${this.prefix}}`;
  }
}

export const QUEUE_NAME = 'jobs';
