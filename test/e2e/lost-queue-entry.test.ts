/**
 * A job answered 202 whose queue entry is lost (whatever lost it: a Redis that kept the record and not
 * the entry, a bug) still runs: a worker's queue audit (worker/src/queue-audit.ts) queues it again once
 * it has been queued on no queue past the grace. Here the entry is removed by hand before any worker
 * exists; the audit runs every 500 ms with a 1 s grace.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { SbxClient } from '../harness/api-client.ts';
import { startStack, type Stack } from '../harness/stack.ts';
import { QUEUE_NAME, RedisKeys } from '../../core/src/redis-keys.ts';

let stack: Stack;
let api: SbxClient;

before(async () => {
  stack = await startStack({ workers: 0, env: { SBX_QUEUE_AUDIT_MS: '500', SBX_QUEUE_AUDIT_GRACE_MS: '1000' } });
  api = new SbxClient(stack.apiUrl);
});
after(async () => {
  await stack?.stop();
});

test('a job whose queue entry was lost after its 202 is queued again by the audit and runs', { timeout: 60_000 }, async (t) => {
  const res = await api.submit({ image: stack.images.busybox, command: ['echo', 'ran after all'] });
  assert.equal(res.status, 202);
  const id = res.body.id;
  const connection = new Redis(stack.env.SBX_REDIS_URL!, { maxRetriesPerRequest: null });
  const shared = new Queue(QUEUE_NAME, { connection, prefix: new RedisKeys().queuePrefix() });
  try {
    assert.equal(await shared.remove(id), 1, 'its entry removed: nothing is left to run it');
    assert.equal(await shared.getJob(id), undefined);
  } finally {
    await shared.close();
    connection.disconnect();
  }
  await stack.startWorker();
  const done = await api.waitFinished(id, 30_000);
  t.diagnostic(`${done.status} after ${Date.parse(done.timings.finishedAt!) - Date.parse(done.timings.createdAt)} ms`);
  assert.equal(done.status, 'succeeded', 'before the audit it stayed queued');
  const out = await api.get(id, true);
  assert.match(JSON.stringify(out.body), /ran after all/);
});
