/**
 * Served by @hono/node-server (a real HTTP server in-process, the API app on a real redis-server),
 * POST /v1/jobs reads its body and a `?wait=true` caller's hang-up is seen from Node's request and
 * response themselves: the fetch Request (undici, with a web stream over the body) that
 * `c.req.raw.body` / `c.req.raw.signal` would build for every such request is never built (issue 13:
 * CPU per job), and the behaviour is the same: 202 with the job, a hung-up wait is let go.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { serve, type ServerType } from '@hono/node-server';
import { createTestApp, type TestApp } from '../../test/harness/api-app.ts';
import { startRedis, waitUntil, type RunningRedis } from '../../test/harness/redis.ts';

let redis: RunningRedis;
let t: TestApp;
let server: ServerType;
let port = 0;
/** Per request served: whether its fetch Request was built, once its handler finished. */
const served: Array<{ path: string; builtFetchRequest: boolean }> = [];

/** @hono/node-server's lightweight request keeps the full Request, once built, under this symbol. */
const builtRequest = (req: Request) => {
  const key = Object.getOwnPropertySymbols(req).find((s) => s.description === 'requestCache');
  return key !== undefined && (req as unknown as Record<symbol, unknown>)[key] !== undefined;
};

before(async () => {
  redis = await startRedis();
  t = createTestApp(redis, { SBX_WAIT_CAP_MS: '600000' });
  await new Promise<void>((resolve) => {
    server = serve({ fetch: async (req, env) => {
      try {
        return await t.app.fetch(req, env);
      } finally {
        served.push({ path: new URL(req.url).pathname + new URL(req.url).search, builtFetchRequest: builtRequest(req) });
      }
    }, hostname: '127.0.0.1', port: 0 }, (info: AddressInfo) => {
      port = info.port;
      resolve();
    });
  });
});
after(async () => {
  server?.close();
  await t?.close();
  await redis?.stop();
});

const body = JSON.stringify({ image: 'busybox', command: ['true'] });

test('POST /v1/jobs: 202 with the job; its body is read without building the fetch Request', async () => {
  const res = await fetch(`http://127.0.0.1:${port}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  assert.equal(res.status, 202);
  assert.equal(((await res.json()) as { status: string }).status, 'queued');
  await waitUntil(async () => served.some((s) => s.path === '/v1/jobs'), 5000);
  assert.deepEqual(served.filter((s) => s.path === '/v1/jobs'), [{ path: '/v1/jobs', builtFetchRequest: false }]);
});

test('POST /v1/jobs?wait=true, caller hangs up while the job is queued: the wait is let go, without the fetch Request', async () => {
  const before = await t.deps.redis.dbsize();
  const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/v1/jobs?wait=true', headers: { 'content-type': 'application/json' } });
  req.on('error', () => {}); // we hang up ourselves
  req.end(body);
  await waitUntil(async () => (await t.deps.redis.dbsize()) > before, 5000); // the job exists: the API waits
  req.destroy();
  // No worker runs the job and the wait cap is 10 minutes: only the hang-up ends the handler.
  await waitUntil(async () => served.some((s) => s.path === '/v1/jobs?wait=true'), 10_000);
  assert.deepEqual(served.filter((s) => s.path === '/v1/jobs?wait=true'), [{ path: '/v1/jobs?wait=true', builtFetchRequest: false }]);
});
