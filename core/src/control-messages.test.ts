/** The control channel: what the API publishes is exactly what a worker accepts, through real Redis pub/sub. */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
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

test('a message a newer version sent (a type, field or value this one lacks) is dropped and logged naming what is unknown, apart from a malformed one', async () => {
  const keys = new RedisKeys('sbx');
  const pub = redis.client();
  const logged: Array<{ msg: string; unknown?: string[] }> = [];
  const logger = createLogger('test', 'warn', new Writable({ write: (line, _enc, done) => void (logged.push(JSON.parse(String(line))), done()) }));
  const got: ControlMessage[] = [];
  await listenForControl(redis.client(), keys, logger, (m) => got.push(m));
  const id = 'j_01HZX0000000000000000000AB';
  for (const m of [
    { type: 'drain', worker: 'w1' },
    { type: 'cancel', id, reason: 'user' },
    { type: 'cancel', id, stop: { graceMs: 1000, signal: 'SIGWINCH', killTree: true } },
    { type: 'evict', digest: 'sha256:xyz' },
  ]) await pub.publish(keys.control(), JSON.stringify(m));
  await publishControl(pub, keys, { type: 'cancel', id }); // a marker: all before it arrived
  const deadline = Date.now() + 5000;
  while (got.length < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(got, [{ type: 'cancel', id }]);
  const newer = 'ignoring a control message this worker does not know (a newer version of sbx sent it: upgrade the workers before the API copies)';
  assert.deepEqual(logged.map((l) => [l.msg, l.unknown]), [
    [newer, ['type "drain"']],
    [newer, ['reason']],
    [newer, ['stop.signal "SIGWINCH"', 'stop.killTree']],
    ['ignoring malformed control message', undefined],
  ]);
});
