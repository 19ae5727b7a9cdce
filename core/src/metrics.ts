/** Prometheus metrics, one registry per process, names `sbx_<noun>_<unit>`. */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export function createRegistry(role: 'api' | 'worker'): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ role });
  collectDefaultMetrics({ register: registry, prefix: 'sbx_process_' });
  return registry;
}

export function apiMetrics(registry: Registry) {
  return {
    requests: new Counter({ name: 'sbx_http_requests_total', help: 'HTTP requests answered', labelNames: ['method', 'route', 'status'], registers: [registry] }),
    requestSeconds: new Histogram({ name: 'sbx_http_request_duration_seconds', help: 'HTTP request duration (SSE: until headers)', labelNames: ['method', 'route'], buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30], registers: [registry] }),
    jobsSubmitted: new Counter({ name: 'sbx_jobs_submitted_total', help: 'Jobs accepted', registers: [registry] }),
    sseClients: new Gauge({ name: 'sbx_sse_clients', help: 'Open SSE event streams', registers: [registry] }),
  };
}
export type ApiMetrics = ReturnType<typeof apiMetrics>;

export function workerMetrics(registry: Registry) {
  return {
    jobsFinished: new Counter({ name: 'sbx_jobs_finished_total', help: 'Jobs finished on this worker, by final status', labelNames: ['status'], registers: [registry] }),
    jobSeconds: new Histogram({ name: 'sbx_job_run_seconds', help: 'Wall time of job processes', buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5, 30, 120, 600], registers: [registry] }),
    startSeconds: new Histogram({ name: 'sbx_job_start_seconds', help: 'Time from pickup to process start (excluding pull)', buckets: [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5], registers: [registry] }),
    pulls: new Counter({ name: 'sbx_image_pulls_total', help: 'Image acquisitions by result (hit, pulled, error)', labelNames: ['result'], registers: [registry] }),
    slotsBusy: new Gauge({ name: 'sbx_worker_slots_busy', help: 'Job slots in use', registers: [registry] }),
    slotsTotal: new Gauge({ name: 'sbx_worker_slots', help: 'Job slots on this worker', registers: [registry] }),
  };
}
export type WorkerMetrics = ReturnType<typeof workerMetrics>;
