/**
 * The worker's reader of an interactive job's stdin stream, against a real redis-server: frames it
 * cannot read (a type an API copy of a newer version writes, a malformed payload) are reported, not
 * dropped without a word, and the frames around them still reach the job in order.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { useRedis } from '../../test/harness/use-redis.ts';
import { RedisKeys } from './redis-keys.ts';
import { StdinReader, type StdinFrame, type UnreadFrame } from './stdin-stream.ts';

const redis = useRedis();
const keys = new RedisKeys('stdinread');

test('a frame the worker cannot read is reported with its type and size, deleted, and the frames around it are applied in order', async () => {
  const id = 'j_01M95STDINUNREAD000000001';
  const stream = keys.jobStdin(id);
  await redis.client.xadd(stream, '*', 't', 'd', 'p', 'ls\n');
  await redis.client.xadd(stream, '*', 't', 'x', 'p', 'clipboard-bytes'); // a type of a newer version
  await redis.client.xadd(stream, '*', 't', 'r', 'p', 'tall'); // a resize that is not <rows>x<cols>
  await redis.client.xadd(stream, '*', 't', 'd', 'p', 'exit\n');
  const applied: StdinFrame[] = [];
  const unread: UnreadFrame[] = [];
  const reader = new StdinReader(redis.client, keys, id);
  let done = () => {};
  const allIn = new Promise<void>((resolve) => (done = resolve));
  const running = reader.run(async (f) => {
    applied.push(f);
    if (applied.length === 2) done();
  }, (f) => unread.push(f));
  await allIn;
  await reader.stop();
  await running;
  assert.deepEqual(applied.map((f) => (f.type === 'data' ? f.data.toString() : f.type)), ['ls\n', 'exit\n']);
  assert.deepEqual(unread, [{ type: 'x', bytes: 15 }, { type: 'r', bytes: 4 }], 'before: dropped, and nobody told');
  assert.equal(await redis.client.exists(stream), 0, 'the stream is gone with the reader');
});
