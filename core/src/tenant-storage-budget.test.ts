/**
 * A tenant's storage budget as a worker holds it (P49): what a charge's answer says is left, shared by
 * the tenant's jobs in the process, so a job whose tenant has room appends its first output beside
 * its charge instead of a round trip after it; and a charge whose answer was lost, sent again, is
 * charged once. Against a real redis-server, through a proxy that can lose an answer.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { useReplyLosingRedis } from '../../test/harness/reply-losing-proxy.ts';
import { RedisKeys } from './redis-keys.ts';
import { TenantStorageBudget, TenantStorageBudgets } from './tenant-storage-budget.ts';

// As a worker's connection (core/src/redis.ts): waits out an outage; a command not answered is sent again on reconnecting.
const redis = useReplyLosingRedis({ maxRetriesPerRequest: null });
const keys = new RedisKeys('budget-test');

describe('TenantStorageBudget.room()', () => {
  test('unknown (0) until a charge is answered, then the budget less the hour\'s total', async () => {
    const budget = new TenantStorageBudget(redis.direct, keys, 'room-a', 1000);
    assert.equal(budget.room(), 0);
    assert.deepEqual(await budget.charge(100), { granted: 100, used: 100 });
    assert.equal(budget.room(), 900);
  });

  test('a charge on its way counts against the room until its answer', async () => {
    const budget = new TenantStorageBudget(redis.direct, keys, 'room-b', 1000);
    await budget.charge(100);
    const pending = budget.charge(300);
    assert.equal(budget.room(), 600, 'the 300 asked for are not room any more');
    await pending;
    assert.equal(budget.room(), 600);
  });

  test('what other processes charged shows at the next answer; never overdrawn', async () => {
    const here = new TenantStorageBudget(redis.direct, keys, 'room-c', 1000);
    const elsewhere = new TenantStorageBudget(redis.direct, keys, 'room-c', 1000);
    await here.charge(100);
    await elsewhere.charge(700);
    assert.equal(here.room(), 900, 'stale until its own next charge');
    await here.charge(100);
    assert.equal(here.room(), 100);
    assert.deepEqual(await here.charge(500), { granted: 100, used: 1000 }, 'never overdrawn');
    assert.equal(here.room(), 0);
  });

  test('the room is for the hour it was seen in: 0 in the next one', async () => {
    const budget = new TenantStorageBudget(redis.direct, keys, 'room-d', 1000);
    const now = Date.now();
    await budget.charge(10, now);
    assert.equal(budget.room(now), 990);
    assert.equal(budget.room(now + 3_600_000), 0);
  });
});

describe('TenantStorageBudgets', () => {
  test('one budget per tenant and budget size; a new one past `most` tenants starts unknown', async () => {
    const budgets = new TenantStorageBudgets(redis.direct, keys, 2);
    const a = budgets.for('alpha', 1000);
    assert.equal(budgets.for('alpha', 1000), a, 'the same object for the tenant\'s next job');
    assert.notEqual(budgets.for('alpha', 2000), a, 'a changed quota is a budget of its own');
    await a.charge(10);
    assert.equal(budgets.for('alpha', 1000).room(), 990);
    budgets.for('beta', 1000); // the third: the map starts over
    assert.equal(budgets.for('alpha', 1000).room(), 0, 'forgotten: its next job charges first');
  });
});

describe('a charge Redis applied but whose answer was lost (ioredis sends it again after reconnecting)', () => {
  const hour = () => Math.floor(Date.now() / 3_600_000);
  const counted = async (tenant: string) => Number(await redis.direct.get(keys.tenantStored(tenant, hour())));

  /** charge(bytes) with its first answer lost; what the second sending answered. */
  async function chargeLosingAnswer(budget: TenantStorageBudget, bytes: number) {
    const lost = redis.proxy.loseReplyTo(`{tenant:${budget.tenant}}:stored:`);
    const lostBefore = redis.proxy.lost;
    const answer = await budget.charge(bytes);
    await lost;
    assert.equal(redis.proxy.lost, lostBefore + 1, 'the charge\'s first answer was lost');
    return answer;
  }

  test('is charged once, and answers what the first sending got', async () => {
    const budget = new TenantStorageBudget(redis.viaProxy, keys, 'replay-a', 1000);
    await budget.charge(100); // the script is loaded: the lost answer below is the charge's, not NOSCRIPT's
    assert.deepEqual(await chargeLosingAnswer(budget, 200), { granted: 200, used: 300 });
    assert.equal(await counted('replay-a'), 300, 'the 200 bytes counted once');
    assert.deepEqual(await budget.charge(50), { granted: 50, used: 350 }, 'the next charge goes on from there');
  });

  test('the charge that used the budget up answers the part it was granted; one after it, nothing', async () => {
    const budget = new TenantStorageBudget(redis.viaProxy, keys, 'replay-b', 1000);
    const elsewhere = new TenantStorageBudget(redis.direct, keys, 'replay-b', 1000);
    await budget.charge(100);
    await elsewhere.charge(850);
    // 50 bytes were left: the first sending was granted them, and its job stores those 50 (redis-sink.ts).
    assert.deepEqual(await chargeLosingAnswer(budget, 100), { granted: 50, used: 1000 });
    assert.deepEqual(await chargeLosingAnswer(budget, 100), { granted: 0, used: 1000 });
    assert.equal(await counted('replay-b'), 1000, 'never overdrawn');
  });
});
