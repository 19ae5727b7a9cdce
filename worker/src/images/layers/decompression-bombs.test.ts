/**
 * Decompression bombs pulled through the image store from a real registry (issue 9, item 2): a zstd
 * layer of RLE blocks and a gzip layer of zeros, both far past the layer limit, end `invalid_image`
 * while the process RSS (main thread + unpack worker threads) grows by less than 64 MiB; a zstd frame
 * declaring a window over 2^27 bytes is refused with a message saying so.
 */
import { test, before, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InvalidImageError } from '../../../../core/src/errors.ts';
import { LOOPBACK_EGRESS } from '../../../../test/harness/egress.ts';
import { startRegistry, type RunningRegistry } from '../../../../test/harness/registry.ts';
import { busyboxImage } from '../../../../test/fixtures/build-images.ts';
import { gzipZeroBomb, zstdRawFrame, zstdRleBomb } from '../../../../test/fixtures/compression-bombs.ts';
import { buildLayer, buildTar, MEDIA, pushImage, sha256, type BuiltLayer } from '../../../../test/fixtures/oci-builder.ts';
import { ImageStore } from '../image-store.ts';
import { sharedUnpackPool } from './unpack-pool.ts';

const it = (name: string, fn: (t: TestContext) => Promise<void>) => test(name, { timeout: 120_000 }, fn);

const MiB = 1024 * 1024;
/** The layer limit for these pulls: small, so that a bounded decoder reaches it within a second. */
const LAYER_LIMIT = 128 * MiB;
/** The bound the issue sets on RSS growth during a bomb. */
const RSS_BOUND = 64 * MiB;

let registry: RunningRegistry;
let store: ImageStore;
let root: string;

function zstdLayer(bytes: Buffer, diffId: string): BuiltLayer {
  return { mediaType: MEDIA.ociLayerZstd, digest: sha256(bytes), size: bytes.length, bytes, diffId };
}

function gzipLayer(bytes: Buffer, diffId: string): BuiltLayer {
  return { mediaType: MEDIA.ociLayerGzip, digest: sha256(bytes), size: bytes.length, bytes, diffId };
}

before(async () => {
  registry = await startRegistry();
  root = await mkdtemp(join(tmpdir(), 'sbx-bombs-'));
  store = new ImageStore({
    root,
    egressAllow: LOOPBACK_EGRESS,
    unpackLimits: { maxLayerBytes: LAYER_LIMIT, maxEntries: 100_000 },
    retry: { attempts: 1, baseDelayMs: 10, maxDelayMs: 20, deadlineMs: 2_000 },
  });
  // Baseline after the unpack workers run, with the decoders loaded and used on real data (a few
  // MiB of incompressible content in a zstd and a gzip layer), so only the bomb's cost is measured.
  await sharedUnpackPool().warm();
  const content = randomBytes(8 * MiB);
  const warm = await busyboxImage({
    extraLayers: [
      await buildLayer([{ type: 'file', path: 'warm/zstd.bin', content }], { compression: 'zstd' }),
      await buildLayer([{ type: 'file', path: 'warm/gzip.bin', content }], { compression: 'gzip' }),
    ],
  });
  await pushImage(registry.url, 'bombs/warm', 'latest', warm);
  await store.acquire(`${registry.host}/bombs/warm:latest`);
});

after(async () => {
  await store?.close();
  await registry?.stop();
  if (root) await rm(root, { recursive: true, force: true });
});

/** Runs `fn` while sampling the process RSS every 5 ms; returns its outcome and the peak growth. */
async function peakRssGrowth<T>(fn: () => Promise<T>): Promise<{ growth: number; outcome: PromiseSettledResult<T> }> {
  const base = process.memoryUsage.rss();
  let peak = base;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 5);
  try {
    const [outcome] = await Promise.allSettled([fn()]);
    peak = Math.max(peak, process.memoryUsage.rss());
    return { growth: peak - base, outcome: outcome! };
  } finally {
    clearInterval(sampler);
  }
}

function assertInvalidImage(outcome: PromiseSettledResult<unknown>, pattern: RegExp): InvalidImageError {
  assert.equal(outcome.status, 'rejected', 'the pull of a hostile layer must fail');
  const e = (outcome as PromiseRejectedResult).reason as unknown;
  assert.ok(e instanceof InvalidImageError, `expected InvalidImageError, got ${String((e as Error)?.stack ?? e)}`);
  assert.equal(e.code, 'invalid_image');
  assert.match(e.message, pattern);
  return e;
}

async function pushWithLayer(repo: string, layer: BuiltLayer): Promise<string> {
  await pushImage(registry.url, repo, 'latest', await busyboxImage({ extraLayers: [layer] }));
  return `${registry.host}/${repo}:latest`;
}

it('a zstd bomb (128 KiB of RLE blocks → 4 GiB) ends invalid_image and RSS grows < 64 MiB', async () => {
  const bomb = zstdRleBomb(4 * 1024 * MiB);
  assert.ok(bomb.length <= 130 * 1024);
  const ref = await pushWithLayer('bombs/zstd', zstdLayer(bomb, sha256('not the real diffID')));
  const { growth, outcome } = await peakRssGrowth(() => store.acquire(ref));
  console.log(`zstd bomb: RSS grew by ${(growth / MiB).toFixed(1)} MiB`);
  assert.ok(growth < RSS_BOUND, `RSS grew by ${(growth / MiB).toFixed(1)} MiB during the zstd bomb (bound ${RSS_BOUND / MiB} MiB)`);
  const e = assertInvalidImage(outcome, new RegExp(`decompresses to more than ${LAYER_LIMIT} bytes`));
  assert.ok(e.message.includes('layer sha256:'), e.message);
});

it('a gzip bomb (0.5 MiB of gzip → 512 MiB of zeros) ends invalid_image and RSS grows < 64 MiB', async () => {
  const bomb = await gzipZeroBomb(512 * MiB);
  const ref = await pushWithLayer('bombs/gzip', gzipLayer(bomb, sha256('not the real diffID')));
  const { growth, outcome } = await peakRssGrowth(() => store.acquire(ref));
  console.log(`gzip bomb: RSS grew by ${(growth / MiB).toFixed(1)} MiB`);
  assert.ok(growth < RSS_BOUND, `RSS grew by ${(growth / MiB).toFixed(1)} MiB during the gzip bomb (bound ${RSS_BOUND / MiB} MiB)`);
  assertInvalidImage(outcome, new RegExp(`decompresses to more than ${LAYER_LIMIT} bytes`));
});

it('a zstd frame declaring a 2 GiB window is invalid_image "zstd window larger than 128 MiB"', async () => {
  const tarBytes = await buildTar([{ type: 'file', path: 'etc/window.txt', content: 'w' }]);
  const ref = await pushWithLayer('bombs/window', zstdLayer(zstdRawFrame(tarBytes, 31), sha256(tarBytes)));
  const { outcome } = await peakRssGrowth(() => store.acquire(ref));
  assertInvalidImage(outcome, /zstd window larger than 128 MiB/);
});

it('control: the same frame declaring a 2^27-byte window (the limit itself) unpacks', async () => {
  const tarBytes = await buildTar([{ type: 'file', path: 'etc/window.txt', content: 'window at the limit' }]);
  const ref = await pushWithLayer('bombs/window-ok', zstdLayer(zstdRawFrame(tarBytes, 27), sha256(tarBytes)));
  const image = await store.acquire(ref);
  assert.equal(readFileSync(join(image.layerDirs[1]!, 'etc/window.txt'), 'utf8'), 'window at the limit');
});
