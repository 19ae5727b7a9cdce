/**
 * Webhooks of jobs no worker finished (issue 11 item 4, "whoever finished it"): a queued job
 * cancelled through the API and a job whose worker vanished (ended worker_lost when the API reads
 * it) are POSTed too, by the webhook worker, to a real receiver; submission checks (a secret must
 * exist for the tenant, http:// only to allow-listed hosts, no credentials in the URL) and the
 * OpenAPI description. Real Redis, real BullMQ queues, the API in-process.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { loadConfig } from '../../../core/src/config.ts';
import type { JobDocument } from '../../../core/src/job-spec.ts';
import { createLogger } from '../../../core/src/logger.ts';
import { connectRedis } from '../../../core/src/redis.ts';
import { verifySignature } from '../../../core/src/webhooks/webhook-signature.ts';
import { createTestApp } from '../../../test/harness/api-app.ts';
import { startRedis, waitUntil, type RunningRedis } from '../../../test/harness/redis.ts';
import { startWebhookReceiver, type WebhookReceiver } from '../../../test/harness/webhook-receiver.ts';
import { startWebhookWorker } from './webhook-delivery.ts';
import { nextAttemptDelay } from './backoff.ts';
import { finishJob } from '../../../core/src/job-lifecycle.ts';
import { WebhookQueue } from '../../../core/src/webhooks/webhook-queue.ts';
import { JobAttempts } from '../../../core/src/job-attempts.ts';

const SECRET_A = 'tenant-a-secret-0123456789abcdef';
const SECRET_ALL = 'fallback-secret-0123456789abcdef';
const KEY_A = 'key-of-tenant-a-0123456789';
const KEY_B = 'key-of-tenant-b-0123456789';
const KEY_C = 'key-of-tenant-c-0123456789';

let redis: RunningRedis;
let receiver: WebhookReceiver;
let t: ReturnType<typeof createTestApp>;
let webhooks: ReturnType<typeof startWebhookWorker>;
let bull: ReturnType<typeof connectRedis>;

before(async () => {
  redis = await startRedis();
  receiver = await startWebhookReceiver();
  const env = {
    SBX_API_KEYS: JSON.stringify([
      { key: KEY_A, tenant: 'team-a', webhookSecret: SECRET_A },
      { key: KEY_B, tenant: 'team-b' },
      { key: KEY_C, tenant: 'team-c' },
    ]),
    SBX_WEBHOOK_SECRETS: `team-b:${SECRET_ALL}`,
    SBX_EGRESS_ALLOW: `127.0.0.1:${receiver.port}`,
    SBX_WEBHOOK_BACKOFF_MS: '50',
  };
  t = createTestApp(redis, env);
  const config = loadConfig({ SBX_REDIS_URL: redis.url, ...env });
  bull = connectRedis(config.env, 'webhooks-test', { forBullMQ: true });
  webhooks = startWebhookWorker({ connection: bull, keys: t.deps.keys, store: t.deps.store, env: config.env, logger: createLogger('webhooks-test', 'silent') });
});
after(async () => {
  await webhooks?.close();
  bull?.disconnect();
  await t?.close();
  await receiver?.stop();
  await redis?.stop();
});

const IMAGE = '127.0.0.1:5000/test/busybox:latest';
async function call(key: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: JobDocument & { error?: { code: string; message: string } } }> {
  const res = await t.app.request(path, { method, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, ...(body ? { body: JSON.stringify(body) } : {}) });
  return { status: res.status, body: (await res.json()) as JobDocument & { error?: { code: string; message: string } } };
}

async function delivered(key: string, id: string): Promise<JobDocument> {
  let doc: JobDocument | null = null;
  await waitUntil(async () => {
    doc = (await call(key, 'GET', `/v1/jobs/${id}`)).body;
    return doc.callback?.delivered === true;
  }, 15_000, `the webhook of ${id}`);
  return doc!;
}

describe('webhooks of jobs finished by the API', () => {
  test('a queued job cancelled through the API is POSTed, signed with its tenant\'s secret', async () => {
    const sub = await call(KEY_A, 'POST', '/v1/jobs', { image: IMAGE, callbackUrl: receiver.url('/cancelled') });
    assert.equal(sub.status, 202, JSON.stringify(sub.body));
    assert.deepEqual(sub.body.callback, { url: receiver.url('/cancelled'), delivered: false, attempts: [], nextAttemptAt: null });
    assert.equal((await call(KEY_A, 'DELETE', `/v1/jobs/${sub.body.id}`)).status, 202);
    const doc = await delivered(KEY_A, sub.body.id);
    assert.deepEqual(doc.callback!.attempts.map((a) => a.status), [200]);
    const [hit] = receiver.on('/cancelled');
    assert.equal(verifySignature(SECRET_A, hit!.headers['sbx-signature'] as string, hit!.body), null);
    assert.notEqual(verifySignature(SECRET_ALL, hit!.headers['sbx-signature'] as string, hit!.body), null, 'another tenant\'s secret does not verify');
    assert.equal((JSON.parse(hit!.body) as JobDocument).status, 'cancelled');
  });

  test('a job whose worker vanished ends worker_lost when read, and is POSTed', async () => {
    const sub = await call(KEY_B, 'POST', '/v1/jobs', { image: IMAGE, callbackUrl: receiver.url('/lost') });
    const stored = (await t.deps.store.getDoc(sub.body.id))!;
    await t.deps.queue.remove(sub.body.id);
    // A worker that took it, recorded that it starts the command (so it is never run again) and died
    // without a heartbeat: as the queue and Redis would show it.
    assert.equal(await t.deps.store.transition({ ...stored, status: 'pulling', worker: 'ghost/1' }, ['queued'], 'status'), 'ok');
    assert.equal(await new JobAttempts(t.deps.redis, t.deps.keys).markStarted(sub.body.id, 1), true);
    const read = await call(KEY_B, 'GET', `/v1/jobs/${sub.body.id}`);
    assert.equal(read.body.status, 'error');
    await delivered(KEY_B, sub.body.id);
    const [hit] = receiver.on('/lost');
    assert.equal(verifySignature(SECRET_ALL, hit!.headers['sbx-signature'] as string, hit!.body), null);
    assert.equal((JSON.parse(hit!.body) as JobDocument).error?.code, 'worker_lost');
  });

  test('submission checks: a secret for the tenant, http only to allow-listed hosts, no credentials', async () => {
    const noSecret = await call(KEY_C, 'POST', '/v1/jobs', { image: IMAGE, callbackUrl: 'https://hooks.example.com/x' });
    assert.equal(noSecret.status, 400);
    assert.match(noSecret.body.error!.message, /no webhook secret is configured for tenant team-c/);
    for (const [url, why] of [
      ['http://hooks.example.com/x', /http:\/\/ only for hosts this server allow-lists/],
      [`http://127.0.0.1:${receiver.port + 1}/x`, /allow-lists/],
      ['ftp://hooks.example.com/x', /https:\/\//],
      ['https://user:pw@hooks.example.com/x', /credentials/],
      ['not a url', /absolute URL/],
    ] as const) {
      const res = await call(KEY_A, 'POST', '/v1/jobs', { image: IMAGE, callbackUrl: url });
      assert.equal(res.status, 400, url);
      assert.match(JSON.stringify(res.body), why, url);
    }
    const ok = await call(KEY_A, 'POST', '/v1/jobs', { image: IMAGE, callbackUrl: 'https://hooks.example.com/x' });
    assert.equal(ok.status, 202);
    await call(KEY_A, 'DELETE', `/v1/jobs/${ok.body.id}`);
  });

  test('/openapi.json describes callbackUrl, the callback state and queuePosition', async () => {
    const doc = (await (await t.app.request('/openapi.json')).json()) as { components: { schemas: Record<string, { properties: Record<string, { description?: string }> }> } };
    assert.match(doc.components.schemas.JobRequest!.properties.callbackUrl!.description ?? '', /sbx-signature/);
    assert.ok(doc.components.schemas.JobDocument!.properties.callback);
    assert.ok(doc.components.schemas.JobDocument!.properties.queuePosition);
  });
});

test('backoff doubles from the base up to the maximum, and stops past the retry window', () => {
  const policy = { baseMs: 100, maxMs: 1000, retryForMs: 5000 };
  const noJitter = () => 0;
  assert.deepEqual([1, 2, 3, 4, 5, 6].map((n) => nextAttemptDelay(policy, n, 0, 0, noJitter)), [100, 200, 400, 800, 1000, 1000]);
  assert.equal(nextAttemptDelay(policy, 3, 0, 4700, noJitter), null, 'the next attempt would come after the window');
  assert.equal(nextAttemptDelay(policy, 1, 0, 0, () => 0.999)! <= 110, true);
});

describe('a crash between a job\'s end and queueing its webhook', () => {
  test('the janitor\'s sweep queues the webhook the crash left behind, once', async () => {
    const sub = await call(KEY_A, 'POST', '/v1/jobs', { image: IMAGE, callbackUrl: receiver.url('/after-crash') });
    assert.equal(sub.status, 202, JSON.stringify(sub.body));
    // The finisher "dies" right after the final transition: its enqueue never reaches Redis.
    const enqueue = WebhookQueue.prototype.enqueue;
    WebhookQueue.prototype.enqueue = () => Promise.reject(new Error('the finishing process died here'));
    try {
      await assert.rejects(finishJob(t.deps.store, sub.body, 'cancelled', null), /died here/);
    } finally {
      WebhookQueue.prototype.enqueue = enqueue;
    }
    const lost = (await call(KEY_A, 'GET', `/v1/jobs/${sub.body.id}`)).body;
    assert.equal(lost.status, 'cancelled');
    assert.deepEqual(lost.callback?.attempts, [], 'nothing was queued');
    assert.equal(await t.deps.store.requeueLostWebhooks(60_000), 0, 'a recent intent is left to its finisher');
    assert.equal(await t.deps.store.requeueLostWebhooks(0), 1);
    const doc = await delivered(KEY_A, sub.body.id);
    assert.equal(doc.callback?.attempts.length, 1);
    assert.equal(receiver.on('/after-crash').length, 1);
    assert.equal(await t.deps.store.requeueLostWebhooks(0), 0, 'the intent is gone: no second delivery');
  });
});
