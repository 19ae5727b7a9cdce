/**
 * P53's shared bucket (requestRate-2.lua) when Redis applies a process's report of a tenant's
 * requests and its answer is lost (Redis killed before answering, the link dropped): the API's
 * connection sends the report again after reconnecting, and the requests must be debited once.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { useReplyLosingRedis } from '../../test/harness/reply-losing-proxy.ts';
import type { TenantQuota } from '../../core/src/config.ts';
import type { Logger } from '../../core/src/logger.ts';
import { RedisKeys } from '../../core/src/redis-keys.ts';
import { TenantRequestRate } from './tenant-request-rate.ts';

// As the API's connection (core/src/redis.ts): a command not answered is sent again on reconnecting.
const redis = useReplyLosingRedis({ maxRetriesPerRequest: 2 });
const keys = new RedisKeys('rate-replay');
const quiet = { debug() {} } as unknown as Logger;
// One request per 10,000 s: the bucket refills by 0.0001 of a token a second, nothing the test can see.
const quota = { requestsPerSecond: 0.0001, requestBurst: 10 } as TenantQuota;

async function scriptRuns(): Promise<number> {
  const stats = await redis.direct.info('commandstats');
  return [...stats.matchAll(/cmdstat_(?:evalsha|eval):calls=(\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
}

async function until(what: string, ok: () => Promise<boolean>): Promise<void> {
  for (const end = Date.now() + 10_000; !(await ok()); ) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('a report Redis applied but whose answer was lost debits the tenant\'s requests once when sent again', async () => {
  const rate = new TenantRequestRate({ redis: redis.viaProxy, keys, logger: quiet });
  const bucket = keys.tenantRequestRate('t');
  const tokens = async () => Number(await redis.direct.hget(bucket, 'tokens'));

  rate.take('t', quota); // the first report loads the script: the lost answer below is the report's, not NOSCRIPT's
  await until('the first report', async () => (await redis.direct.exists(bucket)) === 1);
  assert.ok(Math.abs((await tokens()) - 9) < 0.01, 'one request debited');

  const runs = await scriptRuns();
  const lost = redis.proxy.loseReplyTo(bucket);
  for (let i = 0; i < 4; i++) rate.take('t', quota);
  await lost;
  assert.equal(redis.proxy.lost, 1, 'the report\'s answer was lost');
  await until('the report sent again', async () => (await scriptRuns()) >= runs + 2);
  const left = await tokens();
  assert.ok(Math.abs(left - 5) < 0.01, `the four requests debited once: ${left} tokens left of 10 (debited twice: 1)`);
});
