/**
 * A worker killed while it evicts an image (SIGKILL, the OOM killer) leaves nothing on disk that
 * the cache no longer knows. The records of the doomed layers go first, then their directories; the
 * directories were deleted in place one after another (seconds for a large layer), so a crash left
 * every one not yet reached in the cache without its record, counted nowhere and never removed
 * (auditor: 2 of 3 layer directories, 315 MB, after a restart and a gc). Now they are all moved out
 * (one rename each) before any is deleted, into the process's temp dir, which the next open sweeps.
 * (A crash in the milliseconds between the records going and the renames can still leave one.)
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startFakeRegistry, type FakeRegistry } from '../../../../test/fixtures/fake-registry.ts';
import { buildImage, buildLayer, type LayerEntry } from '../../../../test/fixtures/oci-builder.ts';
import { TempImageStores } from '../../../../test/harness/temp-image-store.ts';

const evictor = join(import.meta.dirname, '..', '..', '..', '..', 'test', 'fixtures', 'evict-image.ts');
let fake: FakeRegistry;
const stores = new TempImageStores('sbx-eviction-crash-');
before(async () => {
  fake = await startFakeRegistry();
});
after(async () => {
  await stores.cleanup();
  await fake.stop();
});

const files = (tag: string, n: number): LayerEntry[] => Array.from({ length: n }, (_, i) => ({ type: 'file', path: `${tag}/d${i % 100}/f${i}`, content: `${tag}${i}` }));
const inTemp = (root: string) => readdirSync(join(root, 'tmp')).flatMap((d) => readdirSync(join(root, 'tmp', d)));

test('SIGKILLed while evicting a three-layer image: after the restart no layer directory is left without its record', { timeout: 180_000 }, async () => {
  const layers = await Promise.all(['l1', 'l2', 'l3'].map((t) => buildLayer(files(t, 20_000))));
  fake.add('many/files', 'latest', buildImage({ layers }));
  const root = await stores.root();
  const first = await stores.make({ root });
  const image = await first.acquire(`${fake.host}/many/files:latest`);
  image.release();
  await first.close();
  assert.equal(readdirSync(join(root, 'layers/sha256')).length, 3);

  const child = spawn(process.execPath, ['--import', 'tsx', evictor, root, image.digest], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise((r) => child.once('exit', r));
  // Killed while it deletes (the long part): once the layer directories are out of the cache. The
  // old order never had them all out at once (each was moved, then deleted, before the next).
  const started = Date.now();
  while (!(existsSync(join(root, 'tmp')) && inTemp(root).filter((x) => x.startsWith('evicted-')).length === 3)) {
    assert.ok(Date.now() - started < 60_000, `every layer directory out of the cache before any is deleted: ${inTemp(root).join(' ')}`);
    await new Promise((r) => setTimeout(r, 2));
  }
  child.kill('SIGKILL');
  await exited;

  const again = await stores.make({ root }); // the worker's restart: its open sweeps dead processes' temp dirs
  await again.gc();
  const orphans = readdirSync(join(root, 'layers/sha256')).filter((d) => !existsSync(join(root, 'layer-meta', `${d}.json`)));
  assert.deepEqual(orphans, [], 'layer directories without their records');
  assert.deepEqual(inTemp(root), [], 'nothing left in temp dirs');
  assert.equal(await again.cacheBytes(), 0);
  await again.close();
});
