/**
 * GET /v1/workers and GET /v1/images read the workers' heartbeats, which a worker of another version
 * may have written (README, "Mixed versions": fields are only added) or which may be damaged: a field
 * missing reads as empty, an entry that cannot be read is left out; never a 500 for the whole fleet.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createTestApp } from '../../../test/harness/api-app.ts';
import { useRedis } from '../../../test/harness/use-redis.ts';

const ADMIN = 'key-admin-fleetreads-aaaaaaaaaa';
const redis = useRedis();

test('heartbeats without a field, with fields unknown here, or unreadable: the fleet is still listed', async () => {
  const t = createTestApp(redis.server, { SBX_API_KEYS: `${ADMIN}:ops:admin` });
  try {
    const now = new Date().toISOString();
    const entries: Record<string, string> = {
      // An older worker's: no images, no cachedBytes.
      'old/1': JSON.stringify({ id: 'old/1', host: 'old', pid: 7, slotsTotal: 2, slotsFree: 2, runningJobs: [], cgroup: 'v1', startedAt: now, lastHeartbeat: now }),
      // A newer worker's: a field this version does not know.
      'new/1': JSON.stringify({ id: 'new/1', host: 'new', pid: 8, slotsTotal: 4, slotsFree: 3, runningJobs: ['j_x'], cachedBytes: 10, cgroup: 'v2', gpus: 1, startedAt: now, lastHeartbeat: now,
        images: [{ image: 'reg.example/x:1', digest: `sha256:${'a'.repeat(64)}`, sizeBytes: 10, lastUsedAt: now }] }),
      'bad/1': '{"id": "bad/1", "host": ', // damaged
    };
    for (const [id, value] of Object.entries(entries)) {
      await t.deps.redis.set(t.deps.keys.worker(id), value, 'PX', 60_000);
      await t.deps.redis.zadd(t.deps.keys.workers(), Date.now(), id);
    }
    const get = (path: string) => t.app.request(path, { headers: { authorization: `Bearer ${ADMIN}` } });
    const workers = await get('/v1/workers');
    assert.equal(workers.status, 200, await workers.clone().text());
    const items = ((await workers.json()) as { items: Array<{ id: string; cachedBytes: number; slots: { free: number } }> }).items;
    assert.deepEqual(items.map((w) => [w.id, w.cachedBytes, w.slots.free]).sort(), [['new/1', 10, 3], ['old/1', 0, 2]]);
    const images = await get('/v1/images');
    assert.equal(images.status, 200, await images.clone().text());
    assert.deepEqual(((await images.json()) as { items: Array<{ image: string; workers: string[] }> }).items.map((i) => [i.image, i.workers]), [['reg.example/x:1', ['new/1']]]);
  } finally {
    await t.close();
  }
});
