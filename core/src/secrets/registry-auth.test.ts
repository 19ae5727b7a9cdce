/**
 * A job's registryAuth at rest: what Redis holds for a job carrying it contains neither the
 * username nor the password; the worker's store opens it; it is gone once the job ends; an altered
 * or moved ciphertext, or another key, fails closed; without SBX_SECRETS_KEY such a request is a 400.
 * Real redis-server, the API app in-process (test/harness/api-app.ts).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { createTestApp } from '../../../test/harness/api-app.ts';
import { startRedis, type RunningRedis } from '../../../test/harness/redis.ts';
import type { JobDocument } from '../job-spec.ts';
import { JobStore } from '../job-store.ts';
import { SecretBox, parseSecretsKey } from './secret-box.ts';
import { UnknownAuthFieldsError } from './registry-auth.ts';

const KEY = randomBytes(32).toString('base64');
const USER = `robot-${randomBytes(6).toString('hex')}`;
const PASS = `pw-${randomBytes(12).toString('hex')}`;
let redis: RunningRedis;
let t: ReturnType<typeof createTestApp>;

before(async () => {
  redis = await startRedis();
  t = createTestApp(redis, { SBX_SECRETS_KEY: KEY });
});
after(async () => {
  await t?.close();
  await redis?.stop();
});

async function submit(app: ReturnType<typeof createTestApp>['app'], body: unknown) {
  const res = await app.request('/v1/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as JobDocument & { error?: { code: string; message: string } } };
}

/** Every key and value in Redis, as text (hashes, streams, strings, sets, lists). */
async function dumpRedis(): Promise<string> {
  const c = redis.client();
  const out: string[] = [];
  for (const key of await c.keys('*')) {
    const type = await c.type(key);
    const value = type === 'hash' ? await c.hgetall(key)
      : type === 'stream' ? await c.xrange(key, '-', '+')
        : type === 'string' ? await c.get(key)
          : type === 'zset' ? await c.zrange(key, 0, -1, 'WITHSCORES')
            : type === 'set' ? await c.smembers(key)
              : type === 'list' ? await c.lrange(key, 0, -1) : `(${type})`;
    out.push(`${key} ${JSON.stringify(value)}`);
  }
  return out.join('\n');
}

const workerStore = (key: string | null) => new JobStore(t.deps.redis, t.deps.keys, 60, key ? new SecretBox(parseSecretsKey(key)) : null);

describe('registryAuth at rest', () => {
  test('Redis holds neither the username nor the password; the worker opens them; the job ending deletes them', async () => {
    const { status, body: doc } = await submit(t.app, { image: '127.0.0.1:5000/private/busybox:latest', command: ['true'], registryAuth: { username: USER, password: PASS } });
    assert.equal(status, 202);
    const raw = await dumpRedis();
    for (const secret of [USER, PASS, Buffer.from(`${USER}:${PASS}`).toString('base64'), Buffer.from(PASS).toString('base64'), Buffer.from(PASS).toString('hex')]) {
      assert.ok(!raw.includes(secret), `Redis holds ${secret} in the clear:\n${raw.split('\n').filter((l) => l.includes(secret)).join('\n').slice(0, 600)}`);
    }
    const sealed = await t.deps.redis.hget(t.deps.keys.jobState(doc.id), 'auth');
    assert.match(sealed ?? '', /^v1\.[\w-]+\.[\w-]+\.[\w-]+$/, 'the job record has its sealed registryAuth');

    assert.deepEqual(await workerStore(KEY).registryAuth(doc.id), { username: USER, password: PASS });

    const cancelled = await t.app.request(`/v1/jobs/${doc.id}`, { method: 'DELETE' });
    assert.ok(cancelled.status === 200 || cancelled.status === 202, String(cancelled.status));
    assert.equal(((await cancelled.json()) as JobDocument).status, 'cancelled');
    assert.equal(await t.deps.redis.hexists(t.deps.keys.jobState(doc.id), 'auth'), 0, 'the sealed registryAuth outlived the job');
    assert.equal(await workerStore(KEY).registryAuth(doc.id), null);
  });

  test('a job ended by the worker (any final status) loses it too', async () => {
    const { body: doc } = await submit(t.app, { image: '127.0.0.1:5000/private/busybox:latest', registryAuth: { username: USER, password: PASS } });
    const store = workerStore(KEY);
    const stored = (await store.get(doc.id))!;
    assert.equal(stored.spec.registryAuth, null, 'the spec JSON carries no credentials');
    assert.equal(await store.transition({ ...stored.doc, status: 'pulling' }, ['queued'], 'status'), 'ok');
    assert.ok(await store.registryAuth(doc.id), 'still there while the job runs');
    assert.equal(await store.transition({ ...stored.doc, status: 'error', error: { code: 'image_pull_failed', message: 'x' } }, ['pulling'], 'exit'), 'ok');
    assert.equal(await t.deps.redis.hexists(t.deps.keys.jobState(doc.id), 'auth'), 0);
  });

  test('an altered, moved or foreign-key ciphertext fails closed (registry_unauthorized, no credentials)', async () => {
    const a = (await submit(t.app, { image: '127.0.0.1:5000/p/x:y', registryAuth: { username: USER, password: PASS } })).body;
    const b = (await submit(t.app, { image: '127.0.0.1:5000/p/x:y', registryAuth: { username: 'other', password: 'other-pass' } })).body;
    const stateA = t.deps.keys.jobState(a.id);
    const sealed = (await t.deps.redis.hget(stateA, 'auth'))!;
    const store = workerStore(KEY);
    const refused = async (id: string, why: string) => {
      await assert.rejects(store.registryAuth(id), (e: Error & { code?: string }) => {
        assert.equal(e.code, 'registry_unauthorized', why);
        assert.match(e.message, /cannot be decrypted.*not pulled/);
        assert.ok(!e.message.includes(PASS));
        return true;
      }, why);
    };
    // One bit flipped in the ciphertext, then in the tag.
    const parts = sealed.split('.');
    for (const i of [2, 3]) {
      const bytes = Buffer.from(parts[i]!, 'base64url');
      bytes[0]! ^= 1;
      const altered = [...parts];
      altered[i] = bytes.toString('base64url');
      await t.deps.redis.hset(stateA, 'auth', altered.join('.'));
      await refused(a.id, `part ${i} altered`);
    }
    await t.deps.redis.hset(stateA, 'auth', 'garbage');
    await refused(a.id, 'not a sealed value');
    // B's sealed credentials copied onto A's record do not open there.
    await t.deps.redis.hset(stateA, 'auth', (await t.deps.redis.hget(t.deps.keys.jobState(b.id), 'auth'))!);
    await refused(a.id, 'moved from another job');
    // Another key, or none, on the worker.
    await t.deps.redis.hset(stateA, 'auth', sealed);
    await assert.rejects(workerStore(randomBytes(32).toString('hex')).registryAuth(a.id), /SBX_SECRETS_KEY differs/);
    await assert.rejects(workerStore(null).registryAuth(a.id), /this worker has no SBX_SECRETS_KEY/);
    assert.deepEqual(await store.registryAuth(a.id), { username: USER, password: PASS }, 'the original still opens');
  });

  test('a sealed value with fields this version does not know (a newer API\'s) is refused naming them, not opened without them', async () => {
    const { body: doc } = await submit(t.app, { image: '127.0.0.1:5000/p/x:y', registryAuth: { username: USER, password: PASS } });
    const state = t.deps.keys.jobState(doc.id);
    const box = new SecretBox(parseSecretsKey(KEY));
    const seal = (value: unknown) => box.seal(JSON.stringify(value), `sbx registryAuth ${doc.id}`);
    await t.deps.redis.hset(state, 'auth', seal({ username: USER, password: PASS, identityToken: 'tok', registry: { mirror: true } }));
    await assert.rejects(workerStore(KEY).registryAuth(doc.id), (e: Error) => {
      assert.ok(e instanceof UnknownAuthFieldsError, String(e));
      assert.deepEqual(e.unknown, ['registryAuth.identityToken', 'registryAuth.registry']);
      return true;
    });
    // Damaged rather than newer: fails closed as an altered value does.
    await t.deps.redis.hset(state, 'auth', seal({ username: USER }));
    await assert.rejects(workerStore(KEY).registryAuth(doc.id), (e: Error & { code?: string }) => e.code === 'registry_unauthorized' && /username and a password/.test(e.message));
  });

  test('without SBX_SECRETS_KEY a request with registryAuth is a 400 naming it; others are accepted', async () => {
    const keyless = createTestApp(redis);
    try {
      const refused = await submit(keyless.app, { image: '127.0.0.1:5000/p/x:y', registryAuth: { username: USER, password: PASS } });
      assert.equal(refused.status, 400);
      assert.equal(refused.body.error?.code, 'invalid_request');
      assert.match(refused.body.error?.message ?? '', /no SBX_SECRETS_KEY/);
      assert.ok(!(await dumpRedis()).includes(PASS));
      assert.equal((await submit(keyless.app, { image: '127.0.0.1:5000/p/x:y' })).status, 202);
    } finally {
      await keyless.close();
    }
  });
});

describe('SBX_SECRETS_KEY', () => {
  test('64 hex digits or base64 of 32 bytes; anything else is refused', () => {
    const key = randomBytes(32);
    assert.deepEqual(parseSecretsKey(key.toString('hex')), key);
    assert.deepEqual(parseSecretsKey(key.toString('base64')), key);
    assert.deepEqual(parseSecretsKey(key.toString('base64url')), key);
    for (const bad of ['', 'secret', randomBytes(16).toString('hex'), randomBytes(31).toString('base64'), randomBytes(33).toString('base64'), `${key.toString('hex')}0`]) {
      assert.throws(() => parseSecretsKey(bad), /32 random bytes/, JSON.stringify(bad));
    }
  });

  test('each seal uses a fresh IV: the same plaintext never seals the same way', () => {
    const box = new SecretBox(randomBytes(32));
    assert.notEqual(box.seal('x', 'c'), box.seal('x', 'c'));
    assert.equal(box.open(box.seal('x', 'c'), 'c'), 'x');
  });
});
