/**
 * Job metrics (issue 11 item 5), scraped from a real worker (SBX_WORKER_METRICS_PORT) and the API
 * (/metrics, admin key) after a known set of jobs: 3 succeeded, 2 failed (one a fork bomb held by
 * its pids limit), 1 oom, 3 cancelled (one while queued, by the API; two by the worker), one
 * image eviction, one webhook. Every count is checked, and every metric infra/grafana/sbx-dashboard.json
 * queries exists in the scrapes.
 */
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import type { JobDocument } from '../../core/src/job-spec.ts';
import { SbxClient } from '../harness/api-client.ts';
import { waitUntil } from '../harness/redis.ts';
import { startStack, type ManagedProcess, type Stack } from '../harness/stack.ts';
import { startWebhookReceiver, type WebhookReceiver } from '../harness/webhook-receiver.ts';

const ADMIN = 'metrics-admin-key-0123456789';
const TENANT = 'metrics-tenant-key-0123456789';
let stack: Stack;
let worker: ManagedProcess;
let api: SbxClient;
let admin: SbxClient;
let receiver: WebhookReceiver;
let workerMetricsUrl: string;

before(async () => {
  receiver = await startWebhookReceiver();
  stack = await startStack({
    workers: 0,
    adminKey: ADMIN,
    egressAllow: [`127.0.0.1:${receiver.port}`],
    env: { SBX_API_KEYS: `${ADMIN}:ops:admin,${TENANT}:team-a`, SBX_WEBHOOK_SECRETS: '*:metrics-webhook-secret-0123456789' },
  });
  // One slot and one pull at a time: a third long job stays queued. Port 0: the worker logs its port.
  worker = await stack.startWorker({ SBX_WORKER_SLOTS: '1', SBX_PULL_CONCURRENCY: '1', SBX_WORKER_METRICS_PORT: '0', SBX_LOG_LEVEL: 'info' });
  let port = 0;
  await waitUntil(async () => {
    const line = worker.log().split('\n').find((l) => l.includes('worker metrics listening'));
    port = line ? (JSON.parse(line) as { port: number }).port : 0;
    return port > 0;
  }, 10_000, 'the worker metrics port in its log');
  workerMetricsUrl = `http://127.0.0.1:${port}/metrics`;
  api = new SbxClient(stack.apiUrl, TENANT);
  admin = new SbxClient(stack.apiUrl, ADMIN);
});
after(async () => {
  await stack?.stop();
  await receiver?.stop();
});

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

function parse(text: string): { samples: Sample[]; types: Map<string, string> } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)/.exec(line);
    if (type) types.set(type[1]!, type[2]!);
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return { samples, types };
}

/** Sum of the samples named `name` whose labels include `labels`. */
function value(text: string, name: string, labels: Record<string, string> = {}): number {
  return parse(text).samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((n, s) => n + s.value, 0);
}

const scrapeWorker = async () => (await fetch(workerMetricsUrl)).text();

/** GET `url` with `host` as its Host header (a browser's, after DNS rebinding); the status. */
function statusWithHost(url: string, host: string): Promise<number> {
  const { hostname, port, pathname } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ hostname, port, path: pathname, headers: { host } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}
async function scrapeApi(): Promise<string> {
  const res = await fetch(`${stack.apiUrl}/metrics`, { headers: { authorization: `Bearer ${ADMIN}` } });
  assert.equal(res.status, 200);
  return res.text();
}

async function run(command: string[], extra: Record<string, unknown> = {}): Promise<JobDocument> {
  const res = await api.submit({ image: stack.images.busybox, command, ...extra }, { wait: true });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body;
}

test('metrics after a known set of jobs: by status and tenant, queue, pulls, cache, limits, output, slots, webhooks', { timeout: 120_000 }, async () => {
  assert.equal((await fetch(`${stack.apiUrl}/metrics`, { headers: { authorization: `Bearer ${TENANT}` } })).status, 403, '/metrics is admin-only');
  // The worker's listener is loopback-only and answers only requests addressed to this machine (P64).
  const port = new URL(workerMetricsUrl).port;
  assert.deepEqual(await Promise.all([`evil.example:${port}`, `127.0.0.1.evil.example:${port}`].map((h) => statusWithHost(workerMetricsUrl, h))), [403, 403], 'a rebound page gets nothing');
  assert.deepEqual(await Promise.all([`127.0.0.1:${port}`, `localhost:${port}`].map((h) => statusWithHost(workerMetricsUrl, h))), [200, 200]);

  const hooked = await run(['printf', '12345'], { callbackUrl: receiver.url('/hook') });
  assert.equal(hooked.status, 'succeeded', JSON.stringify(hooked));
  for (const plain of [await run(['true']), await run(['true'])]) assert.equal(plain.status, 'succeeded', JSON.stringify(plain));
  const failed = await run(['sh', '-c', 'exit 1']);
  assert.equal(failed.status, 'failed', JSON.stringify(failed));
  const oom = await run(['dd', 'if=/dev/zero', 'of=/dev/null', 'bs=256M', 'count=1'], { limits: { memoryBytes: 32 * 1024 * 1024 } });
  assert.equal(oom.status, 'oom', JSON.stringify(oom));
  const bomb = await run(['sh', '-c', 'b() { b | b & }; b; sleep 1; exit 7'], { limits: { pids: 32, timeoutMs: 20_000 } });
  assert.equal(bomb.status, 'failed', JSON.stringify(bomb));
  assert.equal(bomb.usage!.pidsLimitHit, true);

  // A long job fills the one slot; a host takes only jobs it has room for, so the next two wait in the queue.
  const long = async () => (await api.submit({ image: stack.images.busybox, command: ['sleep', '30'], limits: { timeoutMs: 60_000 } })).body.id;
  const first = await long();
  await waitUntil(async () => (await api.get(first)).body.status === 'running', 15_000, 'the first long job to run');
  const second = await long();
  const third = await long();
  assert.equal((await api.get(second)).body.status, 'queued');
  assert.equal((await api.get(third)).body.status, 'queued');
  const busyApi = await scrapeApi();
  assert.equal(value(busyApi, 'sbx_queue_depth'), 2);
  const busy = await scrapeWorker();
  assert.equal(value(busy, 'sbx_worker_slots_busy'), 1);
  assert.equal(value(busy, 'sbx_worker_slots_free'), 0);
  assert.equal(value(busy, 'sbx_worker_slots'), 1);
  await waitUntil(async () => value(await scrapeWorker(), 'sbx_image_cache_bytes') > 0, 10_000, 'the cache size at a heartbeat');
  for (const id of [third, second, first]) assert.equal((await api.request('DELETE', `/v1/jobs/${id}`)).status, 202);
  for (const id of [third, second, first]) assert.equal((await api.waitFinished(id)).status, 'cancelled');

  const images = (await admin.request<{ items: Array<{ digest: string }> }>('GET', '/v1/images')).body.items;
  assert.equal((await admin.request('DELETE', `/v1/images/${images[0]!.digest}`)).status, 202);
  await waitUntil(async () => value(await scrapeWorker(), 'sbx_image_cache_evictions_total', { reason: 'request' }) === 1, 10_000, 'the eviction');
  await waitUntil(async () => (await api.get(hooked.id)).body.callback?.delivered === true, 10_000, 'the webhook');

  const w = await scrapeWorker();
  const a = await scrapeApi();
  const finished = (status: string) => value(w, 'sbx_jobs_finished_total', { status, tenant: 'team-a' }) + value(a, 'sbx_jobs_finished_total', { status, tenant: 'team-a' });
  assert.deepEqual(
    Object.fromEntries(['succeeded', 'failed', 'oom', 'cancelled', 'timeout', 'error'].map((s) => [s, finished(s)])),
    { succeeded: 3, failed: 2, oom: 1, cancelled: 3, timeout: 0, error: 0 },
  );
  assert.equal(value(a, 'sbx_jobs_finished_total', { status: 'cancelled' }), 2, 'the two queued jobs were cancelled by the API');
  assert.equal(value(a, 'sbx_jobs_submitted_total', { tenant: 'team-a' }), 9);
  assert.equal(value(a, 'sbx_queue_depth'), 0);
  assert.equal(value(w, 'sbx_job_queue_seconds_count'), 7, 'every job a worker took (not the two cancelled in the queue)');
  assert.equal(value(w, 'sbx_image_pull_seconds_count', { source: 'registry' }), 1);
  assert.equal(value(w, 'sbx_image_pull_seconds_count', { source: 'cache' }), 6);
  assert.equal(value(w, 'sbx_image_cache_misses_total'), 1);
  assert.equal(value(w, 'sbx_image_cache_hits_total'), 6);
  assert.equal(value(w, 'sbx_job_start_seconds_count'), 7, 'every job that started');
  assert.equal(value(w, 'sbx_job_run_seconds_count'), 7);
  assert.equal(value(w, 'sbx_job_limit_hits_total', { limit: 'memory' }), 1);
  assert.equal(value(w, 'sbx_job_limit_hits_total', { limit: 'pids' }), 1);
  assert.equal(value(w, 'sbx_job_limit_hits_total', { limit: 'timeout' }), 0);
  assert.equal(value(w, 'sbx_job_output_bytes_total', { stream: 'stdout' }), 5);
  assert.equal(value(w, 'sbx_worker_slots_busy'), 0);
  assert.equal(value(w, 'sbx_worker_slots_free'), 1);
  assert.equal(value(w, 'sbx_webhook_attempts_total', { result: 'delivered' }), 1);
  // No worker was lost and Redis never was: the janitor's and the watchdog's series exist at 0 (counts: worker/src/janitor.test.ts, redis-watchdog.test.ts).
  for (const name of ['sbx_jobs_requeued_total', 'sbx_jobs_worker_lost_total', 'sbx_worker_redis_unreachable_total', 'sbx_worker_redis_lost']) {
    assert.ok(parse(w).types.has(name), `${name} in the worker's scrape`);
    assert.equal(value(w, name), 0, name);
  }
  const workerLabels = new Set(parse(w).samples.filter((s) => s.name.startsWith('sbx_job')).map((s) => s.labels.worker));
  assert.equal(workerLabels.size, 1, 'each worker series carries its worker id');
  assert.ok(!/j_[0-9A-Z]{26}/.test(w + a), 'no job id in any label');

  // Every metric the Grafana dashboard queries exists in a scrape.
  const dashboard = readFileSync(new URL('../../infra/grafana/sbx-dashboard.json', import.meta.url), 'utf8');
  const queried = new Set((JSON.parse(dashboard) as { panels: Array<{ targets: Array<{ expr: string }> }> }).panels.flatMap((p) => p.targets.flatMap((t) => t.expr.match(/\bsbx_[a-z0-9_]+/g) ?? [])));
  const types = new Map([...parse(w).types, ...parse(a).types]);
  const missing = [...queried].filter((name) => !types.has(name) && !(types.get(name.replace(/_(bucket|sum|count)$/, '')) === 'histogram'));
  assert.deepEqual(missing, [], 'dashboard metrics missing from the scrapes');
  assert.ok(queried.size >= 15, `the dashboard queries ${queried.size} metrics`);
});

test('network "egress" jobs: their proxies\' connections, refusals and bytes are counted', { timeout: 60_000 }, async () => {
  const before = await scrapeWorker();
  const job = await run(['sh', '-c', 'printf "CONNECT 10.0.0.1:80 HTTP/1.1\\r\\n\\r\\n" | nc 127.0.0.1 3128 | head -1'], { network: 'egress' });
  assert.equal(job.output?.stdout, 'HTTP/1.1 403 Forbidden\r\n');
  const after = await scrapeWorker();
  assert.equal(value(after, 'sbx_job_egress_refused_total') - value(before, 'sbx_job_egress_refused_total'), 1);
  for (const name of ['sbx_job_egress_connections_total', 'sbx_job_egress_bytes_total']) assert.ok(parse(after).types.has(name), `${name} in the worker's scrape`);
  assert.equal(value(after, 'sbx_job_egress_connections_total'), 0);
});

test('output past the cap is dropped in the kernel, unread by the worker; with a tail kept it is read', { timeout: 60_000 }, async () => {
  const before = await scrapeWorker();
  const size = 300_000_000;
  const flood = await run(['head', '-c', String(size), '/dev/zero'], { limits: { outputBytes: 1000 } });
  assert.equal(flood.status, 'succeeded', JSON.stringify(flood));
  assert.deepEqual(flood.outputDroppedBytes, { stdout: size - 1000, stderr: 0 }, 'every byte counted');
  const mid = await scrapeWorker();
  const delta = (a: string, b: string, how: string) => value(b, 'sbx_job_output_dropped_bytes_total', { stream: 'stdout', how }) - value(a, 'sbx_job_output_dropped_bytes_total', { stream: 'stdout', how });
  const [kernel, read] = [delta(before, mid, 'kernel'), delta(before, mid, 'read')];
  assert.equal(kernel + read, size - 1000, `dropped in the kernel ${kernel} + read ${read}`);
  assert.ok(read <= 64 * 1024, `read by the worker: ${read} bytes (at most the rest of the read that crossed the cap)`);

  // A tail keeps the worker reading to the end: nothing of this job is dropped in the kernel.
  const tailed = await run(['head', '-c', '3000000', '/dev/zero'], { limits: { outputBytes: 1000, outputTailBytes: 100 } });
  assert.deepEqual(tailed.outputDroppedBytes, { stdout: 3_000_000 - 1000, stderr: 0 });
  const end = await scrapeWorker();
  assert.equal(delta(mid, end, 'kernel'), 0, 'with a tail, nothing dropped in the kernel');
  assert.equal(delta(mid, end, 'read'), 3_000_000 - 1000, 'with a tail, all read');
});
