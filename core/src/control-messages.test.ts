/** The control channel: what the API publishes is exactly what a worker accepts, through real Redis pub/sub. */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startRedis, type RunningRedis } from '../../test/harness/redis.ts';
import { ControlMessage, listenForControl, publishControl } from './control-messages.ts';
import { createLogger } from './logger.ts';
import { RedisKeys } from './redis-keys.ts';

let redis: RunningRedis;
before(async () => {
  redis = await startRedis();
});
after(async () => {
  await redis?.stop();
});

test('published messages reach a listener intact; malformed ones are dropped, never handled', async () => {
  const keys = new RedisKeys('sbx');
  const pub = redis.client();
  const sub = redis.client();
  const got: ControlMessage[] = [];
  await listenForControl(sub, keys, createLogger('test', 'silent'), (m) => got.push(m));
  const sent: ControlMessage[] = [
    { type: 'cancel', id: 'j_01HZX0000000000000000000AB' },
    { type: 'pull', image: '127.0.0.1:5000/demo/busybox:latest' },
    { type: 'evict', digest: `sha256:${'a'.repeat(64)}` },
  ];
  for (const m of sent) await publishControl(pub, keys, m);
  for (const raw of ['not json', '{"type":"evict","digest":"sha256:xyz"}', '{"type":"reboot"}', '{"type":"cancel","id":"j_01HZX0000000000000000000AB","extra":1}']) {
    await pub.publish(keys.control(), raw);
  }
  await publishControl(pub, keys, { type: 'cancel', id: 'j_01HZX0000000000000000000CD' }); // a marker: all before it arrived
  const deadline = Date.now() + 5000;
  while (got.length < 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(got, [...sent, { type: 'cancel', id: 'j_01HZX0000000000000000000CD' }]);
});

test('the API side cannot publish what workers would drop', async () => {
  const keys = new RedisKeys('sbx');
  await assert.rejects(publishControl(redis.client(), keys, { type: 'evict', digest: 'sha256:short' }), /digest/i);
});
