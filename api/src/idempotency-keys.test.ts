/**
 * Claiming an idempotency key against a real redis-server, when Redis applies the claim and its
 * answer is lost (Redis killed before answering, the link dropped): ioredis sends the SET NX again
 * after reconnecting, which then finds the key taken, by this very submission.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { useReplyLosingRedis } from '../../test/harness/reply-losing-proxy.ts';
import { RedisKeys } from '../../core/src/redis-keys.ts';
import { JobStore } from '../../core/src/job-store.ts';
import { claimIdempotencyKey } from './idempotency-keys.ts';
import type { AppDeps } from './deps.ts';

// As the API's connection (core/src/redis.ts): a command not answered is sent again on reconnecting.
const redis = useReplyLosingRedis({ maxRetriesPerRequest: 2 });
const keys = new RedisKeys('idem');

test('a claim Redis applied but whose answer was lost is known as this submission\'s own when sent again: no wait for a takeover', async () => {
  const deps = { redis: redis.viaProxy, keys, store: new JobStore(redis.viaProxy, keys, 3600) } as unknown as AppDeps;
  const id = 'j_01M95IDEMREPLAY00000000001';
  const direct = redis.direct;
  await direct.config('RESETSTAT');
  const lost = redis.proxy.loseReplyTo('set', 'nx', id);
  assert.equal(await claimIdempotencyKey(deps, 't', 'ci-step-7', id), null, 'claimed: the submission goes on to write its job');
  await lost;
  assert.equal(redis.proxy.lost, 1, 'the claim\'s answer was lost');
  assert.equal(await direct.get(keys.idempotency('t', 'ci-step-7')), id);
  // Waiting for a holder's job to be written means looking at the claim's age (PTTL) until a takeover
  // (10 s later): before, the submission waited so for its own claim.
  assert.doesNotMatch(await direct.info('commandstats'), /cmdstat_pttl:/, 'it did not wait for its own claim to be taken over');
});
