/**
 * Every route × every caller: an admin key, the tenant that owns the job, another tenant, no key and
 * a wrong key. Fleet-wide operations (pre-pull, evict, the worker list with its job ids, /metrics)
 * are admin-only (403 `forbidden` for a tenant key); a tenant lists only the images its own jobs
 * used. With no keys configured (loopback-only anonymous mode) everything stays allowed.
 * The table must name every route the app serves: a new route without an entry fails here.
 */
import { TenantImages } from '../../../core/src/tenant-images.ts';
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startRedis, type RunningRedis } from '../../../test/harness/redis.ts';
import { createTestApp } from '../../../test/harness/api-app.ts';
import type { JobDocument } from '../../../core/src/job-spec.ts';
import type { WorkerInfo } from '../../../core/src/worker-directory.ts';

const ADMIN = 'key-admin-aaaaaaaaaaaaaaaaaaaa';
const ALPHA = 'key-alpha-aaaaaaaaaaaaaaaaaaaa';
const BETA = 'key-beta-bbbbbbbbbbbbbbbbbbbbbb';
const WRONG = 'key-wrong-zzzzzzzzzzzzzzzzzzzz';
const CALLERS = { admin: ADMIN, tenant: ALPHA, other: BETA, none: null, wrong: WRONG } as const;
type Caller = keyof typeof CALLERS;

const IMAGE_A = '127.0.0.1:5000/alpha/app:1';
const IMAGE_B = '127.0.0.1:5000/beta/app:1';
/** Used by every caller; no worker has it cached. */
const IMAGE_ANY = '127.0.0.1:5000/any/app:1';
const DIGEST = (c: string) => `sha256:${c.repeat(64)}`;

let redis: RunningRedis;

before(async () => {
  redis = await startRedis();
});
after(async () => {
  await redis?.stop();
});

type App = ReturnType<typeof createTestApp>;

function call(t: App, method: string, path: string, key: string | null, body?: unknown) {
  const headers: Record<string, string> = key ? { authorization: `Bearer ${key}` } : {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  return t.app.request(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
}

/** A worker heartbeat as a real worker writes it, caching both tenants' images and running a job. */
async function fakeWorkerHeartbeat(t: App, runningJobs: string[]): Promise<void> {
  const now = new Date().toISOString();
  const info: WorkerInfo = {
    id: 'test-host/1', host: 'test-host', pid: 1, slotsTotal: 2, slotsFree: 1, runningJobs, cachedBytes: 2048, cgroup: 'v1',
    images: [
      { image: IMAGE_A, digest: DIGEST('a'), sizeBytes: 1024, lastUsedAt: now },
      { image: IMAGE_B, digest: DIGEST('b'), sizeBytes: 1024, lastUsedAt: now },
    ],
    startedAt: now, lastHeartbeat: now,
  };
  await t.deps.workers.heartbeat(info, 60_000);
}

interface RouteCase {
  method: string;
  /** The route as the app registers it. */
  route: string;
  /** A concrete request for `caller` (jobs are created fresh where the call changes them). */
  request(t: App, caller: Caller): Promise<{ path: string; body?: unknown }>;
  expect: Record<Caller, number>;
}

const open = { admin: 200, tenant: 200, other: 200, none: 200, wrong: 200 };
const adminOnly = (ok: number) => ({ admin: ok, tenant: 403, other: 403, none: 401, wrong: 401 });
const anyTenant = (ok: number) => ({ admin: ok, tenant: ok, other: ok, none: 401, wrong: 401 });
/** Jobs are the tenant's own: an admin key is a tenant of its own for jobs, not a reader of all. */
const ownerOnly = (ok: number) => ({ admin: 404, tenant: ok, other: 404, none: 401, wrong: 401 });

async function alphaJob(t: App, finished: boolean): Promise<string> {
  const res = await call(t, 'POST', '/v1/jobs', ALPHA, { image: IMAGE_A, command: ['true'] });
  assert.equal(res.status, 202, await res.clone().text());
  const id = ((await res.json()) as JobDocument).id;
  if (finished) assert.equal((await call(t, 'DELETE', `/v1/jobs/${id}`, ALPHA)).status, 202);
  return id;
}

const ROUTES: RouteCase[] = [
  { method: 'GET', route: '/healthz', request: async () => ({ path: '/healthz' }), expect: open },
  { method: 'GET', route: '/readyz', request: async () => ({ path: '/readyz' }), expect: open },
  { method: 'GET', route: '/openapi.json', request: async () => ({ path: '/openapi.json' }), expect: open },
  { method: 'GET', route: '/docs', request: async () => ({ path: '/docs' }), expect: open },
  { method: 'GET', route: '/metrics', request: async () => ({ path: '/metrics' }), expect: adminOnly(200) },
  { method: 'POST', route: '/v1/jobs', request: async () => ({ path: '/v1/jobs', body: { image: IMAGE_ANY, command: ['true'] } }), expect: anyTenant(202) },
  { method: 'GET', route: '/v1/jobs', request: async () => ({ path: '/v1/jobs' }), expect: anyTenant(200) },
  { method: 'GET', route: '/v1/jobs/:id', request: async (t) => ({ path: `/v1/jobs/${await alphaJob(t, false)}` }), expect: ownerOnly(200) },
  // A finished job, so its event stream replays and ends.
  { method: 'GET', route: '/v1/jobs/:id/events', request: async (t) => ({ path: `/v1/jobs/${await alphaJob(t, true)}/events` }), expect: ownerOnly(200) },
  { method: 'GET', route: '/v1/jobs/:id/files', request: async (t) => ({ path: `/v1/jobs/${await alphaJob(t, false)}/files` }), expect: ownerOnly(200) },
  // Without an Upgrade header (app.request cannot upgrade): 400 for the owner, after the tenant check.
  { method: 'GET', route: '/v1/jobs/:id/attach', request: async (t) => ({ path: `/v1/jobs/${await alphaJob(t, false)}/attach` }), expect: ownerOnly(400) },
  { method: 'DELETE', route: '/v1/jobs/:id', request: async (t) => ({ path: `/v1/jobs/${await alphaJob(t, false)}` }), expect: ownerOnly(202) },
  { method: 'GET', route: '/v1/workers', request: async () => ({ path: '/v1/workers' }), expect: adminOnly(200) },
  { method: 'GET', route: '/v1/images', request: async () => ({ path: '/v1/images' }), expect: anyTenant(200) },
  { method: 'POST', route: '/v1/images', request: async () => ({ path: '/v1/images', body: { image: IMAGE_B } }), expect: adminOnly(202) },
  { method: 'DELETE', route: '/v1/images/:digest', request: async () => ({ path: `/v1/images/${DIGEST('b')}` }), expect: adminOnly(202) },
  // Public keys only: any key may read them.
  { method: 'GET', route: '/v1/receipt-keys', request: async () => ({ path: '/v1/receipt-keys' }), expect: anyTenant(200) },
];

describe('with API keys: tenant and admin roles', () => {
  let t: App;
  before(() => {
    t = createTestApp(redis, { SBX_API_KEYS: `${ADMIN}:ops:admin,${ALPHA}:alpha,${BETA}:beta` });
  });
  after(async () => {
    await t?.close();
  });

  test('the table names every route the app serves', () => {
    const served = new Set(t.app.routes.filter((r) => r.method !== 'ALL').map((r) => `${r.method} ${r.path}`));
    const listed = new Set(ROUTES.map((r) => `${r.method} ${r.route}`));
    assert.deepEqual([...served].filter((r) => !listed.has(r)), [], 'routes without an entry in ROUTES');
  });

  for (const r of ROUTES) {
    test(`${r.method} ${r.route}`, async () => {
      const got: Record<string, number> = {};
      for (const caller of Object.keys(CALLERS) as Caller[]) {
        const { path, body } = await r.request(t, caller);
        const res = await call(t, r.method, path, CALLERS[caller], body);
        got[caller] = res.status;
        if (res.status === 403) assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'forbidden');
        else await res.body?.cancel();
      }
      assert.deepEqual(got, r.expect);
    });
  }

  test("a tenant lists only the images its own jobs acquired, at the digests they got; the admin lists all", async () => {
    await fakeWorkerHeartbeat(t, []);
    // What a worker records once a tenant's job has its image (worker/src/job-runner.ts).
    const acquired = new TenantImages(t.deps.redis, t.deps.keys, 3600);
    const images = async (key: string) => ((await (await call(t, 'GET', '/v1/images', key)).json()) as { items: Array<{ image: string }> }).items.map((i) => i.image).sort();
    // Submitting names an image without being given it (a private one refused registry_unauthorized): not listed.
    assert.equal((await call(t, 'POST', '/v1/jobs', ALPHA, { image: IMAGE_A })).status, 202);
    assert.deepEqual(await images(ALPHA), []);
    await acquired.note('alpha', IMAGE_A, DIGEST('a'));
    assert.deepEqual(await images(ALPHA), [IMAGE_A]);
    assert.deepEqual(await images(BETA), []);
    assert.deepEqual(await images(ADMIN), [IMAGE_A, IMAGE_B]);
    // Per tenant, image and digest: beta's job that got IMAGE_B at another digest than the cached one does not list it.
    await acquired.note('beta', IMAGE_B, DIGEST('c'));
    assert.deepEqual(await images(BETA), []);
    await acquired.note('beta', IMAGE_B, DIGEST('b'));
    assert.deepEqual(await images(BETA), [IMAGE_B]);
    assert.deepEqual(await images(ALPHA), [IMAGE_A]);
  });

  test("a tenant cannot read another tenant's running job ids from the worker list", async () => {
    const id = await alphaJob(t, false);
    await fakeWorkerHeartbeat(t, [id]);
    const asBeta = await call(t, 'GET', '/v1/workers', BETA);
    assert.equal(asBeta.status, 403);
    assert.doesNotMatch(await asBeta.text(), new RegExp(id));
    const asAdmin = (await (await call(t, 'GET', '/v1/workers', ADMIN)).json()) as { items: Array<{ runningJobs: string[] }> };
    assert.deepEqual(asAdmin.items[0]?.runningJobs, [id]);
  });

  test('a tenant key cannot evict or pre-pull: nothing reaches the workers', async () => {
    const sub = redis.client();
    const seen: string[] = [];
    await sub.subscribe(t.deps.keys.control());
    sub.on('message', (_ch, msg) => seen.push(msg));
    try {
      assert.equal((await call(t, 'DELETE', `/v1/images/${DIGEST('a')}`, BETA)).status, 403);
      assert.equal((await call(t, 'POST', '/v1/images', BETA, { image: IMAGE_A })).status, 403);
      assert.equal((await call(t, 'DELETE', `/v1/images/${DIGEST('a')}`, ADMIN)).status, 202);
      await new Promise((r) => setTimeout(r, 100));
      assert.deepEqual(seen.map((m) => JSON.parse(m).type), ['evict']);
    } finally {
      sub.disconnect();
    }
  });
});

describe('with no keys (anonymous, loopback-only mode): everything stays allowed', () => {
  let t: App;
  before(() => {
    t = createTestApp(redis, {});
  });
  after(async () => {
    await t?.close();
  });

  for (const r of ROUTES) {
    test(`${r.method} ${r.route}`, async () => {
      const want = r.expect.admin === 404 ? r.expect.tenant : r.expect.admin; // one tenant, `default`, owns every job
      const { path, body } = await r.request(t, 'none');
      const res = await call(t, r.method, path, null, body);
      await res.body?.cancel();
      assert.equal(res.status, want);
    });
  }

  test('GET /v1/images lists every cached image', async () => {
    await fakeWorkerHeartbeat(t, []);
    const items = ((await (await call(t, 'GET', '/v1/images', null)).json()) as { items: Array<{ image: string }> }).items;
    assert.deepEqual(items.map((i) => i.image).sort(), [IMAGE_A, IMAGE_B]);
  });
});
