/**
 * A submission that fails after its record is written loses nothing and leaves nothing behind: the
 * record is taken back (no `queued` job that no worker will ever take, in the tenant's list or
 * behind its idempotencyKey), the tenant's quota place is given back, and a retry with the same
 * idempotencyKey queues a job that runs. When even taking the record back failed (Redis gone for
 * both), the retry finds the stranded record and queues it.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { useTestApp } from '../../../test/harness/api-app.ts';
import { newJobDocument, type JobDocument } from '../../../core/src/job-spec.ts';
import { buildJobSpec } from '../job-submission.ts';
import { newJobId } from '../../../core/src/job-id.ts';
import { HostQueues } from '../../../core/src/placement/host-queues.ts';
import { tenantLimitsPolicy } from '../../../core/src/tenant-quota.ts';
import { IDEMPOTENCY_TTL_SECONDS } from '../../../core/src/redis-keys.ts';
import { TAKEOVER_MS } from '../idempotency-keys.ts';

const apiKey = `key-acme-${'x'.repeat(20)}`;
const image = '127.0.0.1:5000/test/busybox:latest';

function submit(t: ReturnType<typeof useTestApp>, body: Record<string, unknown> = {}) {
  return t.app.request('/v1/jobs', {
    method: 'POST',
    headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ image, command: ['true'], ...body }),
  });
}

async function listed(t: ReturnType<typeof useTestApp>): Promise<JobDocument[]> {
  const res = await t.app.request('/v1/jobs', { headers: { authorization: `Bearer ${apiKey}` } });
  assert.equal(res.status, 200);
  return ((await res.json()) as { items: JobDocument[] }).items;
}

describe('a submission whose queue entry is refused', () => {
  const t = useTestApp({ SBX_API_KEYS: `${apiKey}:acme`, SBX_TENANT_ACTIVE_JOBS: '5' });

  test('takes its record back and gives its quota place back; a retry with the same idempotencyKey runs once', async () => {
    // BullMQ's priority counter made a string: Redis answers the queue entry's script WRONGTYPE,
    // after the record (sent first, over the same connection) was written.
    const counter = `${t.deps.queue.queue.qualifiedName}:pc`;
    await t.deps.redis.set(counter, 'not a counter');
    const failed = await submit(t, { idempotencyKey: 'nightly-1' });
    assert.equal(failed.status, 500, await failed.clone().text());
    assert.equal(((await failed.json()) as { error: { code: string } }).error.code, 'internal');

    assert.deepEqual(await listed(t), [], 'no job is left in the tenant\'s list');
    assert.deepEqual(await t.deps.redis.keys(`${t.deps.keys.jobState('*')}`), [], 'no job record is left');
    assert.equal(await t.deps.redis.zcard(t.deps.keys.tenantActive('acme')), 0, 'the quota place is given back');

    await t.deps.redis.del(counter);
    const retried = await submit(t, { idempotencyKey: 'nightly-1' });
    assert.equal(retried.status, 202, await retried.clone().text());
    const job = (await retried.json()) as JobDocument;
    assert.ok(await t.deps.queue.queue.getJob(job.id), 'the retry is queued');
    assert.deepEqual((await listed(t)).map((j) => j.id), [job.id]);

    const again = (await (await submit(t, { idempotencyKey: 'nightly-1' })).json()) as JobDocument;
    assert.equal(again.id, job.id, 'the same key names the same job from then on');
    assert.equal(await t.deps.queue.queue.getJobCountByTypes('prioritized', 'wait'), 1, 'queued once');
  });

  /**
   * A submission whose queue entry is refused (BullMQ's counter is not a number) while Redis denies
   * `command` (ACL), as it fails every command while it is down; `meanwhile` runs before it is
   * allowed again.
   */
  async function submitRefused(command: string, meanwhile: () => Promise<void> = async () => {}): Promise<Response> {
    const admin = t.redis.client();
    const counter = `${t.deps.queue.queue.qualifiedName}:pc`;
    await admin.set(counter, 'not a counter');
    await admin.call('ACL', 'SETUSER', 'default', `-${command}`);
    try {
      const res = await submit(t);
      await meanwhile();
      return res;
    } finally {
      await admin.call('ACL', 'SETUSER', 'default', `+${command}`);
      await admin.del(counter);
    }
  }

  test('without an idempotencyKey, a record Redis would not let it take back is taken back once Redis does', async () => {
    // The queue entry refused (as above), and the take-back refused too: Redis denies DEL (ACL), as
    // it fails every command while it is down. Nothing the client holds names this job.
    const admin = t.redis.client();
    const records = async () => new Set(await admin.keys(t.deps.keys.jobState('*')));
    const before = await records();
    const placesBefore = await admin.zcard(t.deps.keys.tenantActive('acme'));
    // Looked for while Redis still refuses DEL: once it allows it again, the API's own retry (every
    // 1 s, stranded-records.ts) may take the record back before a look after it (a busy host).
    let stranded: string[] = [];
    const failed = await submitRefused('del', async () => {
      stranded = [...(await records())].filter((k) => !before.has(k));
    });
    assert.equal(failed.status, 500, await failed.clone().text());
    assert.equal(stranded.length, 1, 'the failed submission left its record (the take-back was refused)');
    // Redis answers again: the record, its listing and its quota place go, without any request of the client's.
    const deadline = Date.now() + 10_000;
    while ((await admin.exists(stranded[0]!)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.equal(await admin.exists(stranded[0]!), 0, 'the stranded record is taken back');
    const listedIds = (await listed(t)).map((j) => t.deps.keys.jobState(j.id));
    assert.ok(!listedIds.includes(stranded[0]!), 'it is not in the tenant\'s list');
    assert.equal(await admin.zcard(t.deps.keys.tenantActive('acme')), placesBefore, 'its quota place is given back');
  });

  test('a take-back refused after the record went (its listing and quota place kept) is finished once Redis answers', async () => {
    // The queue entry refused, and ZREM denied: the take-back removes the record, then fails to
    // take it out of the tenant's list and to give its quota place back. The retry's take-back finds
    // no record, which counts as taken back (abandonJob-2.lua), and finishes both.
    const admin = t.redis.client();
    const placesBefore = await admin.zcard(t.deps.keys.tenantActive('acme'));
    const listedBefore = await admin.zcard(t.deps.keys.tenantJobs('acme'));
    const failed = await submitRefused('zrem', async () => {
      assert.equal(await admin.zcard(t.deps.keys.tenantActive('acme')), placesBefore + 1, 'its place is still taken while ZREM is refused');
    });
    assert.equal(failed.status, 500, await failed.clone().text());
    const deadline = Date.now() + 10_000;
    const places = () => admin.zcard(t.deps.keys.tenantActive('acme'));
    while ((await places()) !== placesBefore && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.equal(await places(), placesBefore, 'its quota place is given back');
    assert.equal(await admin.zcard(t.deps.keys.tenantJobs('acme')), listedBefore, 'it is out of the tenant\'s list');
  });

  test('a record stranded with no queue entry is queued by the retry that finds it, counted in the quota', async () => {
    // What a submission leaves when Redis went away after the record and before both the entry and
    // the take-back: the record, the idempotency key naming it, and no queue entry.
    const id = newJobId();
    const spec = buildJobSpec({ image, command: ['true'] } as never, id, 'acme', tenantLimitsPolicy(t.deps.config.limits, null), new Date());
    assert.equal(await t.deps.store.create(spec, newJobDocument(spec)), true);
    await t.deps.redis.set(t.deps.keys.idempotency('acme', 'stranded'), id);
    assert.equal(await t.deps.queue.queue.getJob(id), undefined);

    const res = await submit(t, { idempotencyKey: 'stranded' });
    assert.equal(res.status, 202, await res.clone().text());
    assert.equal(((await res.json()) as JobDocument).id, id);
    const entry = await t.deps.queue.queue.getJob(id);
    assert.ok(entry, 'queued by the retry');
    assert.equal(entry.data.image, spec.image);
    assert.notEqual(await t.deps.redis.zscore(t.deps.keys.tenantActive('acme'), id), null, 'counted in the tenant\'s quota');

    // A job already claimed by a worker is never queued a second time.
    const claimed = newJobId();
    const claimedSpec = { ...spec, id: claimed };
    await t.deps.store.create(claimedSpec, newJobDocument(claimedSpec));
    await t.deps.redis.hset(t.deps.keys.jobState(claimed), 'status', 'pulling');
    await t.deps.redis.set(t.deps.keys.idempotency('acme', 'claimed'), claimed);
    const res2 = await submit(t, { idempotencyKey: 'claimed' });
    assert.equal(((await res2.json()) as JobDocument).id, claimed);
    assert.equal(await t.deps.queue.queue.getJob(claimed), undefined, 'a claimed job gets no second entry');

    // Nor is a job waiting on a host's own queue (placed there at submission).
    const placed = newJobId();
    const placedSpec = { ...spec, id: placed };
    await t.deps.store.create(placedSpec, newJobDocument(placedSpec));
    const hosts = new HostQueues(t.deps.redis, t.deps.redis, t.deps.keys, 60_000);
    await hosts.handOff('host-a', { id: placed, placed: 'submit', hops: 0 }, 1);
    await hosts.close();
    await t.deps.redis.set(t.deps.keys.idempotency('acme', 'placed'), placed);
    const res3 = await submit(t, { idempotencyKey: 'placed' });
    assert.equal(((await res3.json()) as JobDocument).id, placed);
    assert.equal(await t.deps.queue.queue.getJob(placed), undefined, 'a job on a host queue gets no second entry');
  });

  test('a retry that finds the record of a submission still on its way waits for its entry: the job is queued once', async () => {
    // The first submission claimed its key just now and wrote its record; its entry, placed on a
    // host's own queue at submission, comes one round trip later (the reservation in Redis first).
    const id = newJobId();
    const spec = buildJobSpec({ image, command: ['true'] } as never, id, 'acme', tenantLimitsPolicy(t.deps.config.limits, null), new Date());
    await t.deps.store.create(spec, newJobDocument(spec));
    await t.deps.redis.set(t.deps.keys.idempotency('acme', 'on-its-way'), id, 'EX', IDEMPOTENCY_TTL_SECONDS);
    const retry = submit(t, { idempotencyKey: 'on-its-way' });
    await new Promise((r) => setTimeout(r, 200));
    const hosts = new HostQueues(t.deps.redis, t.deps.redis, t.deps.keys, 60_000);
    await hosts.handOff('host-a', { id, placed: 'submit', hops: 0 }, 1);
    await hosts.close();
    const res = await retry;
    assert.equal(res.status, 202, await res.clone().text());
    assert.equal(((await res.json()) as JobDocument).id, id);
    assert.equal(await t.deps.queue.queue.getJob(id), undefined, 'one entry, on the host its submission chose (before: a second on the shared queue)');

    // A submission that stopped half way a moment ago: its retry queues the job once the claim is TAKEOVER_MS old.
    const halfWay = newJobId();
    const halfWaySpec = { ...spec, id: halfWay };
    await t.deps.store.create(halfWaySpec, newJobDocument(halfWaySpec));
    await t.deps.redis.set(t.deps.keys.idempotency('acme', 'half-way'), halfWay, 'PX', IDEMPOTENCY_TTL_SECONDS * 1000 - TAKEOVER_MS + 300);
    const res2 = await submit(t, { idempotencyKey: 'half-way' });
    assert.equal(((await res2.json()) as JobDocument).id, halfWay);
    assert.ok(await t.deps.queue.queue.getJob(halfWay), 'queued by the retry once its first submission can no longer be on its way');
  });

  test('the take-back keeps a job a worker has claimed already (its entry went out, only the answer was lost)', async () => {
    const id = newJobId();
    const spec = buildJobSpec({ image, command: ['true'] } as never, id, 'acme', tenantLimitsPolicy(t.deps.config.limits, null), new Date());
    await t.deps.store.create(spec, newJobDocument(spec));
    await t.deps.redis.hset(t.deps.keys.jobState(id), 'status', 'pulling');
    assert.equal(await t.deps.store.abandon(id, 'acme'), false);
    assert.equal(await t.deps.redis.hget(t.deps.keys.jobState(id), 'status'), 'pulling');
    assert.notEqual(await t.deps.redis.zscore(t.deps.keys.tenantJobs('acme'), id), null, 'still listed');

    const queued = newJobId();
    const queuedSpec = { ...spec, id: queued };
    await t.deps.store.create(queuedSpec, newJobDocument(queuedSpec));
    assert.equal(await t.deps.store.abandon(queued, 'acme'), true);
    assert.equal(await t.deps.redis.exists(t.deps.keys.jobState(queued), t.deps.keys.jobEvents(queued)), 0);
    assert.equal(await t.deps.redis.zscore(t.deps.keys.tenantJobs('acme'), queued), null);
  });
});
