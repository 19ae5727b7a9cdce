/** With Redis gone the API answers 503 with the error body — never a 500, a hang or a stack trace. */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startRedis, type RunningRedis } from '../../../test/harness/redis.ts';
import { createTestApp } from '../../../test/harness/api-app.ts';

let redis: RunningRedis;
let t: ReturnType<typeof createTestApp>;

before(async () => {
  redis = await startRedis();
  t = createTestApp(redis);
  assert.equal((await t.app.request('/readyz')).status, 200);
  await redis.stop();
});
after(async () => {
  await t?.close();
});

test('readyz and job routes answer 503 dependency_unavailable while Redis is down', async () => {
  const ready = await t.app.request('/readyz');
  assert.equal(ready.status, 503);
  assert.equal(((await ready.json()) as { error: { code: string } }).error.code, 'dependency_unavailable');
  const started = Date.now();
  const submit = await t.app.request('/v1/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ image: 'busybox', command: ['true'] }) });
  assert.equal(submit.status, 503);
  const body = (await submit.json()) as { error: { code: string; message: string } };
  assert.equal(body.error.code, 'dependency_unavailable');
  assert.ok(Date.now() - started < 10_000, 'answers promptly');
  const get = await t.app.request('/v1/jobs/j_00000000000000000000000000');
  assert.equal(get.status, 503);
  assert.equal((await t.app.request('/healthz')).status, 200, 'the process itself is up');
});
