/**
 * GET /v1/images reads every live worker's heartbeat (its info, with every image its cache lists:
 * up to SBX_IMAGE_CACHE_REFERENCES of them) to answer a tenant with the few its own jobs used. The
 * requests that come while one such read is under way share it, and a tenant whose jobs used no image
 * reads none: counted in bytes Redis sends, never timed. Before, each request read the whole fleet:
 * 50 requests at once of a tenant whose jobs used one image, against 10 workers listing 1,000 images
 * each, made Redis send 97.8 MiB (50 × the fleet's 1.91 MiB of heartbeats) and the API spend 2.3 s
 * of CPU (then looking each of the fleet's 10,000 images up in the tenant's set, ZMSCORE). Real
 * redis-server, the app in-process.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { useTestApp } from '../../../test/harness/api-app.ts';
import { TenantImages } from '../../../core/src/tenant-images.ts';

const WORKERS = 10;
const IMAGES = 1000;
const stack = useTestApp({ SBX_API_KEYS: 'tenantkey-0000000001:team-a,otherkey-000000000001:team-b,adminkey-00000000001:ops:admin' });

async function redisSent<T>(read: () => Promise<T>): Promise<{ value: T; bytes: number }> {
  const sent = async () => Number(/total_net_output_bytes:(\d+)/.exec(await stack.redis.client().info('stats'))?.[1]);
  const before = await sent();
  const value = await read();
  return { value, bytes: (await sent()) - before };
}

test('50 GET /v1/images at once of a tenant share one read of the fleet\'s heartbeats; a tenant that used no image reads none', async () => {
  const now = new Date().toISOString();
  let fleetChars = 0;
  for (let w = 0; w < WORKERS; w++) {
    const images = Array.from({ length: IMAGES }, (_, i) => ({ image: `registry.example.com/team-x/app:build-${w}-${i}`, digest: `sha256:${String(i).padStart(64, '0')}`, sizeBytes: 12_345_678, lastUsedAt: now }));
    const info = { id: `w${w}`, host: 'h', pid: 1, slotsTotal: 4, slotsFree: 4, runningJobs: [], cachedBytes: 1, images, cgroup: '', startedAt: now, lastHeartbeat: now };
    fleetChars += JSON.stringify(info).length;
    await stack.deps.workers.heartbeat(info, 600_000);
  }
  // team-a's jobs used one of them (as a worker records it: core/src/tenant-images.ts).
  const mine = { image: 'registry.example.com/team-x/app:build-3-7', digest: `sha256:${'7'.padStart(64, '0')}` };
  await new TenantImages(stack.redis.client(), stack.deps.keys, 3600).note('team-a', mine.image, mine.digest);
  const ask = async () => {
    const res = await stack.app.request('/v1/images', { headers: { authorization: 'Bearer tenantkey-0000000001' } });
    assert.equal(res.status, 200);
    return (await res.json()) as { items: unknown[] };
  };
  const { value, bytes } = await redisSent(() => Promise.all(Array.from({ length: 50 }, ask)));
  for (const v of value) assert.deepEqual(v.items.map((i) => [(i as { image: string }).image, (i as { workers: string[] }).workers]), [[mine.image, ['w3']]], 'the one its job used');
  assert.ok(bytes < 3 * fleetChars, `50 requests made Redis send ${(bytes / 2 ** 20).toFixed(1)} MiB for a fleet of ${(fleetChars / 2 ** 20).toFixed(2)} MiB of heartbeats`);
  const none = await redisSent(async () => (await stack.app.request('/v1/images', { headers: { authorization: 'Bearer otherkey-000000000001' } })).json());
  assert.deepEqual(none.value, { items: [] });
  assert.ok(none.bytes < 64 * 1024, `a tenant that used no image made Redis send ${none.bytes} bytes`);
  // An admin's list shows them all, from the same shared read or a fresh one.
  const all = (await (await stack.app.request('/v1/images', { headers: { authorization: 'Bearer adminkey-00000000001' } })).json()) as { items: unknown[] };
  assert.equal(all.items.length, WORKERS * IMAGES);
});
