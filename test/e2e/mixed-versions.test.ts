/**
 * During a rolling deploy API copies and workers of different versions share the queue. A job that a
 * newer API accepted with a field or value this worker does not know is not run without it: it ends
 * error / worker_outdated naming what was not known, nothing of it started, and the worker goes on
 * running the jobs it can. Here the newer API is played by rewriting a queued job's stored spec
 * (and, for registryAuth, which is sealed apart from the spec, its sealed value) before any worker exists.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Redis } from 'ioredis';
import { useStack } from '../harness/use-stack.ts';
import { RedisKeys } from '../../core/src/redis-keys.ts';
import { parseSecretsKey, SecretBox } from '../../core/src/secrets/secret-box.ts';

const e2e = useStack({ workers: 0 });

test('a job a newer API wrote with fields this worker does not know ends worker_outdated, unrun; the others run', { timeout: 60_000 }, async () => {
  const submit = async (command: string[]) => {
    const res = await e2e.api.submit({ image: e2e.stack.images.busybox, command });
    assert.equal(res.status, 202, JSON.stringify(res.body));
    return res.body.id;
  };
  const newer = await submit(['echo', 'ran anyway']);
  const current = await submit(['echo', 'ran']);
  // registryAuth is not in the stored spec (null there): it is sealed into the record's `auth` field,
  // which the spec check does not see. A newer API's registryAuth with a field this worker lacks.
  const authRes = await e2e.api.submit({ image: e2e.stack.images.busybox, command: ['echo', 'pulled without it'], registryAuth: { username: 'u', password: 'p' } });
  assert.equal(authRes.status, 202, JSON.stringify(authRes.body));
  const newerAuth = authRes.body.id;
  const redis = new Redis(e2e.stack.env.SBX_REDIS_URL!);
  try {
    const key = new RedisKeys().jobState(newer);
    const spec = JSON.parse((await redis.hget(key, 'spec'))!) as { limits: Record<string, unknown> };
    await redis.hset(key, 'spec', JSON.stringify({ ...spec, sidecars: [{ image: 'redis' }], limits: { ...spec.limits, gpus: 1 } }));
    const box = new SecretBox(parseSecretsKey(e2e.stack.env.SBX_SECRETS_KEY!));
    // As core/src/secrets/registry-auth.ts seals it (bound to the job), with one more field.
    await redis.hset(new RedisKeys().jobState(newerAuth), 'auth', box.seal(JSON.stringify({ username: 'u', password: 'p', identityToken: 't' }), `sbx registryAuth ${newerAuth}`));
  } finally {
    redis.disconnect();
  }
  await e2e.stack.startWorker();

  const refused = await e2e.api.waitFinished(newer);
  assert.equal(refused.status, 'error', JSON.stringify(refused));
  assert.equal(refused.error?.code, 'worker_outdated');
  assert.match(refused.error!.message, /^this job asks for limits\.gpus, sidecars, which worker e2e-\S+ does not know \(a newer version of sbx accepted it\); nothing of it ran/);
  assert.equal(refused.timings.startedAt ?? null, null, 'its command never started');
  assert.equal(refused.output?.stdout ?? '', '');

  const refusedAuth = await e2e.api.waitFinished(newerAuth);
  assert.equal(refusedAuth.status, 'error', JSON.stringify(refusedAuth));
  assert.equal(refusedAuth.error?.code, 'worker_outdated');
  assert.match(refusedAuth.error!.message, /^this job asks for registryAuth\.identityToken, which worker e2e-\S+ does not know/);
  assert.equal(refusedAuth.imageDigest, null, 'its image was not pulled');
  const warned = e2e.stack.workers[0]!.log().split('\n').filter((l) => l.includes('"worker_outdated"')).map((l) => JSON.parse(l) as { level: number; jobId: string });
  assert.deepEqual(warned.map((l) => [l.level, l.jobId]).sort(), [[40, newer], [40, newerAuth]].sort(), 'the worker warns its operator of each (SBX_LOG_LEVEL=warn here)');

  const ran = await e2e.api.waitFinished(current);
  assert.equal(ran.status, 'succeeded', JSON.stringify(ran));
  assert.equal(ran.output?.stdout, 'ran\n');
});

test('a cancel through an API copy that does not know the job\'s stopSignal (a newer copy accepted it): 202, and the worker stops it with that signal', { timeout: 60_000 }, async () => {
  if (e2e.stack.workers.length === 0) await e2e.stack.startWorker();
  const script = 'trap "echo stopping; exit 2" USR1; echo started; while :; do sleep 0.05; done';
  const sub = await e2e.api.submit({ image: e2e.stack.images.busybox, command: ['sh', '-c', script], stopSignal: 'SIGUSR1' });
  assert.equal(sub.status, 202, JSON.stringify(sub.body));
  await e2e.api.events(sub.body.id, { until: (e) => e.event === 'stdout' });
  // What this API copy reads of the job (its worker read the request as it claimed it: SIGUSR1).
  const redis = new Redis(e2e.stack.env.SBX_REDIS_URL!);
  try {
    const key = new RedisKeys().jobState(sub.body.id);
    const spec = JSON.parse((await redis.hget(key, 'spec'))!) as Record<string, unknown>;
    await redis.hset(key, 'spec', JSON.stringify({ ...spec, stopSignal: 'SIGWINCH' }));
  } finally {
    redis.disconnect();
  }
  const del = await e2e.api.request('DELETE', `/v1/jobs/${sub.body.id}?graceMs=10000`);
  assert.equal(del.status, 202, JSON.stringify(del.body));
  const done = await e2e.api.waitFinished(sub.body.id);
  assert.equal(done.status, 'cancelled');
  assert.equal(done.exitCode, 2, 'its own exit, from the trap of its stopSignal');
  assert.equal(done.output?.stdout, 'started\nstopping\n');
});
