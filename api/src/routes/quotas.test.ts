/**
 * Per-tenant quotas against a real redis-server: jobs queued+running at once (a per-tenant sorted set
 * that survives API restarts and is repaired lazily), submissions per second (a token bucket in
 * Redis), ceilings on limits, and the BullMQ priority that keeps one tenant's backlog from starving
 * the others. Over quota is 429 `rate_limited` with the real wait in Retry-After.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startRedis, type RunningRedis } from '../../../test/harness/redis.ts';
import { createTestApp } from '../../../test/harness/api-app.ts';
import type { JobDocument } from '../../../core/src/job-spec.ts';
import { TAKEOVER_MS } from '../idempotency-keys.ts';

const MiB = 1024 * 1024;
const key = (t: string) => `key-${t}-${'x'.repeat(20)}`;
const image = '127.0.0.1:5000/test/busybox:latest';

let redis: RunningRedis;
before(async () => {
  redis = await startRedis();
});
after(async () => {
  await redis?.stop();
});

type App = ReturnType<typeof createTestApp>;

function submit(t: App, tenant: string, body: Record<string, unknown> = {}) {
  return t.app.request('/v1/jobs', {
    method: 'POST',
    headers: { authorization: `Bearer ${key(tenant)}`, 'content-type': 'application/json' },
    body: JSON.stringify({ image, command: ['true'], ...body }),
  });
}

async function submitOk(t: App, tenant: string, body: Record<string, unknown> = {}): Promise<JobDocument> {
  const res = await submit(t, tenant, body);
  assert.equal(res.status, 202, await res.clone().text());
  return (await res.json()) as JobDocument;
}

async function assertRateLimited(res: Response, message: RegExp): Promise<number> {
  assert.equal(res.status, 429, await res.clone().text());
  const body = (await res.json()) as { error: { code: string; message: string } };
  assert.equal(body.error.code, 'rate_limited');
  assert.match(body.error.message, message);
  const retryAfter = Number(res.headers.get('retry-after'));
  assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1, `Retry-After ${res.headers.get('retry-after')}`);
  return retryAfter;
}

function cancel(t: App, tenant: string, id: string) {
  return t.app.request(`/v1/jobs/${id}`, { method: 'DELETE', headers: { authorization: `Bearer ${key(tenant)}` } });
}

describe('defaults for every key (SBX_TENANT_*)', () => {
  const tenants = ['alpha', 'beta', 'gamma', 'delta', 'eps', 'zeta'];
  const env = { SBX_API_KEYS: tenants.map((t) => `${key(t)}:${t}`).join(','), SBX_TENANT_ACTIVE_JOBS: '3', SBX_TENANT_SUBMITS_PER_SECOND: '1000' };
  let t: App;
  before(() => {
    t = createTestApp(redis, env);
  });
  after(async () => {
    await t?.close();
  });

  test('a tenant cannot have more jobs queued+running than its quota; other tenants are not affected', async () => {
    const jobs = [await submitOk(t, 'alpha'), await submitOk(t, 'alpha'), await submitOk(t, 'alpha')];
    await assertRateLimited(await submit(t, 'alpha'), /3 jobs queued or running/);
    await submitOk(t, 'beta');
    // Cancelling a queued job frees its place at once.
    assert.equal((await cancel(t, 'alpha', jobs[0]!.id)).status, 202);
    await submitOk(t, 'alpha');
    await assertRateLimited(await submit(t, 'alpha'), /3 jobs queued or running/);
  });

  test('a job that a worker finishes frees its place (JobStore.transition)', async () => {
    const jobs = [await submitOk(t, 'gamma'), await submitOk(t, 'gamma'), await submitOk(t, 'gamma')];
    const active = t.deps.keys.tenantActive('gamma');
    assert.equal(await t.deps.redis.zcard(active), 3);
    const doc = jobs[1]!;
    const finished: JobDocument = { ...doc, status: 'succeeded', exitCode: 0, timings: { ...doc.timings, finishedAt: new Date().toISOString() } };
    assert.equal(await t.deps.store.transition({ ...finished, status: 'pulling' }, ['queued'], 'status'), 'ok');
    assert.equal(await t.deps.redis.zcard(active), 3, 'pulling still counts');
    assert.equal(await t.deps.store.transition(finished, ['pulling'], 'exit'), 'ok');
    assert.equal(await t.deps.redis.zcard(active), 2);
    await submitOk(t, 'gamma');
  });

  test('lazy repair: jobs that ended without being released (a crash) or are gone do not count', async () => {
    const jobs = [await submitOk(t, 'delta'), await submitOk(t, 'delta'), await submitOk(t, 'delta')];
    // A worker that wrote the final status and died before releasing; a record that expired.
    await t.deps.redis.hset(t.deps.keys.jobState(jobs[0]!.id), 'status', 'failed');
    await t.deps.redis.del(t.deps.keys.jobState(jobs[1]!.id));
    await submitOk(t, 'delta');
    const left = await t.deps.redis.zrange(t.deps.keys.tenantActive('delta'), 0, -1);
    assert.deepEqual(left.sort(), [jobs[2]!.id, left.find((id) => id !== jobs[2]!.id)!].sort());
    assert.equal(left.length, 2);
    await submitOk(t, 'delta');
    await assertRateLimited(await submit(t, 'delta'), /3 jobs queued or running/);
  });

  test('the count lives in Redis: a restarted (or another) API instance enforces it too', async () => {
    const other = createTestApp(redis, env);
    try {
      // alpha is at its quota from the first test.
      await assertRateLimited(await submit(other, 'alpha'), /3 jobs queued or running/);
    } finally {
      await other.close();
    }
  });

  test('a submission refused for its quota gives its idempotencyKey back: the retry, once there is room, is accepted at once', async () => {
    const jobs = [await submitOk(t, 'zeta'), await submitOk(t, 'zeta'), await submitOk(t, 'zeta')];
    await assertRateLimited(await submit(t, 'zeta', { idempotencyKey: 'after-429' }), /3 jobs queued or running/);
    assert.equal(await t.deps.redis.get(t.deps.keys.idempotency('zeta', 'after-429')), null, 'the refused submission kept its claim');
    assert.equal((await cancel(t, 'zeta', jobs[0]!.id)).status, 202);
    const started = Date.now();
    const retried = await submitOk(t, 'zeta', { idempotencyKey: 'after-429' });
    // A claim left behind would hold it TAKEOVER_MS (10 s).
    assert.ok(Date.now() - started < TAKEOVER_MS / 2, `the retry took ${Date.now() - started} ms`);
    assert.equal((await submitOk(t, 'zeta', { idempotencyKey: 'after-429' })).id, retried.id);
  });

  test('an idempotent retry returns the first job and is not a new submission', async () => {
    const first = await submitOk(t, 'eps', { idempotencyKey: 'same' });
    await submitOk(t, 'eps');
    await submitOk(t, 'eps');
    const again = await submitOk(t, 'eps', { idempotencyKey: 'same' });
    assert.equal(again.id, first.id);
  });
});

describe('per-tenant quotas with the key (SBX_API_KEYS_FILE)', () => {
  let t: App;
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'sbx-keys-'));
    const file = join(dir, 'keys.json');
    writeFileSync(file, JSON.stringify([
      { key: key('slow'), tenant: 'slow', quota: { submitsPerSecond: 0.01, submitBurst: 2 } },
      { key: key('small'), tenant: 'small', quota: { limits: { memoryBytes: 64 * MiB, cpuTimeMs: 10_000 } } },
      { key: key('free'), tenant: 'free', role: 'admin', quota: { activeJobs: null, submitsPerSecond: null } },
      { key: key('ord-a'), tenant: 'ord-a' },
      { key: key('ord-b'), tenant: 'ord-b' },
    ]));
    t = createTestApp(redis, { SBX_API_KEYS_FILE: file, SBX_TENANT_ACTIVE_JOBS: '5', SBX_TENANT_SUBMITS_PER_SECOND: '100' });
  });
  after(async () => {
    await t?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('submissions per second: a token bucket (burst, then the refill rate) with the real wait in Retry-After', async () => {
    await submitOk(t, 'slow');
    await submitOk(t, 'slow');
    const retryAfter = await assertRateLimited(await submit(t, 'slow'), /0\.01 submissions per second/);
    assert.ok(retryAfter > 90 && retryAfter <= 100, `Retry-After ${retryAfter}: one token comes back every 100 s at 0.01/s`);
  });

  test('ceilings on limits: over the tenant ceiling is a 400; defaults are lowered to it', async () => {
    const res = await submit(t, 'small', { limits: { memoryBytes: 128 * MiB } });
    assert.equal(res.status, 400);
    const body = (await res.json()) as { error: { code: string; message: string } };
    assert.equal(body.error.code, 'invalid_request');
    assert.match(body.error.message, /limits\.memoryBytes must be <= 67108864 \(this tenant's maximum\)/);
    const doc = await submitOk(t, 'small');
    assert.equal(doc.limits.memoryBytes, 64 * MiB);
    assert.equal(doc.limits.cpuTimeMs, 10_000);
    assert.equal((await submitOk(t, 'small', { limits: { memoryBytes: 32 * MiB } })).limits.memoryBytes, 32 * MiB);
  });

  test('null in the key file means no limit', async () => {
    for (let i = 0; i < 12; i++) await submitOk(t, 'free');
  });

  test('BullMQ priority = 1 + the tenant\'s active jobs: a tenant with a backlog cannot starve one without; FIFO within a tenant', async () => {
    const a: JobDocument[] = [];
    for (let i = 0; i < 3; i++) a.push(await submitOk(t, 'ord-a'));
    const b = await submitOk(t, 'ord-b');
    const priority = async (id: string) => (await t.deps.queue.queue.getJob(id))?.opts.priority;
    assert.deepEqual(await Promise.all(a.map((j) => priority(j.id))), [1, 2, 3]);
    assert.equal(await priority(b.id), 1);
    // Workers take the lowest priority first, equal priorities in submission order.
    const order = (await t.deps.queue.queue.getPrioritized(0, -1)).map((j) => j.id).filter((id) => [...a, b].some((x) => x.id === id));
    assert.deepEqual(order, [a[0]!.id, b.id, a[1]!.id, a[2]!.id]);
    // Two of a's jobs end; its next job still goes behind its own queued backlog (3), not before it (2).
    assert.equal((await cancel(t, 'ord-a', a[0]!.id)).status, 202);
    assert.equal((await cancel(t, 'ord-a', a[1]!.id)).status, 202);
    const next = await submitOk(t, 'ord-a');
    assert.equal(await priority(next.id), 3);
  });
});
