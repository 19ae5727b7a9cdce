/**
 * sendTogether: commands issued together leave in one socket write (issue 13: each write is a
 * syscall plus, on loopback, the TCP receive path in our CPU time), in order, each with its reply.
 * Real redis-server; the socket's flushes are counted where Node hands them to the kernel.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startRedis, type RunningRedis } from '../../test/harness/redis.ts';
import type { RedisClient } from './redis.ts';
import { sendTogether, sendTogetherThisTurn } from './redis-together.ts';

let server: RunningRedis;
let redis: RedisClient;

before(async () => {
  server = await startRedis();
  redis = server.client();
  await redis.ping();
});
after(async () => {
  redis?.disconnect();
  await server?.stop();
});

/** How many times the connection's socket hands data to the kernel while `work` runs. */
async function flushes(work: () => Promise<unknown>): Promise<number> {
  const stream = (redis as unknown as { stream: { _write: Function; _writev: Function } }).stream;
  const { _write, _writev } = stream;
  let n = 0;
  stream._write = function (...a: unknown[]) { n++; return _write.apply(this, a); };
  stream._writev = function (...a: unknown[]) { n++; return _writev.apply(this, a); };
  try {
    await work();
  } finally {
    stream._write = _write;
    stream._writev = _writev;
  }
  return n;
}

test('three commands sent together: one socket write, replies in order', async () => {
  let replies: unknown[] = [];
  const n = await flushes(async () => {
    replies = await Promise.all(sendTogether(redis, () => [redis.set('k1', 'a'), redis.incr('n1'), redis.get('k1')]));
  });
  assert.deepEqual(replies, ['OK', 1, 'a']);
  assert.equal(n, 1, `socket writes for three commands sent together: ${n}`);
});

test('without it, each command is a write of its own (what sendTogether saves)', async () => {
  const n = await flushes(() => Promise.all([redis.set('k2', 'a'), redis.incr('n2'), redis.get('k2')]));
  assert.ok(n >= 2, `socket writes: ${n}`);
});

test('an error thrown while issuing still uncorks the socket: later commands go out', async () => {
  assert.throws(() => sendTogether(redis, () => {
    void redis.set('k3', 'x');
    throw new Error('boom');
  }), /boom/);
  assert.equal(await redis.get('k3'), 'x');
});

/** Issues `cmd` after a few awaits of settled promises, as an async library wrapper does (BullMQ's Queue.add). */
async function afterMicrotasks<T>(cmd: () => Promise<T>): Promise<T> {
  for (let i = 0; i < 5; i++) await Promise.resolve();
  return cmd();
}

test('sendTogetherThisTurn: a command issued microtasks later still leaves in the same write, after the others', async () => {
  let replies: unknown[] = [];
  const n = await flushes(async () => {
    replies = await sendTogetherThisTurn(redis, () => Promise.all([redis.set('k4', 'a'), redis.incr('n4'), afterMicrotasks(() => redis.get('k4'))]));
  });
  assert.deepEqual(replies, ['OK', 1, 'a']);
  assert.equal(n, 1, `socket writes: ${n}`);
});

test('sendTogether (control): the command issued microtasks later is a write of its own', async () => {
  const n = await flushes(() => Promise.all(sendTogether(redis, () => [redis.set('k5', 'a'), redis.incr('n5'), afterMicrotasks(() => redis.get('k5'))])));
  assert.equal(n, 2, `socket writes: ${n}`);
});

test('sendTogetherThisTurn: a command issued after I/O is not held back', async () => {
  const replies = await sendTogetherThisTurn(redis, async () => {
    await redis.set('k6', 'b'); // a round trip: the socket was uncorked meanwhile, or this would never resolve
    return redis.get('k6');
  });
  assert.equal(replies, 'b');
});
