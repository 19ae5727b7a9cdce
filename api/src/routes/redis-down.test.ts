/**
 * With Redis gone the API answers 503 with the error body — never a 500, a hang or a stack trace.
 * With Redis up but answering an error (a ReplyError) it is our bug, not an outage: 500 internal.
 * The difference is judged by ioredis's error types (api/src/redis-outage.ts), never message text.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ReplyError } from 'ioredis';
import { startRedis, waitUntil, type RunningRedis } from '../../../test/harness/redis.ts';
import { startRedisSentinel, type RunningRedisSentinel } from '../../../test/harness/redis-sentinel.ts';
import { startTcpGate, type TcpGate } from '../../../test/harness/tcp-gate.ts';
import { createTestApp, useTestApp } from '../../../test/harness/api-app.ts';
import type { JobDocument } from '../../../core/src/job-spec.ts';
import { startRedisCluster, type RunningRedisCluster } from '../../../test/harness/redis-cluster.ts';
import type { Env } from '../../../core/src/config.ts';
import { connectRedis, type RedisClient } from '../../../core/src/redis.ts';
import { isRedisOutage } from '../redis-outage.ts';

describe('Redis answers with an error', () => {
  const t = useTestApp();

  test('a WRONGTYPE ReplyError from Redis is a 500 internal, not a 503', async () => {
    const created = await t.app.request('/v1/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ image: 'busybox', command: ['true'] }) });
    assert.equal(created.status, 202);
    const { id } = (await created.json()) as JobDocument;
    // The job's state hash replaced by a string: every read of it is answered WRONGTYPE.
    const state = t.deps.keys.jobState(id);
    await t.deps.redis.del(state);
    await t.deps.redis.set(state, 'not a hash');
    const res = await t.app.request(`/v1/jobs/${id}`);
    const body = (await res.json()) as { error: { code: string; message: string; details: unknown[] } };
    assert.equal(res.status, 500, JSON.stringify(body));
    assert.deepEqual(body, { error: { code: 'internal', message: 'an internal error occurred; it has been logged', details: [] } });
  });

  test('a ReplyError is an answer whatever its text says (message matching called this one an outage)', async () => {
    await t.deps.redis.set('a-string', 'x');
    const e1 = await t.deps.redis.hget('a-string', 'f').then(() => null, (e: unknown) => e);
    assert.ok(e1 instanceof ReplyError, String(e1));
    assert.equal(isRedisOutage(e1, t.deps.redis), false);
    // A real reply from Redis whose text happens to read like a socket error.
    const e2 = await t.deps.redis.eval("return redis.error_reply('ECONNREFUSED: raised by a script')", 0).then(() => null, (e: unknown) => e);
    assert.ok(e2 instanceof ReplyError, String(e2));
    assert.equal(isRedisOutage(e2, t.deps.redis), false);
    // A bug of ours while Redis is fine is not an outage either.
    assert.equal(isRedisOutage(new Error('Connection is closed.'), t.deps.redis), false, 'the client is ready: not an outage');
    assert.equal(isRedisOutage(new TypeError('x is undefined'), t.deps.redis), false);
  });
});

describe('Redis busy (a script blocks it): a BUSY reply is an outage, 503', () => {
  const t = useTestApp();

  test('while a script runs past busy-reply-threshold, requests answer 503 dependency_unavailable', async () => {
    const admin = t.redis.client();
    await admin.config('SET', 'busy-reply-threshold', '50');
    const blocker = t.redis.client();
    const running = blocker.eval('local t = redis.call("TIME"); while true do local n = redis.call("TIME"); if n[1] - t[1] > 5 then break end end', 0).catch(() => null);
    await new Promise((r) => setTimeout(r, 300));
    try {
      const res = await t.app.request('/v1/jobs/j_00000000000000000000000000');
      const body = (await res.json()) as { error: { code: string } };
      assert.equal(res.status, 503, JSON.stringify(body));
      assert.equal(body.error.code, 'dependency_unavailable');
    } finally {
      await admin.script('KILL').catch(() => null);
      await running;
    }
  });
});

describe('Redis full (maxmemory under noeviction): an OOM reply is not now, 503, and the refused submission left nothing', () => {
  const t = useTestApp();

  test('a submission while Redis refuses writes answers 503 dependency_unavailable; once it has room the same request is accepted', async () => {
    const admin = t.redis.client();
    const submit = () => t.app.request('/v1/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ image: 'busybox', command: ['true'], idempotencyKey: 'full-then-room' }) });
    await admin.config('SET', 'maxmemory-policy', 'noeviction');
    await admin.config('SET', 'maxmemory', '1');
    try {
      const res = await submit();
      const body = (await res.json()) as { error: { code: string; message: string } };
      assert.equal(res.status, 503, JSON.stringify(body));
      assert.equal(body.error.code, 'dependency_unavailable');
      assert.match(body.error.message, /retry/);
      assert.equal(res.headers.get('retry-after'), '1', 'retryable, said in the header clients read (SbxUnavailableError.retryAfter)');
    } finally {
      await admin.config('SET', 'maxmemory', '0');
    }
    const again = await submit();
    assert.equal(again.status, 202, await again.clone().text());
    const doc = (await again.json()) as JobDocument;
    assert.equal(doc.status, 'queued', 'a new job: the refused try was not recorded as this key\'s job');
  });
});

describe('Redis refuses sbx its keys (an ACL, a rotated password): 503, not 500', () => {
  const t = useTestApp();

  test('a submission and a read while the ACL refuses sbx\'s keys answer 503 dependency_unavailable; once mended, 202', async () => {
    const admin = t.redis.client();
    await admin.call('ACL', 'SETUSER', 'default', 'resetkeys', '~not-sbx:*');
    try {
      for (const [method, path, body] of [['POST', '/v1/jobs', { image: 'busybox', command: ['true'] }], ['GET', '/v1/jobs/j_00000000000000000000000000', undefined]] as const) {
        const res = await t.app.request(path, { method, headers: { 'content-type': 'application/json' }, ...(body ? { body: JSON.stringify(body) } : {}) });
        const answer = (await res.json()) as { error: { code: string } };
        assert.equal(res.status, 503, `${method} ${path}: ${JSON.stringify(answer)}`);
        assert.equal(answer.error.code, 'dependency_unavailable');
      }
    } finally {
      await admin.call('ACL', 'SETUSER', 'default', 'allkeys');
    }
    const again = await t.app.request('/v1/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ image: 'busybox', command: ['true'] }) });
    assert.equal(again.status, 202);
  });
});

describe('No Sentinel answers (all down or cut off) while the master is up', () => {
  let sentinel: RunningRedisSentinel;
  let gate: TcpGate;
  let t: ReturnType<typeof createTestApp>;
  before(async () => {
    sentinel = await startRedisSentinel('gated');
    gate = await startTcpGate(Number(sentinel.sentinels[0]!.split(':')[1]));
    t = createTestApp(sentinel.master, { SBX_REDIS_SENTINELS: `127.0.0.1:${gate.port}`, SBX_REDIS_SENTINEL_NAME: 'gated' });
    assert.equal((await t.app.request('/readyz')).status, 200);
  });
  after(async () => {
    await t?.close();
    await gate?.close();
    await sentinel?.stop();
  });

  test('the API answers 503 promptly instead of holding its requests, and serves again once a Sentinel answers', async () => {
    gate.shut();
    // The app's connections to the master drop: to come back they must ask a Sentinel, and none answers.
    await sentinel.master.client().client('KILL', 'TYPE', 'normal');
    const started = Date.now();
    // Before: each request waited for ever (ioredis asks the Sentinels again and again in one attempt).
    const answered = async (req: Response | Promise<Response>) => {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<never>((_, fail) => (timer = setTimeout(() => fail(new Error('no answer in 5 s')), 5_000)));
      try {
        return await Promise.race([req, late]);
      } finally {
        clearTimeout(timer);
      }
    };
    for (const path of ['/readyz', '/v1/jobs/j_00000000000000000000000000']) {
      const res = await answered(t.app.request(path));
      const body = (await res.json()) as { error: { code: string } };
      assert.equal(res.status, 503, `${path}: ${JSON.stringify(body)}`);
      assert.equal(body.error.code, 'dependency_unavailable');
    }
    const submit = await answered(t.app.request('/v1/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ image: 'busybox', command: ['true'] }) }));
    assert.equal(submit.status, 503);
    assert.ok(Date.now() - started < 5_000, `answered in ${Date.now() - started} ms`);
    gate.open();
    await waitUntil(async () => (await t.app.request('/readyz')).status === 200, 10_000, 'the API to be ready again');
    const again = await t.app.request('/v1/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ image: 'busybox', command: ['true'] }) });
    assert.equal(again.status, 202);
  });
});

describe('Redis stopped', () => {
  let redis: RunningRedis;
  let t: ReturnType<typeof createTestApp>;
  before(async () => {
    redis = await startRedis();
    t = createTestApp(redis);
    assert.equal((await t.app.request('/readyz')).status, 200);
    await redis.stop();
  });
  after(async () => {
    await t?.close();
  });

  test('readyz and job routes answer 503 dependency_unavailable while Redis is down', async () => {
    const ready = await t.app.request('/readyz');
    assert.equal(ready.status, 503);
    assert.equal(((await ready.json()) as { error: { code: string } }).error.code, 'dependency_unavailable');
    const started = Date.now();
    const submit = await t.app.request('/v1/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ image: 'busybox', command: ['true'] }) });
    assert.equal(submit.status, 503);
    const body = (await submit.json()) as { error: { code: string; message: string } };
    assert.equal(body.error.code, 'dependency_unavailable');
    assert.ok(Date.now() - started < 10_000, 'answers promptly');
    const get = await t.app.request('/v1/jobs/j_00000000000000000000000000');
    assert.equal(get.status, 503);
    assert.equal((await t.app.request('/healthz')).status, 200, 'the process itself is up');
  });

  test('the errors a command gets while Redis is down are recognised by type', async () => {
    const e = await t.deps.redis.get('anything').then(() => null, (err: unknown) => err);
    assert.ok(e instanceof Error, String(e));
    assert.equal(isRedisOutage(e, t.deps.redis), true, `${(e as Error).name}: ${(e as Error).message}`);
  });
});

describe('Redis Cluster failing over (the master of a slot SIGKILLed, its replica not yet promoted)', () => {
  let cluster: RunningRedisCluster;
  let redis: RedisClient;
  before(async () => {
    cluster = await startRedisCluster({ replicas: 1, nodeTimeoutMs: 3000 });
    redis = connectRedis({ SBX_REDIS_URL: 'redis://127.0.0.1:6379', SBX_REDIS_CLUSTER_NODES: cluster.nodes, SBX_HEARTBEAT_MS: 2000 } as Env, 'api');
    redis.on('error', () => {});
  });
  after(async () => {
    redis?.disconnect();
    await cluster?.stop();
  });

  test('the error the API\'s command gets meanwhile is an outage (503), not a bug (500)', { timeout: 60_000 }, async () => {
    await redis.set('{sbx}:before', 'x'); // connected, slots known
    let failed: Promise<unknown> = Promise.resolve(null);
    await cluster.failover('{sbx}', () => {
      failed = redis.set('{sbx}:during', 'x').then(() => null, (e: unknown) => e);
    });
    const e = await failed;
    assert.ok(e instanceof Error, `the command succeeded: ${String(e)}`);
    assert.equal(redis.status, 'ready', 'the Cluster client itself is ready: its other masters are');
    assert.equal(isRedisOutage(e, redis), true, `${e.name}: ${e.message}`);
    // The same text thrown by anything else is not taken for the Cluster's.
    const standalone = connectRedis({ SBX_REDIS_URL: `redis://${(await cluster.masters())[0]}`, SBX_HEARTBEAT_MS: 2000 } as Env, 'api-standalone');
    try {
      await standalone.ping();
      assert.equal(isRedisOutage(new Error(e.message), standalone), false);
      assert.equal(isRedisOutage(new TypeError(e.message), redis), false);
    } finally {
      standalone.disconnect();
    }
  });
});
