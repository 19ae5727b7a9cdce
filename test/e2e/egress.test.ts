/**
 * SSRF from the worker, through the API (issue 9 item 4): an image reference naming Redis, the API's
 * own port, a closed port, a name resolving to loopback or the cloud metadata address ends
 * error/egress_refused with one message whatever the port, and Redis never sees a connection
 * (before the fix it logged "Possible SECURITY ATTACK"). The stack's own registry, allow-listed
 * by the harness (SBX_EGRESS_ALLOW), still serves jobs.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { freePort } from '../harness/registry.ts';
import { startRedis, type RunningRedis } from '../harness/redis.ts';
import { useStack } from '../harness/use-stack.ts';

const e2e = useStack();
let target: RunningRedis;

before(async () => {
  target = await startRedis();
});
after(async () => {
  await target?.stop();
});

async function connectionsReceived(client: ReturnType<RunningRedis['client']>): Promise<number> {
  return Number(/total_connections_received:(\d+)/.exec(await client.info('stats'))?.[1]);
}

test('images on loopback, the API port, a closed port or 169.254.169.254 end error/egress_refused; redis sees nothing', { timeout: 180_000 }, async () => {
  const redis = target.client();
  const before = await connectionsReceived(redis);
  const apiPort = new URL(e2e.stack.apiUrl).port;
  const closed = await freePort();
  const loopback = { redis: `127.0.0.1:${target.port}/x:y`, api: `127.0.0.1:${apiPort}/x:y`, closed: `127.0.0.1:${closed}/x:y` };
  const others = { name: `localhost:${target.port}/x:y`, metadata: '169.254.169.254/latest:y' };
  const errors: Record<string, { code: string; message: string }> = {};
  for (const [what, image] of Object.entries({ ...loopback, ...others })) {
    const res = await e2e.api.submit({ image, command: ['true'] }, { wait: true });
    assert.equal(res.body.status, 'error', `${what}: ${JSON.stringify(res.body)}`);
    errors[what] = res.body.error!;
  }
  const codes = Object.fromEntries(Object.entries(errors).map(([what, e]) => [what, e.code]));
  const refusedEverywhere = Object.fromEntries(Object.keys(errors).map((what) => [what, 'egress_refused']));
  assert.deepEqual(codes, refusedEverywhere, JSON.stringify(errors, null, 2));
  const messages = new Set(Object.keys(loopback).map((what) => errors[what]!.message));
  assert.equal(messages.size, 1, `one message whatever the port: ${JSON.stringify(errors, null, 2)}`);
  assert.equal(await connectionsReceived(redis), before, 'redis-server accepted no connection from the worker');

  const ok = await e2e.api.submit({ image: e2e.stack.images.busybox, command: ['echo', 'still pulls'] }, { wait: true });
  assert.equal(ok.body.status, 'succeeded', JSON.stringify(ok.body.error));
});
