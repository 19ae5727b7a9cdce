/**
 * The cache keeps at most maxReferences image references (SBX_IMAGE_CACHE_REFERENCES), least recently
 * used forgotten first. Another tag of a cached image costs no disk, so the disk budgets never bounded
 * them: a tenant naming one small image under 600 tags made each heartbeat of the worker list 600
 * images (113 KB every SBX_HEARTBEAT_MS into Redis, read whole by every GET /v1/images and
 * /v1/workers), more with each new tag, for as long as the cache lived. Counted, not timed.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startRegistry, type RunningRegistry } from '../../../test/harness/registry.ts';
import { buildImage, buildLayer, pushImage, pushManifest } from '../../../test/fixtures/oci-builder.ts';
import { TempImageStores } from '../../../test/harness/temp-image-store.ts';
import type { EvictionReason } from './cache/cache-gc.ts';

const TAGS = 8;
let registry: RunningRegistry;
const stores = new TempImageStores('sbx-refs-');

before(async () => {
  registry = await startRegistry();
  const image = buildImage({ layers: [await buildLayer([{ type: 'file', path: 'data', content: 'one small image' }], { compression: 'none' })] });
  await pushImage(registry.url, 'tags/small', 't0', image);
  for (let i = 1; i < TAGS; i++) await pushManifest(registry.url, 'tags/small', `t${i}`, image.manifest);
});

after(async () => {
  await stores.cleanup();
  await registry.stop();
});

test('past maxReferences the least recently used references are forgotten, held or not, and a forgotten tag pulls again', { timeout: 60_000 }, async () => {
  const evicted: Array<[EvictionReason, number]> = [];
  const store = await stores.make({ maxReferences: 3, onEvicted: (reason, count) => evicted.push([reason, count]) });
  const tag = (i: number) => `${registry.host}/tags/small:t${i}`;
  const first = await store.acquire(tag(0)); // held throughout: every tag names its image
  for (let i = 1; i < TAGS; i++) (await store.acquire(tag(i))).release();
  const listed = (await store.list()).map((l) => l.image);
  assert.deepEqual(listed, [tag(5), tag(6), tag(7)], `the cache lists ${listed.length} references of one image: ${listed.join(', ')}`);
  assert.deepEqual(evicted.reduce((n, [reason, count]) => n + (reason === 'references' ? count : 0), 0), TAGS - 3);
  // The image a job holds stays usable; a forgotten tag is resolved again (pulled: true) and listed.
  const again = await store.acquire(tag(0));
  assert.equal(again.pulled, true);
  assert.deepEqual(again.layerDirs, first.layerDirs);
  assert.ok((await store.list()).some((l) => l.image === tag(0)));
  again.release();
  first.release();
});
