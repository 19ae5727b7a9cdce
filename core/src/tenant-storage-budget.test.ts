/**
 * A tenant's storage budget as a worker holds it (P49): what a charge's answer says is left, shared by
 * the tenant's jobs in the process, so a job whose tenant has room appends its first output beside
 * its charge instead of a round trip after it. Against a real redis-server.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { useRedis } from '../../test/harness/use-redis.ts';
import { RedisKeys } from './redis-keys.ts';
import { TenantStorageBudget, TenantStorageBudgets } from './tenant-storage-budget.ts';

const redis = useRedis();
const keys = new RedisKeys('budget-test');

describe('TenantStorageBudget.room()', () => {
  test('unknown (0) until a charge is answered, then the budget less the hour\'s total', async () => {
    const budget = new TenantStorageBudget(redis.client, keys, 'room-a', 1000);
    assert.equal(budget.room(), 0);
    assert.deepEqual(await budget.charge(100), { granted: 100, used: 100 });
    assert.equal(budget.room(), 900);
  });

  test('a charge on its way counts against the room until its answer', async () => {
    const budget = new TenantStorageBudget(redis.client, keys, 'room-b', 1000);
    await budget.charge(100);
    const pending = budget.charge(300);
    assert.equal(budget.room(), 600, 'the 300 asked for are not room any more');
    await pending;
    assert.equal(budget.room(), 600);
  });

  test('what other processes charged shows at the next answer; never overdrawn', async () => {
    const here = new TenantStorageBudget(redis.client, keys, 'room-c', 1000);
    const elsewhere = new TenantStorageBudget(redis.client, keys, 'room-c', 1000);
    await here.charge(100);
    await elsewhere.charge(700);
    assert.equal(here.room(), 900, 'stale until its own next charge');
    await here.charge(100);
    assert.equal(here.room(), 100);
    assert.deepEqual(await here.charge(500), { granted: 100, used: 1000 }, 'never overdrawn');
    assert.equal(here.room(), 0);
  });

  test('the room is for the hour it was seen in: 0 in the next one', async () => {
    const budget = new TenantStorageBudget(redis.client, keys, 'room-d', 1000);
    const now = Date.now();
    await budget.charge(10, now);
    assert.equal(budget.room(now), 990);
    assert.equal(budget.room(now + 3_600_000), 0);
  });
});

describe('TenantStorageBudgets', () => {
  test('one budget per tenant and budget size; a new one past `most` tenants starts unknown', async () => {
    const budgets = new TenantStorageBudgets(redis.client, keys, 2);
    const a = budgets.for('alpha', 1000);
    assert.equal(budgets.for('alpha', 1000), a, 'the same object for the tenant\'s next job');
    assert.notEqual(budgets.for('alpha', 2000), a, 'a changed quota is a budget of its own');
    await a.charge(10);
    assert.equal(budgets.for('alpha', 1000).room(), 990);
    budgets.for('beta', 1000); // the third: the map starts over
    assert.equal(budgets.for('alpha', 1000).room(), 0, 'forgotten: its next job charges first');
  });
});
