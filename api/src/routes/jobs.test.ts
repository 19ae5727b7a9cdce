/**
 * Route tests through app.request() against a real redis-server, with no worker: what the API
 * answers by itself (validation, idempotency, tenants, listing, cancelling queued jobs, SSE replay).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startRedis, waitUntil, type RunningRedis } from '../../../test/harness/redis.ts';
import { createTestApp, startAsWorker } from '../../../test/harness/api-app.ts';
import { parseServerSentEvents } from '../../../client/src/sse.ts';
import type { JobDocument } from '../../../core/src/job-spec.ts';
import { IDEMPOTENCY_TTL_SECONDS, RedisKeys } from '../../../core/src/redis-keys.ts';
import { TAKEOVER_MS } from '../idempotency-keys.ts';

const KEY_A = 'key-aaaaaaaaaaaaaaaaaaaa';
const KEY_B = 'key-bbbbbbbbbbbbbbbbbbbb';
const KEY_ADMIN = 'key-admin-cccccccccccccccc';
let redis: RunningRedis;
let t: ReturnType<typeof createTestApp>;

before(async () => {
  redis = await startRedis();
  t = createTestApp(redis, { SBX_API_KEYS: `${KEY_A}:alpha,${KEY_B}:beta,${KEY_ADMIN}:ops:admin`, SBX_MAX_MEMORY_BYTES: String(512 * 1024 * 1024), SBX_MAX_STOP_GRACE_MS: '5000' });
});
after(async () => {
  await t?.close();
  await redis?.stop();
});

function call(method: string, path: string, opts: { key?: string | null; body?: unknown; headers?: Record<string, string> } = {}) {
  const headers: Record<string, string> = { ...(opts.key === null ? {} : { authorization: `Bearer ${opts.key ?? KEY_A}` }), ...opts.headers };
  if (opts.body !== undefined) headers['content-type'] ??= 'application/json';
  return t.app.request(path, { method, headers, body: opts.body === undefined ? undefined : typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body) });
}

const image = '127.0.0.1:5000/test/busybox:latest';

describe('POST /v1/jobs', () => {
  test('accepts a job: 202, Location, defaults resolved, queued in BullMQ', async () => {
    const res = await call('POST', '/v1/jobs', { body: { image: 'busybox', command: ['true'], labels: { team: 'grading' } } });
    assert.equal(res.status, 202);
    const doc = (await res.json()) as JobDocument;
    assert.match(doc.id, /^j_[0-9A-Z]{26}$/);
    assert.equal(res.headers.get('location'), `/v1/jobs/${doc.id}`);
    assert.equal(doc.status, 'queued');
    assert.equal(doc.image, 'docker.io/library/busybox:latest');
    assert.equal(doc.limits.memoryBytes, 256 * 1024 * 1024);
    assert.deepEqual(doc.labels, { team: 'grading' });
    assert.ok(await t.deps.queue.queue.getJob(doc.id), 'the id is on the queue');
  });

  test('a limit over the server maximum is a 400, not silently lowered', async () => {
    const res = await call('POST', '/v1/jobs', { body: { image, limits: { memoryBytes: 1024 * 1024 * 1024 } } });
    assert.equal(res.status, 400);
    const body = (await res.json()) as { error: { code: string; message: string; details: Array<{ path: string }> } };
    assert.equal(body.error.code, 'invalid_request');
    assert.match(body.error.message, /limits\.memoryBytes must be <= 536870912/);
  });

  test('limits.stopGraceMs over SBX_MAX_STOP_GRACE_MS is a 400; under it, kept with the stop signal', async () => {
    const res = await call('POST', '/v1/jobs', { body: { image, limits: { stopGraceMs: 5001 } } });
    assert.equal(res.status, 400);
    assert.match(((await res.json()) as { error: { message: string } }).error.message, /limits\.stopGraceMs must be <= 5000 \(this server's maximum\)/);
    const ok = await call('POST', '/v1/jobs', { body: { image, stopSignal: 'SIGINT', limits: { stopGraceMs: 5000 } } });
    assert.equal(ok.status, 202);
    assert.equal(((await ok.json()) as JobDocument).limits.stopGraceMs, 5000);
  });

  test('network "egress" is kept in the spec with its egressHosts (lowercased); a server with SBX_JOB_EGRESS=false refuses it', async () => {
    const res = await call('POST', '/v1/jobs', { body: { image, network: 'egress', egressHosts: ['PyPI.org', '*.pythonhosted.org'] } });
    assert.equal(res.status, 202);
    const id = ((await res.json()) as JobDocument).id;
    const spec = JSON.parse((await redis.client().hget(new RedisKeys('sbx').jobState(id), 'spec'))!) as { network: string; egressHosts: string[] };
    assert.deepEqual([spec.network, spec.egressHosts], ['egress', ['pypi.org', '*.pythonhosted.org']]);
    const off = createTestApp(redis, { SBX_ALLOW_ANONYMOUS: 'true', SBX_JOB_EGRESS: 'false' });
    try {
      const refused = await off.app.request('/v1/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ image, network: 'egress' }) });
      assert.equal(refused.status, 400);
      const body = (await refused.json()) as { error: { message: string; details: { path: string }[] } };
      assert.match(body.error.message, /network must be "none": this server does not let jobs reach the network \(SBX_JOB_EGRESS=false\)/);
      assert.equal(body.error.details[0]!.path, 'network');
      const none = await off.app.request('/v1/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ image, network: 'none' }) });
      assert.equal(none.status, 202);
    } finally {
      await off.close();
    }
    // Per tenant: a key whose quota says jobEgress: false; another tenant of the same server keeps it.
    const keys = [{ key: 'no-network-key-0123456789', tenant: 'graders', quota: { jobEgress: false } }, { key: 'network-key-0123456789ab', tenant: 'ci' }];
    const perTenant = createTestApp(redis, { SBX_API_KEYS: JSON.stringify(keys) });
    try {
      const submit = (key: string) => perTenant.app.request('/v1/jobs', { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` }, body: JSON.stringify({ image, network: 'egress' }) });
      const refused = await submit(keys[0]!.key);
      assert.equal(refused.status, 400);
      assert.match(((await refused.json()) as { error: { message: string } }).error.message, /network must be "none": this tenant's jobs may not reach the network \(its quota says jobEgress: false\)/);
      assert.equal((await submit(keys[1]!.key)).status, 202);
    } finally {
      await perTenant.close();
    }
  });

  test('every JSON answer is application/json; charset=utf-8 (api.md), answers and errors alike', async () => {
    const submitted = (await (await call('POST', '/v1/jobs', { body: { image, command: ['true'] } })).json()) as JobDocument;
    const answers = [
      await call('GET', '/v1/jobs'),
      await call('GET', `/v1/jobs/${submitted.id}`),
      await call('GET', '/v1/jobs/j_00000000000000000000000000'),
      await call('POST', '/v1/jobs', { body: { image: '' } }),
      await call('GET', '/v1/nowhere'),
      await call('GET', '/v1/jobs', { key: null }),
    ];
    assert.deepEqual(answers.map((r) => r.headers.get('content-type')), answers.map(() => 'application/json; charset=utf-8'), `statuses ${answers.map((r) => r.status).join(', ')}`);
  });

  test('a body of 20,000 unknown fields gets a short 400 naming the first ten, not one listing them all', async () => {
    const body: Record<string, unknown> = { image };
    for (let i = 0; i < 20_000; i++) body[`unknownField${i}`] = 1;
    const res = await call('POST', '/v1/jobs', { body });
    assert.equal(res.status, 400);
    const text = await res.text();
    assert.ok(text.length < 4096, `${text.length} bytes of answer`);
    const { error } = JSON.parse(text) as { error: { message: string } };
    assert.match(error.message, /^unknownField0, unknownField1, .*unknownField9 \(and 19990 more\) are not known fields$/);
  });

  test('the same idempotencyKey returns the first job, per tenant', async () => {
    const body = { image, command: ['echo', '1'], idempotencyKey: 'retry-me' };
    const first = (await (await call('POST', '/v1/jobs', { body })).json()) as JobDocument;
    const second = (await (await call('POST', '/v1/jobs', { body })).json()) as JobDocument;
    assert.equal(second.id, first.id);
    const otherTenant = (await (await call('POST', '/v1/jobs', { body, key: KEY_B })).json()) as JobDocument;
    assert.notEqual(otherTenant.id, first.id);
  });

  test('the same idempotencyKey sent 30 times at once: one job, all 30 answers name it', async () => {
    // Before, a submission that found the key claimed but the first job not written yet took the key
    // over and ran a job of its own: 10 to 30 jobs for one key.
    for (const round of [1, 2, 3]) {
      const body = { image, command: ['echo', `at-once-${round}`], idempotencyKey: `at-once-${round}` };
      const answers = await Promise.all(Array.from({ length: 30 }, async () => {
        const res = await call('POST', '/v1/jobs', { body });
        assert.equal(res.status, 202, await res.clone().text());
        return ((await res.json()) as JobDocument).id;
      }));
      assert.equal(new Set(answers).size, 1, `round ${round}: ${new Set(answers).size} jobs for one key`);
      const listed = (await (await call('GET', '/v1/jobs?limit=500')).json()) as { items: JobDocument[] };
      assert.equal(listed.items.filter((j) => j.command?.[1] === `at-once-${round}`).length, 1, `round ${round}: jobs listed`);
    }
  });

  test('an idempotencyKey whose first submission died before writing its job is taken over after TAKEOVER_MS, not before', async () => {
    // The claim as a submission whose API process died between its claim and its record leaves it.
    const keys = new RedisKeys(t.deps.config.env.SBX_REDIS_PREFIX);
    const k = keys.idempotency('alpha', 'orphaned-claim');
    // The clock starts before the claim is made (its age runs on Redis's clock from the SET): started
    // after the SET's answer, a wait for that answer counted against the takeover (150 ms: 9,879 ms).
    const started = Date.now();
    await t.deps.redis.set(k, 'j_00000000000000000000000000', 'EX', IDEMPOTENCY_TTL_SECONDS);
    const body = { image, command: ['echo', 'orphan'], idempotencyKey: 'orphaned-claim' };
    const res = await call('POST', '/v1/jobs', { body });
    const waited = Date.now() - started;
    assert.equal(res.status, 202);
    const doc = (await res.json()) as JobDocument;
    assert.notEqual(doc.id, 'j_00000000000000000000000000');
    assert.ok(waited >= TAKEOVER_MS - 100, `taken over after ${waited} ms`);
    await waitUntil(async () => (await t.deps.redis.get(k)) === `=${doc.id}`, 5000, 'the key naming the new job, written');
    // The next retry gets that job at once.
    const again = (await (await call('POST', '/v1/jobs', { body })).json()) as JobDocument;
    assert.equal(again.id, doc.id);
  });

  test('an idempotencyKey whose job was written and whose record expired before the key (SBX_JOB_TTL_SECONDS under 24 h) is 409, never a second run', async () => {
    const keys = new RedisKeys(t.deps.config.env.SBX_REDIS_PREFIX);
    const k = keys.idempotency('alpha', 'nightly-42');
    const body = { image, command: ['echo', 'charged once'], idempotencyKey: 'nightly-42' };
    const first = (await (await call('POST', '/v1/jobs', { body })).json()) as JobDocument;
    await waitUntil(async () => (await t.deps.redis.get(k)) === `=${first.id}`, 5000, 'the claim marked as naming a written job');
    // The record expires (SBX_JOB_TTL_SECONDS after its job ends); the key, 24 h after the claim, has
    // not: it is past the takeover age of a claim whose submission died before writing its job.
    await t.deps.redis.del(keys.jobState(first.id), keys.jobEvents(first.id));
    await t.deps.redis.expire(k, IDEMPOTENCY_TTL_SECONDS - Math.ceil(TAKEOVER_MS / 1000) - 5);
    const again = await call('POST', '/v1/jobs', { body });
    assert.equal(again.status, 409, await again.clone().text());
    const { error } = (await again.json()) as { error: { code: string; message: string } };
    assert.equal(error.code, 'already_finished');
    assert.match(error.message, new RegExp(`already ran job ${first.id}, whose record has expired .*send a new key to run again`));
    assert.equal(await t.deps.redis.get(k), `=${first.id}`, 'the key still names the first job');
  });

  test('what a job could not receive as sent is 400, not dropped or changed: a __proto__ key, a lone surrogate', async () => {
    const refused = async (raw: string, code: string, message: RegExp) => {
      const res = await call('POST', '/v1/jobs', { body: raw });
      assert.equal(res.status, 400, raw.slice(0, 80));
      const { error } = (await res.json()) as { error: { code: string; message: string } };
      assert.equal(error.code, code, raw.slice(0, 80));
      assert.match(error.message, message);
    };
    // JSON.parse keeps the key; the env and labels built from it dropped it, and the job ran without it.
    await refused(`{"image":"${image}","command":["env"],"env":{"__proto__":"x","A":"1"}}`, 'invalid_json', /a key named __proto__ is not accepted/);
    await refused(`{"image":"${image}","command":["env"],"env":{"\\u005f_proto__":"x"}}`, 'invalid_json', /a key named __proto__ is not accepted/);
    await refused(`{"image":"${image}","labels":{"__proto__":"x"}}`, 'invalid_json', /a key named __proto__ is not accepted/);
    // No UTF-8 form: the job got U+FFFD in its place.
    await refused(`{"image":"${image}","command":["echo","a\\ud800b"]}`, 'invalid_request', /command items must be well-formed Unicode/);
    await refused(`{"image":"${image}","env":{"A":"\\udc00"}}`, 'invalid_request', /env values must be well-formed Unicode/);
    await refused(`{"image":"${image}","workdir":"/\\ud800"}`, 'invalid_request', /must be well-formed Unicode/);
    // Nor anything else of the job: stdin and a file's text reached the job as U+FFFD; a file's path
    // and an output pattern named another file; two labels or idempotency keys read alike.
    await refused(`{"image":"${image}","stdin":"a\\ud800"}`, 'invalid_request', /stdin must be well-formed Unicode/);
    await refused(`{"image":"${image}","files":[{"path":"/tmp/a","content":"\\udc00"}]}`, 'invalid_request', /files\.0\.content must be well-formed Unicode .*send bytes that are not UTF-8 text as base64/);
    await refused(`{"image":"${image}","files":[{"path":"/tmp/\\ud800","content":"x"}]}`, 'invalid_request', /files\.0\.path path must be well-formed Unicode/);
    await refused(`{"image":"${image}","outputFiles":["/tmp/\\ud800"]}`, 'invalid_request', /outputFiles\.0 pattern must be well-formed Unicode/);
    await refused(`{"image":"${image}","labels":{"a":"\\ud800"}}`, 'invalid_request', /^labels\.a must be well-formed Unicode/);
    await refused(`{"image":"${image}","idempotencyKey":"k\\udfff"}`, 'invalid_request', /^idempotencyKey must be well-formed Unicode/);
    // Nothing to run, whatever the image: the launcher refused it once the job had been queued.
    await refused(`{"image":"${image}","entrypoint":["","x"]}`, 'invalid_request', /entrypoint must begin with the program to run, not an empty item/);
    // Escapes that are whole characters are fine.
    const ok = await call('POST', '/v1/jobs', { body: `{"image":"${image}","command":["echo","\\ud83d\\ude00 \\u00e9"],"env":{"E":"\\u0041"}}` });
    assert.equal(ok.status, 202);
    const doc = (await ok.json()) as JobDocument;
    assert.deepEqual(doc.command, ['echo', '😀 é']);
  });

  test('a body over the limit is 413; wrong content type 415; malformed JSON 400', async () => {
    const big = await call('POST', '/v1/jobs', { body: { image, stdin: 'x'.repeat(2 * 1024 * 1024) } });
    assert.equal(big.status, 413);
    assert.equal(((await big.json()) as { error: { code: string } }).error.code, 'payload_too_large');
    const form = await call('POST', '/v1/jobs', { body: 'image=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    assert.equal(form.status, 415);
    const broken = await call('POST', '/v1/jobs', { body: '{' });
    assert.equal(broken.status, 400);
  });
});

describe('tenants and keys', () => {
  test('no key or a wrong key is 401 with the error body', async () => {
    for (const key of [null, 'not-a-real-key-at-all']) {
      const res = await call('GET', '/v1/jobs', { key });
      assert.equal(res.status, 401);
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'unauthorized');
    }
  });

  test("another tenant's job is 404, exactly as an unknown id", async () => {
    const doc = (await (await call('POST', '/v1/jobs', { body: { image } })).json()) as JobDocument;
    assert.equal((await call('GET', `/v1/jobs/${doc.id}`)).status, 200);
    const foreign = await call('GET', `/v1/jobs/${doc.id}`, { key: KEY_B });
    const unknown = await call('GET', '/v1/jobs/j_00000000000000000000000000', { key: KEY_B });
    assert.equal(foreign.status, 404);
    assert.deepEqual(await foreign.json(), { error: { code: 'not_found', message: `no job ${doc.id}`, details: [] } });
    assert.equal(unknown.status, 404);
    assert.equal((await call('DELETE', `/v1/jobs/${doc.id}`, { key: KEY_B })).status, 404);
    assert.equal((await call('GET', `/v1/jobs/${doc.id}/events`, { key: KEY_B })).status, 404);
  });
});

describe('GET /v1/jobs', () => {
  test('lists the tenant’s jobs newest first, paginated with nextCursor, filtered by status', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(((await (await call('POST', '/v1/jobs', { body: { image }, key: KEY_B })).json()) as JobDocument).id);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const res = await call('GET', `/v1/jobs?limit=2${cursor ? `&cursor=${cursor}` : ''}`, { key: KEY_B });
      const page = (await res.json()) as { items: JobDocument[]; nextCursor: string | null };
      assert.ok(page.items.length <= 2);
      seen.push(...page.items.map((j) => j.id));
      cursor = page.nextCursor;
    } while (cursor);
    const mine = seen.filter((id) => ids.includes(id));
    assert.deepEqual(mine, [...ids].reverse());
    const running = (await (await call('GET', '/v1/jobs?status=running', { key: KEY_B })).json()) as { items: JobDocument[] };
    assert.equal(running.items.length, 0);
    assert.equal((await call('GET', '/v1/jobs?limit=0', { key: KEY_B })).status, 400);
    assert.equal((await call('GET', '/v1/jobs?status=bogus', { key: KEY_B })).status, 400);
  });
});

describe('DELETE /v1/jobs/{id}', () => {
  test('a queued job is cancelled at once, leaves the queue, and cannot be cancelled twice', async () => {
    const doc = (await (await call('POST', '/v1/jobs', { body: { image } })).json()) as JobDocument;
    const res = await call('DELETE', `/v1/jobs/${doc.id}`);
    assert.equal(res.status, 202);
    const cancelled = (await res.json()) as JobDocument;
    assert.equal(cancelled.status, 'cancelled');
    assert.ok(cancelled.timings.finishedAt);
    assert.equal(await t.deps.queue.queue.getJob(doc.id), undefined);
    const again = await call('DELETE', `/v1/jobs/${doc.id}`);
    assert.equal(again.status, 409);
    assert.equal(((await again.json()) as { error: { code: string } }).error.code, 'already_finished');
  });

  test('a running job that ends by itself as its cancel arrives: 409 already_finished naming how it ended, not 202', async () => {
    const doc = (await (await call('POST', '/v1/jobs', { body: { image, command: ['sh', '-c', 'exit 7'] } })).json()) as JobDocument;
    const running = await startAsWorker(t.deps, doc);
    // The worker's side of the race: the command exits 7 on its own just as the cancel comes.
    const sub = t.deps.redis.duplicate();
    await sub.subscribe(t.deps.keys.control());
    sub.on('message', () => void t.deps.store.transition({ ...running, status: 'failed', exitCode: 7, timings: { ...running.timings, finishedAt: new Date().toISOString() } }, ['running'], 'exit'));
    try {
      const res = await call('DELETE', `/v1/jobs/${doc.id}`);
      const body = await res.text();
      assert.equal(res.status, 409, `before: 202 with the job ${body}`);
      assert.deepEqual(JSON.parse(body), { error: { code: 'already_finished', message: `job ${doc.id} already finished with status failed; only queued or running jobs can be cancelled`, details: [] } });
      assert.equal(((await (await call('GET', `/v1/jobs/${doc.id}`)).json()) as JobDocument).status, 'failed');
    } finally {
      sub.disconnect();
    }
  });

  test('the events of a finished job replay in full, then the stream closes', async () => {
    const doc = (await (await call('POST', '/v1/jobs', { body: { image } })).json()) as JobDocument;
    await call('DELETE', `/v1/jobs/${doc.id}`);
    const res = await call('GET', `/v1/jobs/${doc.id}/events`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/);
    const events = [];
    for await (const e of parseServerSentEvents(res.body!)) events.push(e);
    assert.deepEqual(events.map((e) => e.event), ['status', 'exit']);
    assert.equal(JSON.parse(events[1]!.data).status, 'cancelled');
    const bad = await call('GET', `/v1/jobs/${doc.id}/events?lastEventId=nope`);
    assert.equal(bad.status, 400);
  });
});

describe('operations', () => {
  test('healthz, readyz, metrics, openapi.json and docs answer', async () => {
    assert.equal((await call('GET', '/healthz', { key: null })).status, 200);
    assert.equal((await call('GET', '/readyz', { key: null })).status, 200);
    const metrics = await (await call('GET', '/metrics', { key: KEY_ADMIN })).text(); // admin keys only: api/src/routes/access.test.ts
    assert.match(metrics, /sbx_jobs_submitted_total\{tenant="[a-z0-9_-]+",role="api"\} \d+/);
    const spec = (await (await call('GET', '/openapi.json', { key: null })).json()) as { paths: Record<string, unknown>; components: { schemas: Record<string, unknown> } };
    for (const p of ['/v1/jobs', '/v1/jobs/{id}', '/v1/jobs/{id}/events', '/v1/images', '/v1/workers']) assert.ok(spec.paths[p], p);
    assert.ok(spec.components.schemas.JobRequest);
    // The limits that share memory say so in the document users read.
    assert.match(JSON.stringify(spec.components.schemas), /count against memoryBytes/);
    assert.match(await (await call('GET', '/docs', { key: null })).text(), /sbx API v1/);
    const missing = await call('GET', '/nope', { key: null });
    assert.equal(missing.status, 404);
    assert.equal(((await missing.json()) as { error: { code: string } }).error.code, 'not_found');
  });
});
