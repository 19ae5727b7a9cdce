/**
 * Prometheus metrics, one registry per process, names `sbx_<noun>_<unit>`. The README's "Metrics"
 * section lists them; infra/grafana/sbx-dashboard.json charts them. Cardinality is bounded: labels
 * are statuses, results, limits, streams, and tenants (bounded by the configured keys, and capped
 * here at MAX_TENANT_LABELS in any case); never job ids or image names. A worker's registry carries
 * its id as the default label `worker` (bounded by the fleet).
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { JobDocument } from './job-spec.ts';

export function createRegistry(role: 'api' | 'worker', labels: Record<string, string> = {}): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ role, ...labels });
  collectDefaultMetrics({ register: registry, prefix: 'sbx_process_' });
  return registry;
}

/** Tenants given their own label value; later ones share `other` (a misconfigured fleet cannot explode a series count). */
export const MAX_TENANT_LABELS = 200;

/** The `tenant` label value for `tenant`: itself for the first MAX_TENANT_LABELS seen, then `other`. */
export class TenantLabels {
  private readonly seen = new Set<string>();
  constructor(private readonly max = MAX_TENANT_LABELS) {}
  of(tenant: string | null): string {
    if (!tenant) return 'unknown';
    if (this.seen.has(tenant)) return tenant;
    if (this.seen.size >= this.max) return 'other';
    this.seen.add(tenant);
    return tenant;
  }
}

/** A gauge read at scrape time from `source` (set once the thing it reads exists). */
function sampledGauge(registry: Registry, name: string, help: string) {
  const holder: { source: (() => number | Promise<number>) | null } = { source: null };
  const gauge = new Gauge({
    name, help, registers: [registry],
    async collect() {
      if (holder.source) this.set(await holder.source());
    },
  });
  return Object.assign(holder, { gauge });
}

/**
 * Jobs reaching a final status, counted by whichever process finished them (worker, API cancel,
 * janitor): sum over all. Those that ended `error` are counted again by their code (a fixed list:
 * README's job error codes), without the tenant: what an operator alerts on (host_exhausted,
 * image_pull_failed, worker_lost) whoever's job it was.
 */
function finishedJobCounters(registry: Registry) {
  return {
    jobsFinished: new Counter({ name: 'sbx_jobs_finished_total', help: 'Jobs that reached a final status in this process, by status and tenant', labelNames: ['status', 'tenant'], registers: [registry] }),
    jobErrors: new Counter({ name: 'sbx_job_errors_total', help: 'Jobs that ended with status error in this process, by error code (host_exhausted, image_pull_failed, worker_lost, ...)', labelNames: ['code'], registers: [registry] }),
  };
}

/** Counts a job that reached its final status (JobStore.onFinished) in either process's metrics. */
export function countFinished(m: ReturnType<typeof finishedJobCounters> & { tenants: TenantLabels }, doc: JobDocument, tenant: string | null): void {
  m.jobsFinished.inc({ status: doc.status, tenant: m.tenants.of(tenant) });
  if (doc.status === 'error') m.jobErrors.inc({ code: doc.error?.code ?? 'unknown' });
}

export function apiMetrics(registry: Registry) {
  return {
    requests: new Counter({ name: 'sbx_http_requests_total', help: 'HTTP requests answered', labelNames: ['method', 'route', 'status'], registers: [registry] }),
    requestSeconds: new Histogram({ name: 'sbx_http_request_duration_seconds', help: 'HTTP request duration (SSE: until headers)', labelNames: ['method', 'route'], buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30], registers: [registry] }),
    jobsSubmitted: new Counter({ name: 'sbx_jobs_submitted_total', help: 'Jobs accepted, by tenant', labelNames: ['tenant'], registers: [registry] }),
    jobsPlaced: new Counter({ name: 'sbx_jobs_placed_at_submit_total', help: 'Jobs queued by this API, by where: host (straight on the queue of a host holding the image, with room) or shared', labelNames: ['where'], registers: [registry] }),
    ...finishedJobCounters(registry),
    /** Read from BullMQ at scrape time (every API reports the same figure: use max() across them). */
    queueDepth: sampledGauge(registry, 'sbx_queue_depth', 'Jobs waiting in the queue for a worker (fleet-wide)'),
    sseClients: new Gauge({ name: 'sbx_sse_clients', help: 'Open SSE event streams', registers: [registry] }),
    tenants: new TenantLabels(),
  };
}
export type ApiMetrics = ReturnType<typeof apiMetrics>;

export function workerMetrics(registry: Registry) {
  const seconds = (name: string, help: string, buckets: number[], labelNames: string[] = []) => new Histogram({ name, help, buckets, labelNames, registers: [registry] });
  const m = {
    ...finishedJobCounters(registry),
    queueSeconds: seconds('sbx_job_queue_seconds', 'Time from submission to a worker taking the job', [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120, 600, 3600]),
    pullSeconds: seconds('sbx_image_pull_seconds', 'Time to have the job\'s image ready, by source (cache, registry)', [0.001, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120, 600], ['source']),
    startSeconds: seconds('sbx_job_start_seconds', 'Time from image ready to process start (slot wait + launch)', [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5, 30]),
    jobSeconds: seconds('sbx_job_run_seconds', 'Wall time of job processes', [0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5, 30, 120, 600]),
    pulls: new Counter({ name: 'sbx_image_pulls_total', help: 'Image acquisitions by result (hit, pulled, error)', labelNames: ['result'], registers: [registry] }),
    cacheHits: new Counter({ name: 'sbx_image_cache_hits_total', help: 'Jobs whose image was in the cache', registers: [registry] }),
    cacheMisses: new Counter({ name: 'sbx_image_cache_misses_total', help: 'Jobs whose image had to be pulled (including failed pulls)', registers: [registry] }),
    cacheEvictions: new Counter({ name: 'sbx_image_cache_evictions_total', help: 'Images evicted from the cache, by reason (budget: SBX_IMAGE_CACHE_BYTES or SBX_IMAGE_CACHE_MIN_FREE_PERCENT, request, disk_full: a pull, or the hold of a job on a cached image, found the disk full, references: more than SBX_IMAGE_CACHE_REFERENCES)', labelNames: ['reason'], registers: [registry] }),
    cacheBytes: new Gauge({ name: 'sbx_image_cache_bytes', help: 'Bytes of unpacked images in this worker\'s cache (as of the last heartbeat)', registers: [registry] }),
    limitHits: new Counter({ name: 'sbx_job_limit_hits_total', help: 'Jobs that hit a limit: memory (OOM kill), pids (fork refused), timeout, output (truncated)', labelNames: ['limit'], registers: [registry] }),
    outputBytes: new Counter({ name: 'sbx_job_output_bytes_total', help: 'Output bytes kept (up to limits.outputBytes), by stream', labelNames: ['stream'], registers: [registry] }),
    outputDropped: new Counter({ name: 'sbx_job_output_dropped_bytes_total', help: 'Output bytes past limits.outputBytes or the tenant\'s storage budget, dropped, by stream and how: kernel (spliced to /dev/null unread, but for what Node had read and not yet handed on: a read or a few while the job\'s pipes were paused), read (read by the worker and dropped: a tail kept, receipts\' digests, a tty)', labelNames: ['stream', 'how'], registers: [registry] }),
    egressConnections: new Counter({ name: 'sbx_job_egress_connections_total', help: 'Connections network "egress" jobs made through their proxies', registers: [registry] }),
    egressRefused: new Counter({ name: 'sbx_job_egress_refused_total', help: 'Requests jobs\' proxies refused (destination not allowed, too many at once, not a proxy request)', registers: [registry] }),
    egressBytes: new Counter({ name: 'sbx_job_egress_bytes_total', help: 'Bytes through jobs\' proxies, by direction (sent: from jobs, received: to jobs)', labelNames: ['direction'], registers: [registry] }),
    slotsBusy: new Gauge({ name: 'sbx_worker_slots_busy', help: 'Job slots in use', registers: [registry] }),
    slotsFree: sampledGauge(registry, 'sbx_worker_slots_free', 'Job slots free'),
    slotsTotal: new Gauge({ name: 'sbx_worker_slots', help: 'Job slots on this worker', registers: [registry] }),
    webhookDeliveries: new Counter({ name: 'sbx_webhook_attempts_total', help: 'Webhook POSTs, by result (delivered, retry, failed)', labelNames: ['result'], registers: [registry] }),
    webhookSeconds: seconds('sbx_webhook_attempt_seconds', 'Duration of one webhook POST', [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30]),
    // What the launcher reports at a job's exit besides its status (worker/src/launcher-cleanup.ts).
    leftoverProcesses: new Counter({ name: 'sbx_leftover_processes_total', help: 'Processes found in a job\'s cgroup after its pid 1 exited (killed by the launcher)', registers: [registry] }),
    cleanupFailures: new Counter({ name: 'sbx_launcher_cleanup_failures_total', help: 'Job cgroups the launcher could not remove at exit, by errno name (kind); swept later', labelNames: ['kind'], registers: [registry] }),
    sweptCgroups: new Counter({ name: 'sbx_launcher_swept_cgroups_total', help: 'Leftover job cgroups removed by a later sweep', registers: [registry] }),
    // Lost workers' jobs settled by this worker's janitor (worker/src/janitor.ts).
    jobsRequeued: new Counter({ name: 'sbx_jobs_requeued_total', help: 'Jobs of a lost worker queued again by this worker\'s janitor (their command had not started)', registers: [registry] }),
    queueAuditRequeued: new Counter({ name: 'sbx_queue_audit_requeued_total', help: 'Jobs queued for over a minute on no queue (their entry lost) that this worker queued again (worker/src/queue-audit.ts)', registers: [registry] }),
    jobsWorkerLost: new Counter({ name: 'sbx_jobs_worker_lost_total', help: 'Jobs of a lost worker ended error/worker_lost by this worker\'s janitor (their command had started, or no requeue left)', registers: [registry] }),
    // The Redis watchdog (worker/src/redis-watchdog.ts).
    redisUnreachable: new Counter({ name: 'sbx_worker_redis_unreachable_total', help: 'Times this worker lost Redis past the heartbeat limit: its jobs killed and the queue consumer paused', registers: [registry] }),
    redisLost: new Gauge({ name: 'sbx_worker_redis_lost', help: '1 while this worker counts Redis as lost (jobs killed, taking none), else 0', registers: [registry] }),
    tenants: new TenantLabels(),
  };
  // Every known label value exists from the start (at 0): rate() and the dashboard see a series at once.
  for (const limit of ['memory', 'pids', 'timeout', 'output']) m.limitHits.inc({ limit }, 0);
  for (const stream of ['stdout', 'stderr']) {
    m.outputBytes.inc({ stream }, 0);
    for (const how of ['kernel', 'read']) m.outputDropped.inc({ stream, how }, 0);
  }
  for (const reason of ['budget', 'request', 'disk_full']) m.cacheEvictions.inc({ reason }, 0);
  for (const direction of ['sent', 'received']) m.egressBytes.inc({ direction }, 0);
  for (const result of ['delivered', 'retry', 'failed']) m.webhookDeliveries.inc({ result }, 0);
  for (const source of ['cache', 'registry']) m.pullSeconds.zero({ source });
  m.cleanupFailures.inc({ kind: 'EBUSY' }, 0);
  return m;
}
export type WorkerMetrics = ReturnType<typeof workerMetrics>;
