/**
 * The same job path against the other Redis deployments: a three-master Redis Cluster (every key
 * of one job shares a hash tag, the BullMQ queue lives under `{sbx}`, nothing sends a multi-slot
 * command) and a master found through Sentinel.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { SbxClient } from '../harness/api-client.ts';
import { waitUntil } from '../harness/redis.ts';
import { startStack, type Stack } from '../harness/stack.ts';

let stack: Stack;
let api: SbxClient;

for (const mode of ['redisCluster', 'redisSentinel'] as const) {
describe(mode, () => {
before(async () => {
  stack = await startStack({ [mode]: true, workers: 2 });
  api = new SbxClient(stack.apiUrl);
});
after(async () => {
  await stack?.stop();
});

test('jobs run, stream, list, cancel and report workers', async () => {
  const subs = await Promise.all(Array.from({ length: 6 }, (_, i) => api.submit({ image: stack.images.busybox, command: ['echo', `c${i}`] })));
  for (const [i, s] of subs.entries()) {
    const events = await api.events(s.body.id);
    assert.equal(events.filter((e) => e.event === 'stdout').map((e) => JSON.parse(e.data).data).join(''), `c${i}\n`);
    assert.equal(JSON.parse(events.at(-1)!.data).status, 'succeeded');
  }
  const waited = await api.submit({ image: stack.images.busybox, command: ['sh', '-c', 'echo out; exit 4'] }, { wait: true });
  assert.equal(waited.status, 200);
  assert.equal(waited.body.exitCode, 4);
  assert.equal(waited.body.output!.stdout, 'out\n');

  const list = await api.request<{ items: Array<{ id: string }> }>('GET', '/v1/jobs?limit=100');
  assert.ok(subs.every((s) => list.body.items.some((j) => j.id === s.body.id)));
  const workers = await api.request<{ items: unknown[] }>('GET', '/v1/workers');
  assert.equal(workers.body.items.length, 2);
  const images = await api.request<{ items: Array<{ image: string }> }>('GET', '/v1/images');
  assert.equal(images.status, 200);

  const long = await api.submit({ image: stack.images.busybox, command: ['sh', '-c', 'echo go; sleep 30'] });
  await api.events(long.body.id, { until: (e) => e.event === 'stdout' });
  assert.equal((await api.request('DELETE', `/v1/jobs/${long.body.id}`)).status, 202);
  assert.equal((await api.waitFinished(long.body.id)).status, 'cancelled');
});

test('each worker said at start that this Redis fails over slower than its heartbeat limit (Redis\'s defaults against the stack\'s 500 ms heartbeats)', async () => {
  const setting = mode === 'redisCluster' ? 'cluster-node-timeout 15000 ms' : 'down-after-milliseconds 30000 ms';
  const said = new RegExp(`Redis notices a failed master after ${setting}.*SBX_HEARTBEAT_MS 500 × 5 = 2500 ms\\), so a hard failover kills every running job`);
  await waitUntil(async () => stack.workers.every((w) => said.test(w.log())), 10_000, 'each worker to say so').catch(() => {});
  for (const w of stack.workers) assert.match(w.log(), said);
});
});
}
