/**
 * A page of `GET /v1/jobs?status=` reads at most MAX_SCANNED of the tenant's records, matching or not,
 * then answers with a nextCursor: a filter that matches nothing made each request read 5,000 records
 * (15 ms of Redis's CPU for 1 KiB commands, measured), so one tenant's list requests could keep the
 * Redis every tenant shares busy. Real redis-server, the app in-process, no worker (jobs stay queued).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { JobDocument } from '../../../core/src/job-spec.ts';
import { useTestApp } from '../../../test/harness/api-app.ts';

const JOBS = 2500;
const stack = useTestApp({ SBX_TENANT_ACTIVE_JOBS: '0', SBX_TENANT_SUBMITS_PER_SECOND: '0' });

const calls = (stats: string, cmd: string) => Number(new RegExp(`cmdstat_${cmd}:calls=(\\d+)`).exec(stats)?.[1] ?? 0);
/** Records read: their documents (HMGET) or, under a filter, their status alone first (HGET). */
const recordReads = async () => {
  const stats = await stack.redis.client().info('commandstats');
  return calls(stats, 'hmget') + calls(stats, 'hget');
};

test('a filter matching none of 2,500 jobs reads at most 1,000 records a page, and paging on goes through them all', async () => {
  const body = JSON.stringify({ image: '127.0.0.1:5000/test/busybox:latest', command: ['echo', 'x'.repeat(1024)] });
  for (let i = 0; i < JOBS; i += 50) {
    await Promise.all(Array.from({ length: 50 }, async () => {
      const res = await stack.app.request('/v1/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      assert.equal(res.status, 202);
    }));
  }
  let cursor: string | null = null;
  let pages = 0;
  do {
    const before = await recordReads();
    const res = await stack.app.request(`/v1/jobs?status=failed&limit=500${cursor ? `&cursor=${cursor}` : ''}`);
    const page = (await res.json()) as { items: JobDocument[]; nextCursor: string | null };
    const read = (await recordReads()) - before;
    assert.equal(page.items.length, 0);
    assert.ok(read <= 1000, `page ${pages + 1} read ${read} records`);
    cursor = page.nextCursor;
    pages++;
  } while (cursor && pages < 10);
  assert.equal(cursor, null, 'paging on ends');
  assert.equal(pages, 3, '2,500 records in pages of at most 1,000');
  // A filter that matches fills its page as before.
  const queued = (await (await stack.app.request('/v1/jobs?status=queued&limit=500')).json()) as { items: JobDocument[]; nextCursor: string | null };
  assert.equal(queued.items.length, 500);
  assert.ok(queued.nextCursor);
});

test('paging one at a time goes through 100 jobs created in the same millisecond, each once', async () => {
  const body = JSON.stringify({ image: '127.0.0.1:5000/test/busybox:latest', command: ['true'] });
  const ids: string[] = [];
  for (let i = 0; i < 100; i++) {
    const res = await stack.app.request('/v1/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    assert.equal(res.status, 202);
    ids.push(((await res.json()) as JobDocument).id);
  }
  // Every one of them in one millisecond (later than the other test's jobs: listed first). No API
  // keys: the tenant is 'default'.
  const client = stack.redis.client();
  const index = stack.deps.keys.tenantJobs('default');
  for (const id of ids) assert.equal(await client.zadd(index, 'XX', 'CH', 1_800_000_000_000, id), 1);
  const listed: string[] = [];
  let cursor: string | null = null;
  for (let pages = 0; pages < 150 && listed.length < 100; pages++) {
    const res = await stack.app.request(`/v1/jobs?limit=1${cursor ? `&cursor=${cursor}` : ''}`);
    const page = (await res.json()) as { items: JobDocument[]; nextCursor: string | null };
    listed.push(...page.items.map((d) => d.id));
    cursor = page.nextCursor;
    if (!cursor) break;
  }
  assert.deepEqual(listed, [...ids].sort().reverse(), `the 100, newest first (by id within the millisecond): ${listed.length} listed`);
});
