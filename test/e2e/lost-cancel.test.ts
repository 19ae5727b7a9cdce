/**
 * A cancel whose control message the worker never got. DELETE marks the job in Redis and publishes
 * a message to the workers; pub/sub delivers only to subscribers connected at that moment, so a
 * worker whose subscriber was reconnecting (a network blip, a Redis restart or failover) missed it,
 * and the job ran on to `succeeded` after DELETE had answered 202 (auditor: 8 of 8 lines, exit 0).
 * The worker now reads its jobs' marks again when its subscriber is back and on every heartbeat.
 * The blip here: CLIENT KILL of the worker's subscriber connection, then DELETE at once.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Redis } from 'ioredis';
import { SbxClient } from '../../client/src/index.ts';
import { waitUntil } from '../harness/redis.ts';
import { startStack, type Stack } from '../harness/stack.ts';

let stack: Stack;
let client: SbxClient;
let redis: Redis;
before(async () => {
  stack = await startStack({ env: { SBX_HEARTBEAT_MS: '2000' } });
  client = new SbxClient(stack.apiUrl);
  redis = new Redis(stack.env.SBX_REDIS_URL!);
});
after(async () => {
  redis?.disconnect();
  await stack?.stop();
});

/** Cuts the worker's subscriber connection (it reconnects by itself). */
async function cutWorkerSubscriber(): Promise<void> {
  const list = (await redis.client('LIST')) as string;
  const line = list.split('\n').find((l) => / name=sbx-worker-sub /.test(` ${l} `));
  assert.ok(line, `the worker's subscriber in CLIENT LIST:\n${list}`);
  await redis.client('KILL', 'ID', /(?:^| )id=(\d+) /.exec(line)![1]!);
}

async function running(command: string): Promise<string> {
  const job = await client.submit({ image: stack.images.busybox, command: ['sh', '-c', command] });
  await waitUntil(async () => (await client.get(job.id)).status === 'running', 20_000, 'the job to run');
  return job.id;
}

test('DELETE while the worker\'s subscriber reconnects: the job is still killed and ends cancelled', { timeout: 60_000 }, async () => {
  const id = await running('for i in $(seq 1 20); do echo t$i; sleep 1; done');
  await cutWorkerSubscriber();
  await client.cancel(id);
  const done = await client.wait(id, { timeoutMs: 15_000, output: true });
  const lines = done.output?.stdout.split('\n').filter(Boolean).length ?? 0;
  assert.equal(done.status, 'cancelled', `ended ${done.status} with ${lines} of 20 lines`);
  assert.ok(lines < 20, `${lines} lines`);
});

test('the same with a stop (?graceMs, docker stop): the command gets its signal and grace, as told', { timeout: 60_000 }, async () => {
  const id = await running('trap "echo got TERM; exit 0" TERM; i=0; while [ $i -lt 40 ]; do i=$((i+1)); sleep 0.5; done; echo ran out');
  await cutWorkerSubscriber();
  await client.cancel(id, { graceMs: 10_000, signal: 'SIGTERM' });
  const done = await client.wait(id, { timeoutMs: 15_000, output: true });
  assert.equal(done.status, 'cancelled', JSON.stringify(done));
  assert.equal(done.output?.stdout, 'got TERM\n');
});
