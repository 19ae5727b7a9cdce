/**
 * Registry mirrors: tried before the registry itself, skipped when they fail or lack the image,
 * and enough on their own when the registry is down.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startRegistry, type RunningRegistry } from '../../../test/harness/registry.ts';
import { deadAddress } from '../../../test/harness/ports.ts';
import { buildStandardImages } from '../../../test/fixtures/build-images.ts';
import { TempImageStores } from '../../../test/harness/temp-image-store.ts';

let upstream: RunningRegistry;
let mirror: RunningRegistry;
let emptyMirror: RunningRegistry;
const stores = new TempImageStores('sbx-mirror-');

before(async () => {
  [upstream, mirror, emptyMirror] = await Promise.all([startRegistry(), startRegistry(), startRegistry()]);
  await Promise.all([buildStandardImages(upstream.host), buildStandardImages(mirror.host)]);
});
after(async () => {
  await stores.cleanup();
  await Promise.all([upstream, mirror, emptyMirror].map((r) => r?.stop()));
});

const store = (mirrors: Record<string, string[]>) => stores.make({ mirrors });

test('an empty mirror falls through to the registry', async () => {
  const s = await store({ [upstream.host]: [emptyMirror.host] });
  const img = await s.acquire(`${upstream.host}/test/busybox:latest`);
  assert.equal(img.pulled, true);
  img.release();
  await s.close();
});

test('with the registry down, the mirror serves the image; without the mirror the pull fails', async () => {
  const [registryDown, mirrorDown] = await Promise.all([deadAddress(), deadAddress()]);
  try {
    const dead = registryDown.host;
    const withMirror = await store({ [dead]: [mirrorDown.host, mirror.host] }); // a dead mirror first: skipped
    const img = await withMirror.acquire(`${dead}/test/busybox:latest`);
    assert.match(img.digest, /^sha256:[0-9a-f]{64}$/);
    assert.ok(img.layerDirs.length >= 1);
    img.release();
    await withMirror.close();

    const without = await store({});
    await assert.rejects(without.acquire(`${dead}/test/busybox:latest`), { code: 'image_pull_failed' });
    await without.close();
  } finally {
    await Promise.all([registryDown.close(), mirrorDown.close()]);
  }
});
