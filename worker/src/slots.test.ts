import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SlotPool } from './slots.ts';

test('slots go to waiting callers in the order they asked', async () => {
  const pool = new SlotPool(1);
  const first = await pool.take();
  const order: string[] = [];
  const b = pool.take().then((s) => (order.push('b'), s));
  const c = pool.take().then((s) => (order.push('c'), s));
  assert.equal(pool.waiting, 2);
  pool.give(first);
  const slotB = await b;
  assert.equal(slotB, first);
  pool.give(slotB);
  await c;
  assert.deepEqual(order, ['b', 'c']);
  assert.equal(pool.available, 0);
});

test('a caller whose signal aborts leaves the queue; the slot goes to the next one', async () => {
  const pool = new SlotPool(1);
  const held = await pool.take();
  const cancel = new AbortController();
  const cancelled = pool.take(cancel.signal);
  const next = pool.take();
  cancel.abort(new Error('cancelled while waiting for a slot'));
  await assert.rejects(cancelled, /cancelled while waiting/);
  assert.equal(pool.waiting, 1);
  pool.give(held);
  assert.equal(await next, held);
  pool.give(held);
  assert.equal(pool.available, 1);
});

test('a waiting caller with a lower priority value goes first; equal ones in the order they asked', async () => {
  const pool = new SlotPool(1);
  const slot = await pool.take();
  const order: string[] = [];
  for (const [name, priority] of [['a5', 5], ['a6', 6], ['b1', 1], ['a7', 7], ['c1', 1]] as const) {
    void pool.take(undefined, priority).then(() => order.push(name));
  }
  for (let i = 0; i < 5; i++) {
    pool.give(slot); // straight to the next waiter, who "runs" and gives it back in the next round
    await new Promise((r) => setImmediate(r));
  }
  assert.deepEqual(order, ['b1', 'c1', 'a5', 'a6', 'a7']);
});

test('a free slot last used with the same image is taken first (its pooled setups are made for it)', async () => {
  const pool = new SlotPool(3);
  const a = await pool.take(undefined, 0, 'sha256:a');
  const b = await pool.take(undefined, 0, 'sha256:b');
  const c = await pool.take(undefined, 0, 'sha256:c');
  pool.give(a);
  pool.give(b);
  pool.give(c); // the most recently given back is c
  assert.equal(await pool.take(undefined, 0, 'sha256:a'), a);
  assert.equal(await pool.take(undefined, 0, 'sha256:x'), c, 'no match: the most recently given back');
  assert.equal(await pool.take(undefined, 0, 'sha256:b'), b);
});
