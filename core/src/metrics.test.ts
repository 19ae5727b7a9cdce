/**
 * A worker's scrape has every labelled series the README names from the start, at 0 (metrics.ts:
 * "rate() and the dashboard see a series at once"): the dashboard's egress panel queries
 * sbx_job_egress_bytes_total, which a worker that had run no egress job did not expose at all.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { JobDocument } from './job-spec.ts';
import { countFinished, createRegistry, workerMetrics } from './metrics.ts';

test("a new worker's scrape has each known label value of its labelled counters, at 0", async () => {
  const registry = createRegistry('worker', { worker: 'w1' });
  workerMetrics(registry);
  const text = await registry.metrics();
  for (const series of [
    'sbx_job_egress_bytes_total{direction="sent"',
    'sbx_job_egress_bytes_total{direction="received"',
    'sbx_image_cache_evictions_total{reason="budget"',
    'sbx_image_cache_evictions_total{reason="request"',
    'sbx_image_cache_evictions_total{reason="disk_full"',
    'sbx_webhook_attempts_total{result="failed"',
    'sbx_job_limit_hits_total{limit="output"',
  ]) assert.ok(text.includes(series), `${series} missing from:\n${text.split('\n').filter((l) => l.startsWith('sbx_') && !l.startsWith('sbx_process_')).join('\n')}`);
});

test('a finished job is counted by status and tenant; one that ended error also by its code, without the tenant', async () => {
  const registry = createRegistry('worker', { worker: 'w1' });
  const m = workerMetrics(registry);
  const doc = (status: JobDocument['status'], code?: string) => ({ status, error: code ? { code, message: 'x' } : null }) as JobDocument;
  countFinished(m, doc('error', 'host_exhausted'), 'team-a');
  countFinished(m, doc('error', 'host_exhausted'), 'team-b');
  countFinished(m, doc('error', 'image_pull_failed'), 'team-a');
  countFinished(m, doc('succeeded'), 'team-a');
  const lines = (await registry.metrics()).split('\n').filter((l) => /^sbx_(job_errors|jobs_finished)_total\{/.test(l)).map((l) => l.replace(/,?worker="w1"|,?role="worker"/g, '').replace('{,', '{')).sort();
  assert.deepEqual(lines, [
    'sbx_job_errors_total{code="host_exhausted"} 2',
    'sbx_job_errors_total{code="image_pull_failed"} 1',
    'sbx_jobs_finished_total{status="error",tenant="team-a"} 2',
    'sbx_jobs_finished_total{status="error",tenant="team-b"} 1',
    'sbx_jobs_finished_total{status="succeeded",tenant="team-a"} 1',
  ]);
});
