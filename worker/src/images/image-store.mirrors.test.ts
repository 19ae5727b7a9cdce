/**
 * Registry mirrors: tried before the registry itself, skipped when they fail or lack the image,
 * and enough on their own when the registry is down.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { freePort, startRegistry, type RunningRegistry } from '../../../test/harness/registry.ts';
import { buildStandardImages } from '../../../test/fixtures/build-images.ts';
import { ImageStore } from './image-store.ts';
import { LOOPBACK_EGRESS } from '../../../test/harness/egress.ts';

let upstream: RunningRegistry;
let mirror: RunningRegistry;
let emptyMirror: RunningRegistry;
const roots: string[] = [];

before(async () => {
  [upstream, mirror, emptyMirror] = await Promise.all([startRegistry(), startRegistry(), startRegistry()]);
  await Promise.all([buildStandardImages(upstream.host), buildStandardImages(mirror.host)]);
});
after(async () => {
  await Promise.all([upstream, mirror, emptyMirror].map((r) => r?.stop()));
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

function store(mirrors: Record<string, string[]>): ImageStore {
  const root = mkdtempSync(join(tmpdir(), 'sbx-mirror-'));
  roots.push(root);
  return new ImageStore({ root, mirrors, egressAllow: LOOPBACK_EGRESS, retry: { attempts: 2, baseDelayMs: 10, maxDelayMs: 20, deadlineMs: 2_000 } });
}

test('an empty mirror falls through to the registry', async () => {
  const s = store({ [upstream.host]: [emptyMirror.host] });
  const img = await s.acquire(`${upstream.host}/test/busybox:latest`);
  assert.equal(img.pulled, true);
  img.release();
  await s.close();
});

test('with the registry down, the mirror serves the image; without the mirror the pull fails', async () => {
  const dead = `127.0.0.1:${await freePort()}`;
  const withMirror = store({ [dead]: [`127.0.0.1:${await freePort()}`, mirror.host] }); // a dead mirror first: skipped
  const img = await withMirror.acquire(`${dead}/test/busybox:latest`);
  assert.match(img.digest, /^sha256:[0-9a-f]{64}$/);
  assert.ok(img.layerDirs.length >= 1);
  img.release();
  await withMirror.close();

  const without = store({});
  await assert.rejects(without.acquire(`${dead}/test/busybox:latest`), { code: 'image_pull_failed' });
  await without.close();
});
