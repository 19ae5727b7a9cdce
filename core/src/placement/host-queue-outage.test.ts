/**
 * A host's queue object (host-queues.ts) first used while Redis cannot serve it: the hand-off fails
 * then (the API answers 503), and once Redis serves again, hand-offs to that host work again.
 * BullMQ sets a Queue object up once (it waits for the connection, then asks INFO for Redis's
 * version) and keeps the outcome: a setup that failed made every later call on that object fail with
 * the same error, for as long as the object was kept. The API makes one on a host's first hand-off
 * (and again after it was idle a minute), on its connection that fails fast while Redis is down: in
 * a Sentinel failover whose master was SIGKILLed, the INFO of an object made as the master died
 * failed (MaxRetriesPerRequestError), and every submission placed on that host was answered 503
 * long after the new master served (test/e2e/chaos-sentinel-kill.test.ts, 1 run in 5). Here the
 * INFO is refused by an ACL for the moment, which fails the setup the same way, every time.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Env } from '../config.ts';
import { connectRedis, type RedisClient } from '../redis.ts';
import { hostQueueName, RedisKeys } from '../redis-keys.ts';
import { startRedis, type RunningRedis } from '../../../test/harness/redis.ts';
import { HostQueues } from './host-queues.ts';

const keys = new RedisKeys('hqo');
let server: RunningRedis;
let admin: Redis;
let apiQueue: RedisClient;
let queues: HostQueues;

before(async () => {
  server = await startRedis();
  admin = server.client();
  // As the API's queue connection (api/src/main.ts): fails fast while Redis cannot serve.
  apiQueue = connectRedis({ SBX_REDIS_URL: server.url, SBX_HEARTBEAT_MS: 500 } as Env, 'host-queue-outage-test');
  apiQueue.on('error', () => {});
  queues = new HostQueues(apiQueue, apiQueue, keys, 60_000);
  await apiQueue.ping();
});
after(async () => {
  await admin?.call('ACL', 'SETUSER', 'default', '+info');
  await queues?.close();
  apiQueue?.disconnect();
  await server?.stop();
});

test('a host queue whose setup failed (Redis could not serve then) takes hand-offs again once Redis serves', async () => {
  await admin.call('ACL', 'SETUSER', 'default', '-info');
  await assert.rejects(queues.handOff('w1', { id: 'j_1' }, 1), /NOPERM/, 'a hand-off while Redis refuses the setup fails');
  await admin.call('ACL', 'SETUSER', 'default', '+info');
  // Before: every hand-off to w1 failed with the setup's NOPERM, for good.
  await queues.handOff('w1', { id: 'j_2' }, 1);
  const host = new Queue(hostQueueName('w1'), { connection: admin, prefix: keys.queuePrefix() });
  try {
    assert.ok(await host.getJob('j_2'), 'on w1\'s queue');
  } finally {
    await host.close();
  }
});
