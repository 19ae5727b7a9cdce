/**
 * P50 against a real API process: a tenant has at most its quota's `requests` open at once on an API
 * process, from authentication until the answer is written or the connection closes. Each answer a
 * client does not read holds up to about a page of the API's memory (P48); without the bound one
 * tenant's 1,500 unread answers of a long output grew the API by hundreds of MiB.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { JobDocument } from '../../../core/src/job-spec.ts';
import { RedisKeys } from '../../../core/src/redis-keys.ts';
import { JobStore } from '../../../core/src/job-store.ts';
import { createHash } from 'node:crypto';
import { useApiProcess } from '../../../test/harness/api-process.ts';
import { finishedJob, openIdleReaders, outputOf, rssMiB } from '../../../test/harness/idle-readers.ts';

const A = 'aaaaaaaaaaaaaaaa1';
const B = 'bbbbbbbbbbbbbbbb1';
const LIMIT = 20;
const stack = useApiProcess({
  SBX_API_KEYS: JSON.stringify([{ key: A, tenant: 'team-a', quota: { requests: LIMIT } }, { key: B, tenant: 'team-b' }]),
  SBX_TENANT_SUBMITS_PER_SECOND: '0',
  SBX_TENANT_REQUESTS_PER_SECOND: '0', // this file is about requests open at once, not their rate (request-rate.test.ts)
});
const as = (key: string) => ({ authorization: `Bearer ${key}` });
const get = (path: string, key: string) => fetch(`${stack.api.url}${path}`, { headers: as(key) });

test('past its quota a tenant\'s next request is 429 and does nothing; other tenants go on; a closed connection gives its place back', async () => {
  const doc = await finishedJob(stack, outputOf(512), as(A)); // 16 MiB: a streamed answer
  const readers = await openIdleReaders(stack.api, Array(LIMIT).fill(`/v1/jobs/${doc.id}?output=true`), `Authorization: Bearer ${A}\r\n`);
  try {
    await readers.answered(LIMIT);
    assert.deepEqual(readers.statuses(), { 200: LIMIT }, 'the quota\'s requests are answered');

    const refused = await get('/v1/jobs', A);
    assert.equal(refused.status, 429);
    assert.equal(refused.headers.get('retry-after'), '1');
    const body = (await refused.json()) as { error: { code: string; message: string } };
    assert.equal(body.error.code, 'rate_limited');
    assert.match(body.error.message, /already has 20 requests open on this API server, its quota \(requests: 20\)/);
    // A submission past the quota creates nothing.
    const submit = await fetch(`${stack.api.url}/v1/jobs?wait=true`, { method: 'POST', headers: { 'content-type': 'application/json', ...as(A) }, body: JSON.stringify({ image: '127.0.0.1:5000/test/busybox:latest', command: ['true'] }) });
    assert.equal(submit.status, 429);
    assert.equal(await stack.redis.client().zcard(new RedisKeys().tenantJobs('team-a')), 1, 'only the job made before');

    const other = await get('/v1/jobs', B);
    assert.equal(other.status, 200, 'another tenant is not held up');

    readers.sockets[0]!.destroy();
    const until = Date.now() + 5000;
    let status = 0;
    while (Date.now() < until && (status = (await get(`/v1/jobs/${doc.id}`, A)).status) === 429) await new Promise((r) => setTimeout(r, 50));
    assert.equal(status, 200, 'the closed connection\'s place is given back');
  } finally {
    readers.close();
  }
});

test('answers written give their places back: 3 × the quota one after another on one connection, and as many at once in turns', async () => {
  const doc = await finishedJob(stack, [{ type: 'stdout', data: 'hi\n' }], as(A));
  for (let i = 0; i < 3 * LIMIT; i++) {
    const res = await get(`/v1/jobs/${doc.id}?output=true`, A);
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as JobDocument).output?.stdout, 'hi\n');
  }
  for (let round = 0; round < 3; round++) {
    const answers = await Promise.all(Array.from({ length: LIMIT }, () => get(`/v1/jobs/${doc.id}`, A).then(async (r) => { await r.arrayBuffer(); return r.status; })));
    assert.deepEqual(new Set(answers), new Set([200]), `round ${round}`);
  }
});

test('1,500 clients of one tenant asking for a 16 MiB output and never reading: 20 are answered, the rest 429, and the API stays small', async () => {
  const doc = await finishedJob(stack, outputOf(512), as(A));
  const before = rssMiB(stack.api.pid);
  let peak = before;
  const readers = await openIdleReaders(stack.api, Array(1500).fill(`/v1/jobs/${doc.id}?output=true`), `Authorization: Bearer ${A}\r\n`);
  try {
    await readers.answered(1500);
    for (let i = 0; i < 6; i++) {
      await new Promise((r) => setTimeout(r, 500));
      peak = Math.max(peak, rssMiB(stack.api.pid));
    }
    process.stdout.write(`# API RSS ${before.toFixed(0)} -> peak ${peak.toFixed(0)} MiB; answers ${JSON.stringify(readers.statuses())}\n`);
    assert.deepEqual(readers.statuses(), { 200: LIMIT, 429: 1500 - LIMIT });
    assert.ok(peak - before < 120, `the API grew by ${(peak - before).toFixed(0)} MiB`);
    assert.equal((await get('/v1/jobs', B)).status, 200);
  } finally {
    readers.close();
  }
});

test('a job\'s 16 MiB of output files (a whole answer of 21 MiB) count a place per MiB: 60 clients not reading get one answer, the rest 429', async () => {
  const doc = await finishedJob(stack, [{ type: 'stdout', data: 'hi\n' }], as(A));
  const bytes = 16 * 2 ** 20;
  const content = Buffer.alloc(bytes, 7).toString('base64');
  const store = new JobStore(stack.redis.client(), new RedisKeys(), 3600);
  assert.ok(await store.recordOutputFiles(doc.id, [{ path: 'out.bin', bytes, keptBytes: bytes, truncated: false, sha256: createHash('sha256').update(Buffer.alloc(bytes, 7)).digest('hex'), content }]));
  const readers = await openIdleReaders(stack.api, Array(60).fill(`/v1/jobs/${doc.id}/files`), `Authorization: Bearer ${A}\r\n`);
  try {
    await readers.answered(60);
    assert.deepEqual(readers.statuses(), { 200: 1, 429: 59 }, 'answers held unread at once');
    assert.equal((await get('/v1/jobs', B)).status, 200, 'another tenant is answered');
  } finally {
    readers.close();
  }
  // Once the unread one is gone, the files come whole and exact to a client that reads.
  let res: Response | null = null;
  for (const until = Date.now() + 5000; Date.now() < until; await new Promise((r) => setTimeout(r, 50))) if ((res = await get(`/v1/jobs/${doc.id}/files`, A)).status !== 429) break;
  assert.equal(res?.status, 200);
  const body = (await res!.json()) as { status: string; items: Array<{ path: string; content: string }> };
  assert.equal(body.status, 'succeeded');
  assert.deepEqual(body.items.map((f) => [f.path, f.content.length]), [['out.bin', content.length]]);
  assert.equal(body.items[0]!.content, content);
});
