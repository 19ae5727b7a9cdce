/**
 * A page of `GET /v1/jobs` reads from Redis about what it answers: with a status filter only the
 * documents whose status matches are read (the others' status field alone), and no more documents
 * than the page still lists. Before, a filter read every document it passed over, and a page read
 * at least 8: a job's command may be near the body limit, so `?status=failed` of 24 jobs with
 * ~0.9 MB commands, answering `{"items":[],…}`, made Redis send 21.5 MB and the API parse it
 * (60 such jobs: 53.8 MB and 235 ms of the API's CPU; up to MAX_SCANNED = 1,000 of them per request).
 * Bytes are counted (Redis's total_net_output_bytes), never timed. Real redis-server, the app
 * in-process, no worker (jobs stay queued; some are cancelled).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { JobDocument } from '../../../core/src/job-spec.ts';
import { useTestApp } from '../../../test/harness/api-app.ts';

const JOBS = 24;
const MiB = 1024 * 1024;
const stack = useTestApp({ SBX_TENANT_ACTIVE_JOBS: '0', SBX_TENANT_SUBMITS_PER_SECOND: '0' });

/** Bytes Redis sends while `read` runs (its INFO answers included: a few KiB). */
async function redisSent<T>(read: () => Promise<T>): Promise<{ value: T; bytes: number }> {
  const sent = async () => Number(/total_net_output_bytes:(\d+)/.exec(await stack.redis.client().info('stats'))?.[1]);
  const before = await sent();
  const value = await read();
  return { value, bytes: (await sent()) - before };
}

async function list(query: string): Promise<{ items: JobDocument[]; nextCursor: string | null }> {
  const res = await stack.app.request(`/v1/jobs?${query}`);
  assert.equal(res.status, 200);
  return (await res.json()) as { items: JobDocument[]; nextCursor: string | null };
}

test('a page of jobs with ~0.9 MB commands reads about what it lists, filtered or not', async () => {
  const body = JSON.stringify({ image: '127.0.0.1:5000/test/busybox:latest', command: ['echo', ...Array(7).fill('x'.repeat(125 * 1024))] });
  const ids: string[] = [];
  for (let i = 0; i < JOBS; i++) {
    const res = await stack.app.request('/v1/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    assert.equal(res.status, 202);
    ids.push(((await res.json()) as JobDocument).id);
  }
  const cancelled = [ids[3]!, ids[17]!];
  for (const id of cancelled) assert.equal((await stack.app.request(`/v1/jobs/${id}`, { method: 'DELETE' })).status, 202);

  const none = await redisSent(() => list('status=failed&limit=500'));
  assert.deepEqual(none.value, { items: [], nextCursor: null });
  assert.ok(none.bytes < MiB, `a filter matching none of ${JOBS} jobs made Redis send ${(none.bytes / MiB).toFixed(1)} MiB`);

  const one = await redisSent(() => list('limit=1'));
  assert.equal(one.value.items.length, 1);
  assert.ok(one.bytes < 2 * MiB, `a page of one ~0.9 MB job made Redis send ${(one.bytes / MiB).toFixed(1)} MiB`);

  // A filter that matches lists its jobs, newest first, each once, paging one at a time.
  const listed: string[] = [];
  let cursor: string | null = null;
  let bytes = 0;
  for (let pages = 0; pages < 5; pages++) {
    const page = await redisSent(() => list(`status=cancelled&limit=1${cursor ? `&cursor=${cursor}` : ''}`));
    bytes += page.bytes;
    listed.push(...page.value.items.map((d) => d.id));
    cursor = page.value.nextCursor;
    if (!cursor) break;
  }
  assert.deepEqual(listed, [...cancelled].reverse());
  assert.ok(bytes < 4 * MiB, `paging through 2 cancelled jobs of ${JOBS} made Redis send ${(bytes / MiB).toFixed(1)} MiB`);
});
