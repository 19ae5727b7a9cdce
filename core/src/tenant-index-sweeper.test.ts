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
  t = createTestApp(redis, { SBX_JOB_TTL_SECONDS: '60', SBX_WEBHOOK_RETRY_MS: '60000' }); // webhooks retried only while records live
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

test('a tenant index expires with its records: its TTL outlives every record, also when the tenant stops submitting', async () => {
  // Auditor's repro: 20 jobs, SBX_JOB_TTL_SECONDS=60, the tenant silent after: the records expired,
  // the index stayed for ever (ZCARD 20, TTL -1: the sweeper runs only as jobs are created).
  const c = redis.client();
  const ids: string[] = [];
  for (let i = 0; i < 20; i++) ids.push(await submit());
  const key = INDEX;
  const ttl = await c.ttl(key);
  const recordTtls = await Promise.all(ids.map((id) => c.ttl(`sbx:{job:${id}}:state`)));
  const longest = Math.max(...recordTtls);
  console.log(`index ${key}: ZCARD ${await c.zcard(key)}, TTL ${ttl} s; records' longest TTL ${longest} s`);
  assert.ok(ttl > 0, `the index has a TTL (found ${ttl}): it goes once the tenant's records have`);
  // A record lives at most its first TTL, then the job TTL (60 s) from its end.
  assert.ok(ttl >= longest + 60, `the index (TTL ${ttl}) outlives every record (longest ${longest} s, + the 60 s a finished job keeps)`);
  assert.ok(ttl <= longest + 60 + 120, `and not much longer (TTL ${ttl}, longest record ${longest})`);
});
