/**
 * Webhooks are fair between tenants: a tenant whose receiver never answers holds a delivery slot for
 * SBX_WEBHOOK_TIMEOUT_MS per attempt, and its backlog must not keep another tenant's webhook waiting
 * behind it (an attempt's queue priority is its tenant's count of attempts outstanding). Real
 * Redis, real BullMQ queues, the API in-process, one delivery slot.
 */
import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { loadConfig } from '../../../core/src/config.ts';
import type { JobDocument } from '../../../core/src/job-spec.ts';
import { createLogger } from '../../../core/src/logger.ts';
import { connectRedis } from '../../../core/src/redis.ts';
import { createTestApp } from '../../../test/harness/api-app.ts';
import { startRedis, waitUntil, type RunningRedis } from '../../../test/harness/redis.ts';
import { startWebhookReceiver, type WebhookReceiver } from '../../../test/harness/webhook-receiver.ts';
import { startWebhookWorker } from './webhook-delivery.ts';

const KEY_A = 'key-of-tenant-a-0123456789';
const KEY_B = 'key-of-tenant-b-0123456789';
const BACKLOG = 10;

let redis: RunningRedis;
let receiver: WebhookReceiver;
let t: ReturnType<typeof createTestApp>;
let bull: ReturnType<typeof connectRedis>;
const hanging = { server: createServer(), port: 0, requests: 0, sockets: [] as Socket[] };

before(async () => {
  redis = await startRedis();
  receiver = await startWebhookReceiver();
  // Reads each request and never answers.
  hanging.server.on('connection', (s) => {
    hanging.sockets.push(s);
    s.on('data', (d: Buffer) => { if (d.includes('POST ')) hanging.requests++; });
    s.on('error', () => {});
  });
  await new Promise<void>((r) => hanging.server.listen(0, '127.0.0.1', r));
  hanging.port = (hanging.server.address() as AddressInfo).port;
  t = createTestApp(redis, env());
  bull = connectRedis(loadConfig({ SBX_REDIS_URL: redis.url, ...env() }).env, 'webhooks-test', { forBullMQ: true });
});
after(async () => {
  bull?.disconnect();
  await t?.close();
  await receiver?.stop();
  hanging.sockets.forEach((s) => s.destroy());
  await new Promise((r) => hanging.server.close(r));
  await redis?.stop();
});

function env(): Record<string, string> {
  return {
    SBX_API_KEYS: JSON.stringify([{ key: KEY_A, tenant: 'team-a' }, { key: KEY_B, tenant: 'team-b' }]),
    SBX_WEBHOOK_SECRETS: '*:fallback-secret-0123456789abcdef',
    SBX_EGRESS_ALLOW: `127.0.0.1:${receiver.port},127.0.0.1:${hanging.port}`,
    SBX_WEBHOOK_TIMEOUT_MS: '400',
    SBX_WEBHOOK_CONCURRENCY: '1',
    SBX_WEBHOOK_BACKOFF_MS: '300000', // no retry within the test
  };
}

async function cancelledWithWebhook(key: string, url: string): Promise<string> {
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await t.app.request(path, { method, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, ...(body ? { body: JSON.stringify(body) } : {}) });
    const text = await res.text();
    assert.equal(res.status, 202, `${method} ${path}: ${text}`);
    return JSON.parse(text) as JobDocument;
  };
  const job = await call('POST', '/v1/jobs', { image: '127.0.0.1:5000/test/busybox:latest', callbackUrl: url });
  await call('DELETE', `/v1/jobs/${job.id}`); // a queued job cancelled: its webhook is queued
  return job.id;
}

test('a tenant whose receiver never answers does not keep another tenant\'s webhook behind its backlog', async () => {
  for (let i = 0; i < BACKLOG; i++) await cancelledWithWebhook(KEY_A, `http://127.0.0.1:${hanging.port}/hang/${i}`);
  const b = await cancelledWithWebhook(KEY_B, receiver.url('/b'));
  const config = loadConfig({ SBX_REDIS_URL: redis.url, ...env() });
  const webhooks = startWebhookWorker({ connection: bull, keys: t.deps.keys, store: t.deps.store, env: config.env, logger: createLogger('webhooks-test', 'silent') });
  try {
    await waitUntil(async () => receiver.on('/b').length === 1, 30_000, `team-b's webhook of ${b}`);
    const before = hanging.requests;
    process.stdout.write(`# team-b's webhook arrived after ${before} of team-a's ${BACKLOG} hanging attempts\n`);
    assert.ok(before <= 2, `team-b's webhook waited for ${before} of team-a's attempts to time out`);
    // team-a's are all attempted in their turn.
    await waitUntil(async () => hanging.requests >= BACKLOG, 30_000, 'every attempt of team-a');
  } finally {
    await webhooks.close();
  }
  // Nothing is left counted for either tenant.
  const keys = t.deps.keys;
  assert.deepEqual([await redis.client().zcard(keys.tenantWebhooks('team-a')), await redis.client().zcard(keys.tenantWebhooks('team-b'))], [BACKLOG, 0], 'team-a\'s retries are queued (and counted); team-b has none');
});
