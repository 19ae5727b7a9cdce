/**
 * A tenant's job index (<p>:tenant:<t>:jobs) stays bounded by retention without anyone listing: job
 * records expire by TTL, their index entries did not, so the index grew by one entry per job forever
 * (found by the k6 soak, loadtest/RESULTS.md: +1,870 entries a minute at 20 jobs/s with 1,300 jobs
 * retained). Real redis-server, the API app in-process, jobs submitted over HTTP (no worker: they
 * stay queued, their records alive).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createTestApp } from '../../test/harness/api-app.ts';
import { startRedis, waitUntil, type RunningRedis } from '../../test/harness/redis.ts';

let redis: RunningRedis;
let t: ReturnType<typeof createTestApp>;
const INDEX = 'sbx:tenant:default:jobs';

before(async () => {
  redis = await startRedis();
  t = createTestApp(redis, { SBX_JOB_TTL_SECONDS: '60' });
});
after(async () => {
  await t?.close();
  await redis?.stop();
});

async function submit(): Promise<string> {
  const res = await t.app.request('/v1/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ image: 'busybox', command: ['true'] }) });
  assert.equal(res.status, 202);
  return ((await res.json()) as { id: string }).id;
}

test('entries of expired jobs leave the index as jobs are created, also behind long-lived ones', async () => {
  const c = redis.client();
  const old = Date.now() - 3_600_000; // an hour ago: past the 60 s retention
  // 100 old jobs whose records still live (long runs: more than one sweep batch), at the head of the
  // index; behind them 300 whose records expired (only the index entry is left).
  for (let i = 0; i < 100; i++) {
    await c.zadd(INDEX, old + i, `j_alive${String(i).padStart(4, '0')}`);
    await c.hset(`sbx:{job:j_alive${String(i).padStart(4, '0')}}:state`, 'status', 'running');
  }
  for (let i = 0; i < 300; i++) await c.zadd(INDEX, old + 1000 + i, `j_gone${String(i).padStart(4, '0')}`);

  const fresh: string[] = [];
  for (let i = 0; i < 160; i++) fresh.push(await submit());

  await waitUntil(async () => (await c.zcard(INDEX)) === 100 + fresh.length, 10_000, `the index to hold only live jobs (100 long + ${fresh.length} new; it holds ${await c.zcard(INDEX)})`).catch(async (e: Error) => {
    throw new Error(`${e.message}; entries of expired jobs left: ${(await c.zrangebyscore(INDEX, '-inf', '+inf')).filter((id) => id.startsWith('j_gone')).length}`);
  });
  const ids = new Set(await c.zrange(INDEX, 0, -1));
  for (const id of fresh) assert.ok(ids.has(id), `new job ${id} kept`);
  for (let i = 0; i < 100; i++) assert.ok(ids.has(`j_alive${String(i).padStart(4, '0')}`), 'a live old job is kept');
});
