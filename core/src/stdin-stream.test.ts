/**
 * An interactive job's stdin stream against a real redis-server, when Redis applies an append and
 * its answer is lost (Redis killed before answering, the link dropped): ioredis sends the append
 * again after reconnecting, and the frame must reach the job once, in its place.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { useReplyLosingRedis } from '../../test/harness/reply-losing-proxy.ts';
import { RedisKeys } from './redis-keys.ts';
import { NumberedWriter } from './numbered-writer.ts';
import { StdinWriter } from './stdin-stream.ts';

// As the API's connection (core/src/redis.ts): a command not answered is sent again on reconnecting.
const redis = useReplyLosingRedis({ maxRetriesPerRequest: 2 });
const keys = new RedisKeys('stdin');

async function frames(id: string): Promise<string[]> {
  return (await redis.direct.xrange(keys.jobStdin(id), '-', '+')).map(([, f]) => `${f[1]}:${f[3]}`);
}

test('a frame Redis appended but whose answer was lost reaches the job once when ioredis sends it again', async () => {
  const id = 'j_01M95STDINREPLAY0000000001';
  await redis.direct.hset(keys.jobState(id), 'status', 'running');
  const writer = new StdinWriter(redis.viaProxy, keys);
  const client = new NumberedWriter();
  await writer.append(id, { type: 'data', data: Buffer.from('ls\n') }, undefined, client); // the script loaded: one EVALSHA from now on
  const lost = redis.proxy.loseReplyTo('evalsha', keys.jobStdin(id));
  await writer.append(id, { type: 'signal', signal: 'SIGINT' }, undefined, client);
  await lost;
  assert.equal(redis.proxy.lost, 1, 'the append\'s answer was lost');
  await writer.append(id, { type: 'data', data: Buffer.from('exit\n') }, undefined, client);
  assert.deepEqual(await frames(id), ['d:ls\n', 's:SIGINT', 'd:exit\n'], 'each frame once, in order: before, SIGINT reached the job twice');
  // Another client's frames are its own: numbered from 1 again, not taken for replays.
  await writer.append(id, { type: 'data', data: Buffer.from('whoami\n') }, undefined, new NumberedWriter());
  assert.deepEqual((await frames(id)).at(-1), 'd:whoami\n');
});
