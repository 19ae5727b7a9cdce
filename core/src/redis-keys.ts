/**
 * Every Redis key sbx uses, built here and nowhere else. A job's keys share the hash tag
 * `{job:<id>}` so they live in one Cluster slot and one Lua script may touch them all.
 *
 * | key                                 | type   | lifetime                                   |
 * | ----------------------------------- | ------ | ------------------------------------------ |
 * | <p>:{job:<id>}:state                | hash   | doc, spec, status, tenant, cancel, files, live; TTL |
 * | <p>:{job:<id>}:events               | stream | status/stdout/stderr/exit events; same TTL |
 * | <p>:{job:<id>}:notify               | pubsub | "something was appended" pings (no data)   |
 * | <p>:{job:<id>}:stdin                | stream | interactive: stdin/control frames, API → worker; deleted when the job ends |
 * | <p>:tenant:<t>:jobs                 | zset   | job ids by creation ms; expired ones swept (tenant-index-sweeper.ts); TTL past its newest record's longest life (indexJob-1.lua) |
 * | <p>:tenant:<t>:idem:<sha256(key)>   | string | job id (`=<id>` once written); 24 h        |
 * | <p>:{tenant:<t>}:active             | zset   | ids of its queued/running jobs → priority  |
 * | <p>:tenants:active                  | zset   | tenants whose :active set may hold jobs → ms of their latest admission or queue-audit sighting; older than the set's TTL dropped |
 * | <p>:{tenant:<t>}:rate               | hash   | submission token bucket (tokens, ts)       |
 * | <p>:{tenant:<t>}:requests           | hash   | request token bucket shared by the API processes (tokens, ts) |
 * | <p>:{tenant:<t>}:images             | zset   | canonical images its jobs used → last ms   |
 * | <p>:{tenant:<t>}:repair             | string | at most one lazy repair of :active a second|
 * | <p>:{tenant:<t>}:stored:<hour>      | string | bytes of job records and output its jobs stored in that hour; 2 h |
 * | <p>:{tenant:<t>}:webhooks           | zset   | its webhook attempts queued or in progress → ms queued (their priority); 2 h |
 * | <p>:{workers}:index                 | zset   | worker id by last heartbeat ms             |
 * | <p>:{workers}:info:<id>             | string | worker info JSON; TTL = 5 heartbeats       |
 * | <p>:{workers}:jobs:<id>             | set    | ids of the jobs it runs now                |
 * | <p>:{workers}:capacity              | hash   | worker id → free slots/memory (placement)  |
 * | <p>:{workers}:holders:<image>       | set    | workers whose cache holds <image> (ref or digest) |
 * | <p>:{workers}:holds:<id>            | set    | the holders keys a worker is in            |
 * | <p>:{workers}:handoffs              | zset   | "<worker> <job>" handed to a host queue → deadline ms |
 * | <p>:{workers}:handoffs-by-host      | zset   | the same members, score 0: counted per host by ZLEXCOUNT |
 * | <p>:{workers}:queue-audit           | string | the worker whose turn it is to look for queued jobs on no queue; TTL = the turn |
 * | <p>:{workers}:queue-audit-scan      | string | the worker whose audit walked the whole keyspace for :active sets last; TTL 1 h |
 *
 * The fleet's keys share the hash tag `{workers}` so listing them is one pipeline in one slot; a
 * tenant's quota keys share `{tenant:<t>}` so one Lua script admits a job (core/src/tenant-quota.ts).
 * | <p>:control                         | pubsub | cancel / image commands to workers         |
 * | {<p>}:jobs:*                        | BullMQ | the queue (BullMQ's own keys)              |
 * | {<p>}:requeues:pending              | zset   | lost jobs being requeued → ms (job-lifecycle.ts) |
 * | {<p>}:jobs.host.<id>:*              | BullMQ | one worker's own queue: jobs the API placed there or other workers handed to it (placement); removed, once empty, when the worker stops or is forgotten (HostQueues.retire) |
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
  /** One API process's channel for the exit pings of the jobs it created with ?wait=true (field `waiter`). */
  apiInbox(instance: string): string {
    return `${this.prefix}:api:${instance}:inbox`;
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
  /** Tenants whose active set may hold jobs → ms (api: admission; worker/src/queue-audit.ts walks them). */
  activeTenants(): string {
    return `${this.prefix}:tenants:active`;
  }
  /** The tenant whose tenantActive() key `key` is; null for any other key. */
  tenantOfActive(key: string): string | null {
    const head = `${this.prefix}:{tenant:`;
    return key.startsWith(head) && key.endsWith('}:active') ? key.slice(head.length, -'}:active'.length) : null;
  }
  tenantRate(tenant: string): string {
    return `${this.prefix}:{tenant:${tenant}}:rate`;
  }
  /** The tenant's requests per second, across the API processes (api/src/tenant-request-rate.ts). */
  tenantRequestRate(tenant: string): string {
    return `${this.prefix}:{tenant:${tenant}}:requests`;
  }
  /** One API process's record of its reports to tenantRequestRate(tenant) (core/src/lua/requestRate-2.lua). */
  tenantRequestRateReports(tenant: string, writer: string): string {
    return `${this.tenantRequestRate(tenant)}:by:${writer}`;
  }
  tenantImages(tenant: string): string {
    return `${this.prefix}:{tenant:${tenant}}:images`;
  }
  tenantRepair(tenant: string): string {
    return `${this.prefix}:{tenant:${tenant}}:repair`;
  }
  /** Bytes of job records and output the tenant's jobs stored in hour `hour` (ms since the epoch / 3,600,000). */
  tenantStored(tenant: string, hour: number): string {
    return `${this.prefix}:{tenant:${tenant}}:stored:${hour}`;
  }
  /** One charging process's record of its charges to tenantStored(tenant, hour) (core/src/lua/chargeStorage-2.lua). */
  tenantStoredCharges(tenant: string, hour: number, writer: string): string {
    return `${this.tenantStored(tenant, hour)}:by:${writer}`;
  }
  tenantWebhooks(tenant: string): string {
    return `${this.prefix}:{tenant:${tenant}}:webhooks`;
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
  /** Placement (worker/src/placement): each worker's free slots and memory, by worker id. */
  workerCapacity(): string {
    return `${this.prefix}:{workers}:capacity`;
  }
  /** Placement: ids of the workers whose image cache holds `image` (a canonical reference or a digest). */
  imageHolders(image: string): string {
    return `${this.prefix}:{workers}:holders:${image}`;
  }
  /** Placement: the imageHolders keys worker `id` is in (cleared at its start and stop). */
  workerHolds(id: string): string {
    return `${this.prefix}:{workers}:holds:${id}`;
  }
  /** Placement: jobs handed to a worker's own queue, "<worker id> <job id>" → when they go back to the shared queue. */
  /** Which worker audits the queue now (worker/src/queue-audit.ts): its id, with the turn's TTL. */
  queueAuditTurn(): string {
    return `${this.prefix}:{workers}:queue-audit`;
  }
  /** Which worker's queue audit walked the whole keyspace last (worker/src/queue-audit.ts): its id, for an hour. */
  queueAuditScanTurn(): string {
    return `${this.prefix}:{workers}:queue-audit-scan`;
  }
  handoffs(): string {
    return `${this.prefix}:{workers}:handoffs`;
  }
  handoffsByHost(): string {
    return `${this.prefix}:{workers}:handoffs-by-host`;
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
  /**
   * Jobs a lost worker's job is being put back in the queue for (score: when), beside the queue in its
   * slot; a requeue that a crash left half done (status queued, no queue entry) is finished by the janitor.
   */
  requeuesPending(): string {
    return `${this.queuePrefix()}:requeues:pending`;
  }
  /** BullMQ prefix: a hash tag, so all of the queue's keys share one Cluster slot. */
  queuePrefix(): string {
    return `{${this.prefix}}`;
  }
}

export const QUEUE_NAME = 'jobs';

/** A worker's own BullMQ queue (jobs handed to it by placement); BullMQ names cannot hold ':'. */
export function hostQueueName(workerId: string): string {
  const tag = createHash('sha256').update(workerId).digest('hex').slice(0, 8);
  return `${QUEUE_NAME}.host.${workerId.replace(/[^A-Za-z0-9._-]/g, '_')}.${tag}`;
}
