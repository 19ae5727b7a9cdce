/**
 * A tenant's job index (<p>:tenant:<t>:jobs) follows its records: each creation pushes its TTL out
 * past the new record's longest life, never back (a job with a short timeout does not cut short an
 * older long one's entry), and an index written without a TTL (before there was one) gets one.
 * Without this a tenant that stopped submitting kept its index for ever (auditor: ZCARD 20, TTL -1
 * long after its records expired). Real redis-server; both ways JobStore writes a record.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { useRedis } from '../../test/harness/use-redis.ts';
import { newJobDocument, type JobSpec } from './job-spec.ts';
import { JobStore } from './job-store.ts';
import { RedisKeys } from './redis-keys.ts';

const redis = useRedis();
const keys = new RedisKeys('idx');
const JOB_TTL = 60;

function spec(id: string, tenant: string, timeoutMs: number): JobSpec {
  return { id, tenant, image: 'x/y:1', command: ['true'], entrypoint: null, env: {}, workdir: null, user: null, stdin: null, limits: { memoryBytes: 1, cpus: 1, pids: 1, timeoutMs, outputBytes: 1, diskBytes: 1, cpuTimeMs: null, openFiles: 1 }, network: 'none', labels: {}, registryAuth: null, callbackUrl: null, createdAt: new Date().toISOString() } as JobSpec;
}

test('create(): the index gets a TTL past its longest record, which a shorter job does not cut', async () => {
  const c = redis.client;
  const store = new JobStore(c, keys, JOB_TTL);
  const index = keys.tenantJobs('a');
  const long = spec('j_idxlong', 'a', 3_600_000);
  assert.ok(await store.create(long, newJobDocument(long)));
  const afterLong = await c.ttl(index);
  const record = await c.ttl(keys.jobState(long.id));
  console.log(`after a 1 h job: index TTL ${afterLong} s, its record ${record} s`);
  assert.ok(afterLong >= record + JOB_TTL, `index TTL ${afterLong} s outlives the record (${record} s) and the job TTL after its end`);
  const short = spec('j_idxshort', 'a', 1_000);
  assert.ok(await store.create(short, newJobDocument(short)));
  const afterShort = await c.ttl(index);
  console.log(`after a 1 s job: index TTL ${afterShort} s`);
  assert.ok(afterShort >= afterLong - 2, `a shorter job does not shorten the index's TTL (${afterLong} → ${afterShort})`);
  assert.deepEqual((await c.zrange(index, 0, -1)).sort(), ['j_idxlong', 'j_idxshort']);
});

test('createThenQueue(): the same, over the queue connection; an index without a TTL gets one', async () => {
  const c = redis.client;
  const store = new JobStore(c, keys, JOB_TTL);
  const index = keys.tenantJobs('b');
  await c.zadd(index, 1, 'j_idxbefore'); // written by a version without the TTL
  assert.equal(await c.ttl(index), -1);
  const s = spec('j_idxqueued', 'b', 10_000);
  let queued = false;
  assert.ok(await store.createThenQueue(s, newJobDocument(s), '', c, async () => (queued = true)));
  assert.ok(queued);
  const ttl = await c.ttl(index);
  const record = await c.ttl(keys.jobState(s.id));
  console.log(`index with an old entry, after createThenQueue: TTL ${ttl} s, the record ${record} s`);
  assert.ok(ttl >= record + JOB_TTL, `index TTL ${ttl} s outlives the record (${record} s)`);
  assert.equal(await c.zscore(index, s.id), String(Date.parse(s.createdAt)));
});
