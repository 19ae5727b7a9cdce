/**
 * A worker's scrape has every labelled series the README names from the start, at 0 (metrics.ts:
 * "rate() and the dashboard see a series at once"): the dashboard's egress panel queries
 * sbx_job_egress_bytes_total, which a worker that had run no egress job did not expose at all.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createRegistry, workerMetrics } from './metrics.ts';

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
