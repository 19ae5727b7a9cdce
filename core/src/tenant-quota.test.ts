/**
 * Admitting a job against its tenant's quota (admitJob-3.lua) when Redis applies the admission and
 * its answer is lost (Redis killed before answering, the link dropped): the API's connection sends
 * the script again after reconnecting, and the job must still count once, against every limit.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { useReplyLosingRedis } from '../../test/harness/reply-losing-proxy.ts';
import type { TenantQuota } from './config.ts';
import { RedisKeys } from './redis-keys.ts';
import { TenantQuotas } from './tenant-quota.ts';
import { storageHour } from './tenant-storage-budget.ts';

// As the API's connection (core/src/redis.ts): a command not answered is sent again on reconnecting.
const redis = useReplyLosingRedis({ maxRetriesPerRequest: 2 });

const quota: TenantQuota = {
  activeJobs: 2, submitsPerSecond: 0.001, submitBurst: 2, streams: null, requests: null, requestsPerSecond: null, requestBurst: 1,
  storedBytesPerHour: 10_000, jobEgress: true, limits: {},
};

test('an admission Redis applied but whose answer was lost counts its job once when sent again', async () => {
  const keys = new RedisKeys('quota-replay');
  const quotas = new TenantQuotas(redis.viaProxy, keys, { activeTtlSeconds: 3600 });
  const first = 'j_01M95QUOTAREPLAY0000000001';
  const lost = redis.proxy.loseReplyTo(first);
  assert.deepEqual(await quotas.admit('t', first, quota, 1000), { priority: 1 }, 'admitted first in line, as the tenant\'s only job');
  await lost;
  assert.equal(redis.proxy.lost, 1, 'the admission\'s answer was lost');

  const direct = redis.direct;
  assert.equal(await direct.get(keys.tenantStored('t', storageHour().hour)), '1000', 'its record\'s bytes counted once against the storage budget');
  // Burst 2, refilled once in 1,000 s: the second submission still has its token and its place (activeJobs 2).
  const second = 'j_01M95QUOTAREPLAY0000000002';
  assert.deepEqual(await quotas.admit('t', second, quota, 1000), { priority: 2 }, 'the second job is admitted: the first took one token and one place');
  assert.deepEqual(await direct.zrange(keys.tenantActive('t'), 0, -1, 'WITHSCORES'), [first, '1', second, '2']);
});

test('a submission refused for the tenant\'s active jobs spends no submission token', async () => {
  const keys = new RedisKeys('quota-token');
  const quotas = new TenantQuotas(redis.direct, keys, { activeTtlSeconds: 3600 });
  const oneAtOnce: TenantQuota = { ...quota, activeJobs: 1 }; // burst 2, refilled once in 1,000 s
  assert.deepEqual(await quotas.admit('t', 'j_01M95QUOTATOKEN00000000001', oneAtOnce), { priority: 1 });
  await redis.direct.hset(keys.jobState('j_01M95QUOTATOKEN00000000001'), 'status', 'running'); // its record: it counts
  for (let i = 0; i < 5; i++) {
    await assert.rejects(quotas.admit('t', `j_01M95QUOTATOKEN0000000010${i}`, oneAtOnce), /has 1 jobs queued or running, its quota/);
  }
  await quotas.release('t', 'j_01M95QUOTATOKEN00000000001');
  // Its second token is still there: the five refusals took none.
  assert.deepEqual(await quotas.admit('t', 'j_01M95QUOTATOKEN00000000002', oneAtOnce), { priority: 1 });
});
