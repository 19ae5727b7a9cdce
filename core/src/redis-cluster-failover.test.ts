/**
 * A connection made by connectRedis() to a Redis Cluster whose master is SIGKILLed: the slot has no
 * master until the other masters have marked it failed (cluster-node-timeout, 3 s here) and its
 * replica is elected. A worker's connection (`waitWhileDown`, and BullMQ's) waits that out, as it
 * waits out a standalone Redis restart: what it writes for a job lands once the replica serves the
 * slot. Before, ioredis's Cluster gave up after 16 tries 100 ms apart ("Too many Cluster
 * redirections"), and a job's claim, its running-set entry or its end was lost mid-failover.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Env } from './config.ts';
import { connectRedis, type RedisClient } from './redis.ts';
import { startRedisCluster, type RunningRedisCluster } from '../../test/harness/redis-cluster.ts';

let cluster: RunningRedisCluster;
let env: Env;
const clients: RedisClient[] = [];

before(async () => {
  cluster = await startRedisCluster({ replicas: 1, nodeTimeoutMs: 3000 });
  env = { SBX_REDIS_URL: 'redis://127.0.0.1:6379', SBX_REDIS_CLUSTER_NODES: cluster.nodes, SBX_HEARTBEAT_MS: 2000 } as Env;
});
after(async () => {
  for (const c of clients) c.disconnect();
  await cluster?.stop();
});

function connect(purpose: string, opts: Parameters<typeof connectRedis>[2]): RedisClient {
  const c = connectRedis(env, purpose, opts);
  c.on('error', () => {});
  clients.push(c);
  return c;
}

test('a waiting Cluster connection\'s write sent while its slot\'s master is dead lands once the replica takes over; a fail-fast one fails', { timeout: 60_000 }, async () => {
  const worker = connect('worker', { waitWhileDown: true });
  const queue = connect('worker-queue', { forBullMQ: true });
  const api = connect('api', {});
  for (const c of [worker, queue, api]) await c.set('{sbx}:before', c === api ? 'api' : 'worker'); // connected, slots known
  let sentAt = 0;
  const sent: Array<Promise<PromiseSettledResult<unknown>>> = [];
  // Settled as they end (the API's fails while the failover is still awaited).
  const settled = (p: Promise<unknown>) => p.then((value) => ({ status: 'fulfilled', value }) as const, (reason: unknown) => ({ status: 'rejected', reason }) as const);
  const { to } = await cluster.failover('{sbx}', () => {
    sentAt = Date.now();
    sent.push(...[worker.set('{sbx}:during', 'worker'), queue.incr('{sbx}:during-queue'), api.set('{sbx}:during-api', 'api')].map(settled));
  });
  const promotedAfter = Date.now() - sentAt;
  const [fromWorker, fromQueue, fromApi] = await Promise.all(sent);
  assert.deepEqual(fromWorker, { status: 'fulfilled', value: 'OK' }, `the worker's write, the replica promoted ${promotedAfter} ms after the kill`);
  assert.deepEqual(fromQueue, { status: 'fulfilled', value: 1 }, 'BullMQ\'s connection\'s write');
  assert.equal(fromApi!.status, 'rejected', 'the API\'s connection fails fast (503) rather than hang through the failover');
  assert.equal(await api.get('{sbx}:during'), 'worker', `what the worker wrote, read on the new master ${to}`);
});
