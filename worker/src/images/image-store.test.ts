/**
 * The image store against a real Distribution registry (Debian's docker-registry on a free port)
 * with images built in code.
 */
import { test, before, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, lstatSync, readdirSync, readFileSync, rmSync, statfsSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { Agent, type Dispatcher } from 'undici';
import { ImageNotFoundError, ImagePullFailedError, InvalidImageError, SbxError } from '../../../core/src/errors.ts';
import { startRegistry, type RunningRegistry } from '../../../test/harness/registry.ts';
import { buildStandardImages, busyboxImage, busyboxLayer, DEFAULT_PATH } from '../../../test/fixtures/build-images.ts';
import { buildImage, buildIndex, buildLayer, pushImage } from '../../../test/fixtures/oci-builder.ts';
import { ImageStore, type ImageStoreOptions } from './image-store.ts';
import { MAX_IMAGE_LAYERS } from '../../../core/src/launch-bounds.ts';
import { TempImageStores } from '../../../test/harness/temp-image-store.ts';
import { sharedUnpackPool } from './layers/unpack-pool.ts';
import { waitUntil } from '../../../test/harness/redis.ts';

/** Integration tests fail after a minute instead of stalling the suite. */
const it = (name: string, fn: (t: TestContext) => Promise<void>) => test(name, { timeout: 60_000 }, fn);

let registry: RunningRegistry;
const stores = new TempImageStores('sbx-images-');

before(async () => {
  registry = await startRegistry();
  await buildStandardImages(registry.host);
});

after(async () => {
  await stores.cleanup();
  await registry.stop();
});

const newStore = (opts: Partial<ImageStoreOptions> = {}): Promise<ImageStore> => stores.make(opts);

/** An undici Agent that counts requests by path. */
class CountingAgent extends Agent {
  readonly paths: string[] = [];
  override dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    this.paths.push(options.path);
    return super.dispatch(options, handler);
  }
}

function blobPath(storageDir: string, digest: string): string {
  const hex = digest.slice('sha256:'.length);
  return join(storageDir, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
}

it('pulls the busybox fixture into a layer dir where bin/busybox runs', async () => {
  const store = await newStore();
  const image = await store.acquire(`${registry.host}/demo/busybox:latest`);
  assert.equal(image.pulled, true);
  assert.equal(image.reference, `${registry.host}/demo/busybox:latest`);
  assert.match(image.digest, /^sha256:[a-f0-9]{64}$/);
  assert.equal(image.layerDirs.length, 1);
  const dir = image.layerDirs[0]!;
  assert.equal(execFileSync(join(dir, 'bin/busybox'), ['echo', 'hi'], { encoding: 'utf8' }), 'hi\n');
  // applets are hard links to the one binary
  assert.equal(statSync(join(dir, 'bin/sh')).ino, statSync(join(dir, 'bin/busybox')).ino);
  assert.equal(statSync(join(dir, 'tmp')).mode & 0o7777, 0o1777);
  assert.equal(statSync(join(dir, 'home/app')).uid, 1000);
  assert.equal(statSync(dir).mode & 0o777, 0o755, 'layer root must be traversable by non-root users');
  assert.deepEqual(image.config, { env: [DEFAULT_PATH], entrypoint: null, cmd: ['sh'], workingDir: '/', user: '' });
  assert.ok(image.sizeBytes > 1_000_000);
  const listed = await store.list();
  assert.deepEqual(
    listed.map((l) => [l.image, l.digest]),
    [[image.reference, image.digest]],
  );
});

it('the layer that sets a pull\'s time gets a writer thread for its files; even layers do not', async () => {
  const pool = sharedUnpackPool();
  const store = await newStore();
  // busybox with a small layer on top: busybox holds most of the bytes.
  const note = await buildLayer([{ type: 'file', path: 'note', content: 'small' }]);
  await pushImage(registry.url, 'writer/dominant', 'v1', await busyboxImage({ extraLayers: [note] }));
  let splits = pool.splitLayers;
  const dominant = await store.acquire(`${registry.host}/writer/dominant:v1`);
  assert.equal(pool.splitLayers, splits + 1, 'the busybox layer was written by one thread');
  assert.equal(execFileSync(join(dominant.layerDirs[0]!, 'bin/busybox'), ['echo', 'hi'], { encoding: 'utf8' }), 'hi\n');
  assert.equal(readFileSync(join(dominant.layerDirs[1]!, 'note'), 'utf8'), 'small');
  // Two layers of the same size: each on its own thread already.
  const even = await Promise.all(['a', 'b'].map((name) => buildLayer([{ type: 'file', path: name, content: randomBytes(300_000) }])));
  await pushImage(registry.url, 'writer/even', 'v1', await buildImage({ layers: even, config: { Cmd: ['sh'] } }));
  splits = pool.splitLayers;
  const image = await store.acquire(`${registry.host}/writer/even:v1`);
  assert.equal(pool.splitLayers, splits, 'a layer of two even ones took a writer thread');
  assert.equal(image.layerDirs.length, 2);
});

it('a cached tag is served without contacting the registry, also after a restart', async () => {
  const own = await startRegistry();
  const root = await stores.root();
  try {
    await pushImage(own.url, 'cache/busybox', 'v1', await busyboxImage());
    const store = await newStore({ root });
    const first = await store.acquire(`${own.host}/cache/busybox:v1`);
    assert.equal(first.pulled, true);
    await own.stop();

    // The registry is gone: the second acquire can only come from the cache (no clock bound, which a
    // busy host would break; bench:pull measures how fast a hit is).
    const second = await store.acquire(`${own.host}/cache/busybox:v1`);
    assert.equal(second.pulled, false);
    assert.deepEqual(second.layerDirs, first.layerDirs);
    assert.equal(second.digest, first.digest);
    const byDigest = await store.acquire(`${own.host}/cache/busybox@${first.digest}`);
    assert.equal(byDigest.pulled, false, 'a digest already cached needs no registry either');
    assert.deepEqual(byDigest.layerDirs, first.layerDirs);

    const restarted = await newStore({ root });
    const third = await restarted.acquire(`${own.host}/cache/busybox:v1`);
    assert.equal(third.pulled, false);
    assert.deepEqual(third.layerDirs, first.layerDirs);
  } finally {
    await own.stop();
  }
});

it('concurrent acquires of one image share one pull', async () => {
  const agent = new CountingAgent();
  const store = await newStore({ dispatcher: agent });
  try {
    const images = await Promise.all(Array.from({ length: 5 }, () => store.acquire(`${registry.host}/test/busybox:latest`)));
    assert.equal(new Set(images.map((i) => i.layerDirs[0])).size, 1);
    assert.equal(agent.paths.filter((p) => p.includes('/manifests/')).length, 1);
    assert.equal(agent.paths.filter((p) => p.includes('/blobs/')).length, 2, 'one config + one layer');
    assert.equal(store.inUseCount(images[0]!.digest), 5);
    for (const i of images) i.release();
    images[0]!.release();
    assert.equal(store.inUseCount(images[0]!.digest), 0);
  } finally {
    await agent.close();
  }
});

it('a missing tag or repository is ImageNotFoundError naming the reference', async () => {
  const store = await newStore();
  for (const ref of [`${registry.host}/demo/busybox:nope`, `${registry.host}/no/such-repo:latest`]) {
    await assert.rejects(store.acquire(ref), (e: unknown) => {
      assert.ok(e instanceof ImageNotFoundError);
      assert.equal(e.code, 'image_not_found');
      assert.ok(e.message.includes(ref), e.message);
      return true;
    });
  }
});

it('an invalid reference is invalid_request before any network use', async () => {
  const store = await newStore();
  await assert.rejects(store.acquire('Bad/Name'), (e: unknown) => e instanceof SbxError && e.code === 'invalid_request');
});

it('a corrupted layer blob is InvalidImageError and nothing is cached', async () => {
  const own = await startRegistry();
  try {
    const image = await busyboxImage();
    await pushImage(own.url, 'corrupt/busybox', 'latest', image);
    const data = blobPath(own.storageDir, image.layers[0]!.digest);
    const bytes = readFileSync(data);
    bytes[bytes.length >> 1] = (bytes[bytes.length >> 1] ?? 0) ^ 0xff;
    writeFileSync(data, bytes);
    const root = await stores.root();
    const store = await newStore({ root });
    await assert.rejects(store.acquire(`${own.host}/corrupt/busybox:latest`), (e: unknown) => {
      assert.ok(e instanceof InvalidImageError, String((e as Error).stack));
      assert.match(e.message, /digest|not valid compressed data/);
      return true;
    });
    assert.deepEqual(readdirSync(join(root, 'layers/sha256')), []);
    assert.deepEqual(filesUnder(join(root, 'tmp')), [], 'the failed unpack left its temp dir');
    assert.deepEqual(await store.list(), []);
  } finally {
    await own.stop();
  }
});

it('a blob the registry lost is invalid_image naming the blob, with the registry\'s own message; nothing is cached', async () => {
  const own = await startRegistry();
  try {
    const image = await busyboxImage();
    await pushImage(own.url, 'lost/busybox', 'latest', image);
    rmSync(dirname(blobPath(own.storageDir, image.layers[0]!.digest)), { recursive: true });
    const root = await stores.root();
    const store = await newStore({ root });
    await assert.rejects(store.acquire(`${own.host}/lost/busybox:latest`), (e: unknown) => {
      assert.ok(e instanceof SbxError, String(e));
      assert.equal(e.code, 'invalid_image', e.message);
      assert.ok(e.message.includes(image.layers[0]!.digest), e.message);
      assert.match(e.message, /said BLOB_UNKNOWN: blob unknown to registry/, 'the registry\'s own words');
      return true;
    });
    assert.deepEqual(readdirSync(join(root, 'layers/sha256')), []);
  } finally {
    await own.stop();
  }
});

it('a config whose diff_ids do not match the layers is InvalidImageError', async () => {
  const layer = await busyboxLayer();
  const image = buildImage({ layers: [layer], diffIds: ['sha256:' + '0'.repeat(64)] });
  await pushImage(registry.url, 'bad/diffid', 'latest', image);
  const store = await newStore();
  await assert.rejects(store.acquire(`${registry.host}/bad/diffid:latest`), /uncompressed content has digest/);
});

it('an image of more layers than a job can mount (MAX_IMAGE_LAYERS) is InvalidImageError before any blob is downloaded; one of exactly that many pulls', async () => {
  const extra = await Promise.all(Array.from({ length: MAX_IMAGE_LAYERS }, (_, i) => buildLayer([{ type: 'file', path: `f${i}`, content: `${i}` }])));
  await pushImage(registry.url, 'many/layers', 'over', await busyboxImage({ extraLayers: extra }));
  await pushImage(registry.url, 'many/layers', 'most', await busyboxImage({ extraLayers: extra.slice(1) }));
  const agent = new CountingAgent();
  const store = await newStore({ dispatcher: agent });
  await assert.rejects(store.acquire(`${registry.host}/many/layers:over`), (e: Error) => e instanceof InvalidImageError && /it has 129 layers; sbx runs images of at most 128/.test(e.message));
  assert.deepEqual(agent.paths.filter((p) => p.includes('/blobs/')), [], 'not even its config was downloaded');
  const image = await store.acquire(`${registry.host}/many/layers:most`);
  assert.equal(image.layerDirs.length, MAX_IMAGE_LAYERS);
  image.release();
});

it('a worker whose cache disk fills up fails the pull as image_pull_failed saying so, leaves no partial layer, and pulls a smaller image after', async () => {
  const root = await stores.root();
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=48m', `sbx-test-full-${process.pid}`, root]);
  try {
    const zeros = await buildLayer([{ type: 'file', path: 'zeros', content: Buffer.alloc(96 * 1024 * 1024) }]);
    await pushImage(registry.url, 'full/disk', 'latest', await busyboxImage({ extraLayers: [zeros] }));
    const store = await newStore({ root });
    await assert.rejects(store.acquire(`${registry.host}/full/disk:latest`), (e: Error) => e instanceof ImagePullFailedError && e.code === 'image_pull_failed' && /no disk space left for it \(ENOSPC\)/.test(e.message));
    assert.deepEqual(readdirSync(join(root, 'layers/sha256')).filter((d) => !existsSync(join(root, 'layer-meta', `${d}.json`))), [], 'no partial layer');
    // tmp/<pid>-<hex> is this process's own scratch for unpacking: empty once no pull runs.
    assert.deepEqual(readdirSync(join(root, 'tmp')).flatMap((d) => readdirSync(join(root, 'tmp', d))), [], 'nothing left being unpacked');
    const small = await store.acquire(`${registry.host}/demo/busybox:latest`);
    assert.equal(small.layerDirs.length, 1);
    small.release();
    await store.close();
  } finally {
    execFileSync('umount', ['-l', root]);
  }
});

/** Runs `fn` with a store of `opts` whose root is a tmpfs of `mib` MiB (and `inodes` inodes); the store is closed and the tmpfs unmounted after. */
async function onSmallDisk(mib: number, opts: Partial<ImageStoreOptions>, fn: (store: ImageStore, root: string) => Promise<void>, inodes?: number): Promise<void> {
  const root = await stores.root();
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${mib}m${inodes ? `,nr_inodes=${inodes}` : ''}`, `sbx-test-small-${process.pid}`, root]);
  try {
    const store = await newStore({ root, ...opts });
    try {
      await fn(store, root);
    } finally {
      await store.close();
    }
  } finally {
    execFileSync('umount', ['-l', root]);
  }
}

/** Two images of busybox and 28 MiB of their own, pushed once. */
async function bigImages(): Promise<{ a: string; b: string }> {
  const [a, b] = await Promise.all([0, 1].map((fill) => buildLayer([{ type: 'file', path: `fill${fill}`, content: Buffer.alloc(28 * 1024 * 1024, fill) }])));
  await pushImage(registry.url, 'big/a', 'latest', await busyboxImage({ extraLayers: [a!] }));
  await pushImage(registry.url, 'big/b', 'latest', await busyboxImage({ extraLayers: [b!] }));
  return { a: `${registry.host}/big/a:latest`, b: `${registry.host}/big/b:latest` };
}

const isCached = (store: ImageStore, ref: string) => store.acquire(ref, { policy: 'never' }).then((i) => { i.release(); return true; }, () => false);

it('a pull that finds the disk full evicts the images nobody holds and is tried again; a held image is kept, and then the error stands', async () => {
  const { a, b } = await bigImages();
  await onSmallDisk(48, { minFreeFraction: 0 }, async (store) => {
    const held = await store.acquire(a);
    // A job holds a: b (28 MiB more) does not fit, and a is not evicted for it.
    await assert.rejects(store.acquire(b), (e: Error) => e instanceof ImagePullFailedError && /no disk space left for it \(ENOSPC\)/.test(e.message));
    assert.equal(await isCached(store, a), true, 'the held image stays');
    held.release();
    // Nobody holds a any more: it makes room for b.
    const image = await store.acquire(b);
    assert.equal(readFileSync(join(image.layerDirs.at(-1)!, 'fill1')).length, 28 * 1024 * 1024);
    image.release();
    assert.equal(await isCached(store, a), false, 'a was evicted');
  });
});

it('a pull out of inodes evicts an image of empty files nobody holds (it frees no bytes) and is tried again', async () => {
  // Before, the retry needed bytes freed: the image went, and the job failed "no disk space left"
  // all the same, an identical job just after succeeding (auditor, ext4 and tmpfs).
  const empty = (n: number, prefix: string) => buildLayer(Array.from({ length: n }, (_, i) => ({ type: 'file' as const, path: `${prefix}${i}`, content: '' })));
  await pushImage(registry.url, 'inodes/old', 'latest', buildImage({ layers: [await empty(1500, 'o')] }));
  await pushImage(registry.url, 'inodes/new', 'latest', buildImage({ layers: [await empty(1000, 'n')] }));
  await onSmallDisk(64, { minFreeFraction: 0 }, async (store) => {
    (await store.acquire(`${registry.host}/inodes/old:latest`)).release();
    const image = await store.acquire(`${registry.host}/inodes/new:latest`);
    assert.equal(readdirSync(image.layerDirs.at(-1)!).length, 1000);
    image.release();
    assert.equal(await isCached(store, `${registry.host}/inodes/old:latest`), false, 'the old image made room');
  }, 2048);
});

it('whiteouts that find no inode left are a full disk too: the image nobody holds is evicted and the pull tried again', async () => {
  // mknod's failure carried no errno: the job ended `internal` and nothing was evicted (auditor).
  const empty = buildLayer(Array.from({ length: 1500 }, (_, i) => ({ type: 'file' as const, path: `o${i}`, content: '' })));
  const whiteouts = buildLayer(Array.from({ length: 800 }, (_, i) => ({ type: 'whiteout' as const, path: `gone${i}` })));
  await pushImage(registry.url, 'inodes/files', 'latest', buildImage({ layers: [await empty] }));
  await pushImage(registry.url, 'inodes/whiteouts', 'latest', buildImage({ layers: [await whiteouts] }));
  await onSmallDisk(64, { minFreeFraction: 0 }, async (store) => {
    (await store.acquire(`${registry.host}/inodes/files:latest`)).release();
    const image = await store.acquire(`${registry.host}/inodes/whiteouts:latest`);
    assert.equal(readdirSync(image.layerDirs.at(-1)!).length, 800);
    image.release();
    assert.equal(await isCached(store, `${registry.host}/inodes/files:latest`), false, 'the old image made room');
  }, 2048);
});

it('after a pull, images nobody holds are evicted, oldest first, while the cache disk has less than minFreeFraction free', async () => {
  const { a } = await bigImages();
  await onSmallDisk(64, { minFreeFraction: 0.6 }, async (store, root) => {
    const first = await store.acquire(a); // 30 of 64 MiB, under 60 % free: a pull never evicts the image it pulled
    first.release();
    const small = await store.acquire(`${registry.host}/demo/busybox:latest`);
    small.release();
    assert.equal(await isCached(store, a), false, 'a, unused, went to keep 60 % of the disk free');
    assert.equal(await isCached(store, `${registry.host}/demo/busybox:latest`), true);
    const s = statfsSync(root);
    assert.ok(s.bavail / s.blocks >= 0.6, `free: ${(s.bavail / s.blocks).toFixed(2)}`);
  });
});

it('a multi-arch index resolves to the host platform (or the configured one)', async () => {
  const amd64 = await busyboxImage();
  const armLayer = await buildLayer([{ type: 'file', path: 'arch', content: 'arm64' }]);
  const arm64 = buildImage({ layers: [armLayer], platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } });
  // Like buildx attestations: a manifest for platform unknown/unknown that must never be picked.
  const attestation = buildImage({ layers: [armLayer], platform: { os: 'unknown', architecture: 'unknown' } });
  const index = buildIndex([attestation, arm64, amd64]);
  const indexDigest = await pushImage(registry.url, 'multi/arch', 'latest', index);
  const store = await newStore({ platform: { os: 'linux', architecture: 'amd64' } });
  const image = await store.acquire(`${registry.host}/multi/arch:latest`);
  assert.equal(image.digest, indexDigest);
  assert.ok(existsSync(join(image.layerDirs[0]!, 'bin/busybox')));

  const armStore = await newStore({ platform: { os: 'linux', architecture: 'arm64' } });
  const arm = await armStore.acquire(`${registry.host}/multi/arch@${indexDigest}`);
  assert.equal(readFileSync(join(arm.layerDirs[0]!, 'arch'), 'utf8'), 'arm64');

  const s390 = await newStore({ platform: { os: 'linux', architecture: 's390x' } });
  await assert.rejects(s390.acquire(`${registry.host}/multi/arch:latest`), (e: unknown) => {
    assert.ok(e instanceof InvalidImageError);
    assert.match(e.message, /no manifest for linux\/s390x \(available: linux\/arm64\/v8, linux\/amd64\)/);
    return true;
  });
});

it('Docker schema 2 images pull like OCI ones', async () => {
  const image = await busyboxImage({ format: 'docker', config: { User: 'app', WorkingDir: '/home/app', Entrypoint: ['/bin/sh', '-c'] } });
  await pushImage(registry.url, 'docker/format', 'v2', image);
  const store = await newStore();
  const acquired = await store.acquire(`${registry.host}/docker/format:v2`);
  assert.deepEqual(acquired.config, { env: [DEFAULT_PATH], entrypoint: ['/bin/sh', '-c'], cmd: ['sh'], workingDir: '/home/app', user: 'app' });
});

it('pull policies: never fails when absent, always re-resolves the tag', async () => {
  const store = await newStore();
  const ref = `${registry.host}/policy/busybox:moving`;
  await pushImage(registry.url, 'policy/busybox', 'moving', await busyboxImage());
  await assert.rejects(store.acquire(ref, { policy: 'never' }), ImageNotFoundError);
  const first = await store.acquire(ref);
  assert.equal((await store.acquire(ref, { policy: 'never' })).pulled, false);

  const extra = await buildLayer([{ type: 'file', path: 'v2', content: 'two' }]);
  await pushImage(registry.url, 'policy/busybox', 'moving', await busyboxImage({ extraLayers: [extra] }));
  assert.equal((await store.acquire(ref)).digest, first.digest, 'if-not-present keeps the cached tag');
  const second = await store.acquire(ref, { policy: 'always' });
  assert.notEqual(second.digest, first.digest);
  assert.equal(second.layerDirs.length, 2);
  assert.equal(second.layerDirs[0], first.layerDirs[0], 'the shared base layer is not pulled again');
  assert.equal((await store.acquire(ref)).digest, second.digest);
});

it('policy always with freshForMs: a tag resolved within the window is taken from the cache (one registry request per burst); past it, or without it, asked again', async () => {
  const store = await newStore();
  const ref = `${registry.host}/policy/busybox:fresh`;
  const version = async (v: string) => busyboxImage({ extraLayers: [await buildLayer([{ type: 'file', path: 'version', content: v }])] });
  await pushImage(registry.url, 'policy/busybox', 'fresh', await version('1'));
  const first = await store.acquire(ref, { policy: 'always', freshForMs: 3_600_000 });
  await pushImage(registry.url, 'policy/busybox', 'fresh', await version('2'));
  assert.equal((await store.acquire(ref, { policy: 'always', freshForMs: 3_600_000 })).digest, first.digest, 'resolved moments ago: not asked again');
  const asked = await store.acquire(ref, { policy: 'always' });
  assert.notEqual(asked.digest, first.digest, 'without a window the registry is asked');
  await pushImage(registry.url, 'policy/busybox', 'fresh', await version('3'));
  assert.equal((await store.acquire(ref, { policy: 'always', freshForMs: 3_600_000 })).digest, asked.digest, 'the window counts from the last resolution');
  assert.notEqual((await store.acquire(ref, { policy: 'always', freshForMs: 1 })).digest, asked.digest, 'past the window the registry is asked');
});

it('an unreachable registry is ImagePullFailedError (retryable)', async () => {
  const store = await newStore();
  await assert.rejects(store.acquire('127.0.0.1:1/x/y:z'), (e: unknown) => {
    assert.ok(e instanceof ImagePullFailedError);
    assert.equal(e.retryable, true);
    assert.match(e.message, /cannot reach registry 127\.0\.0\.1:1: ECONNREFUSED/);
    return true;
  });
});

it('whiteouts and opaque dirs become overlay whiteouts that hide lower files', async (t) => {
  const upper = await buildLayer([
    { type: 'whiteout', path: 'etc/hostname' },
    { type: 'dir', path: 'home' },
    { type: 'opaque', path: 'home' },
    { type: 'file', path: 'home/new', content: 'new' },
  ]);
  await pushImage(registry.url, 'wh/busybox', 'latest', await busyboxImage({ extraLayers: [upper] }));
  const store = await newStore();
  const image = await store.acquire(`${registry.host}/wh/busybox:latest`);
  const top = image.layerDirs[1]!;
  const wh = lstatSync(join(top, 'etc/hostname'));
  assert.ok(wh.isCharacterDevice());
  assert.equal(wh.rdev, 0);
  assert.equal(existsSync(join(top, 'etc/.wh.hostname')), false);
  const xattr = execFileSync('getfattr', ['--absolute-names', '--only-values', '-n', 'trusted.overlay.opaque', join(top, 'home')], { encoding: 'utf8' });
  assert.equal(xattr, 'y');

  // Mount them for real when the host allows it.
  const merged = await stores.root();
  const lower = [...image.layerDirs].reverse().join(':');
  try {
    await promisify(execFile)('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lower}`, merged]);
  } catch (e) {
    t.skip(`overlay mount unavailable: ${String(e)}`);
    return;
  }
  try {
    assert.equal(existsSync(join(merged, 'etc/hostname')), false);
    assert.ok(existsSync(join(merged, 'etc/passwd')));
    assert.deepEqual(readdirSync(join(merged, 'home')), ['new']);
  } finally {
    await promisify(execFile)('umount', [merged]);
  }
});

it('layers shared between images are unpacked once', async () => {
  const root = await stores.root();
  const store = await newStore({ root });
  const a = await store.acquire(`${registry.host}/demo/busybox:latest`);
  const extra = await buildLayer([{ type: 'file', path: 'hello', content: 'world' }]);
  await pushImage(registry.url, 'shared/busybox', 'latest', await busyboxImage({ extraLayers: [extra] }));
  const b = await store.acquire(`${registry.host}/shared/busybox:latest`);
  assert.equal(b.layerDirs[0], a.layerDirs[0]);
  assert.equal(readdirSync(join(root, 'layers/sha256')).length, 2);
  assert.deepEqual(filesUnder(join(root, 'tmp')), []);
});

/** Random-content single-layer images (no shared layers), ~`size` bytes unpacked each. */
async function distinctImage(repo: string, size: number): Promise<string> {
  const layer = await buildLayer([{ type: 'file', path: 'data', content: randomBytes(size) }], { compression: 'none' });
  await pushImage(registry.url, repo, 'latest', buildImage({ layers: [layer] }));
  return `${registry.host}/${repo}:latest`;
}

it('an eviction asked while a job holds the image happens once it is released, not never', async () => {
  // DELETE /v1/images sent on a job's answer reached the worker before the job's teardown released
  // the image: 'in_use', and the request was dropped (the image stayed cached for good).
  const image = await distinctImage('evict/held', 1 << 20);
  const store = await newStore();
  const held = await store.acquire(image);
  const listed = async () => (await store.list()).map((l) => l.image);
  assert.equal((await store.evict(held.digest)).result, 'in_use');
  assert.deepEqual(await listed(), [image], 'kept while the job holds it');
  const again = await store.acquire(image); // a job starting meanwhile holds it too
  held.release();
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(await listed(), [image], 'kept while another job holds it');
  again.release();
  await waitUntil(async () => (await listed()).length === 0, 5_000, 'the image to be evicted once released');
  assert.equal(existsSync(held.layerDirs[0]!), false, 'its layer dir is gone');
});

it('over the disk budget, least recently used images nobody holds are evicted', async () => {
  const MB = 1 << 20;
  const [one, two, three, four] = await Promise.all(['lru/one', 'lru/two', 'lru/three', 'lru/four'].map((r) => distinctImage(r, MB)));
  const root = await stores.root();
  const store = await newStore({ root, maxCacheBytes: 2.5 * MB });
  const held = await store.acquire(one!);
  (await store.acquire(two!)).release();
  (await store.acquire(three!)).release();
  assert.deepEqual((await store.list()).map((l) => l.image).sort(), [one, three].sort(), 'two was evicted; one is held so it stays');
  assert.ok(existsSync(held.layerDirs[0]!));
  held.release();
  (await store.acquire(four!)).release();
  assert.deepEqual((await store.list()).map((l) => l.image).sort(), [three, four].sort());
  assert.equal(existsSync(held.layerDirs[0]!), false, 'the evicted layer dir is gone');
  assert.ok((await store.cacheBytes()) <= 2.5 * MB);
  assert.equal(readdirSync(join(root, 'layers/sha256')).length, 2);
  assert.equal(readdirSync(join(root, 'images')).length, 2);
  // gc() with nothing unreferenced frees nothing
  assert.equal(await store.gc(), 0);
});

/** Pushes a one-layer image of ~`size` random bytes under `repo:tag` (replacing what the tag named). */
async function pushDistinct(repo: string, tag: string, size: number): Promise<void> {
  const layer = await buildLayer([{ type: 'file', path: 'data', content: randomBytes(size) }], { compression: 'none' });
  await pushImage(registry.url, repo, tag, buildImage({ layers: [layer] }));
}

it('a tag that moved leaves its old image on disk only while a job holds it: released, its files go, without any budget', async () => {
  const root = await stores.root();
  const store = await newStore({ root });
  const ref = `${registry.host}/moving/tag:latest`;
  await pushDistinct('moving/tag', 'latest', 100_000);
  const first = await store.acquire(ref); // a job runs it
  await pushDistinct('moving/tag', 'latest', 100_000);
  const second = await store.acquire(ref, { policy: 'always' });
  second.release();
  assert.notEqual(second.digest, first.digest);
  assert.ok(existsSync(first.layerDirs[0]!), 'the running job\'s image stays while it runs');
  first.release();
  await waitUntil(async () => !existsSync(first.layerDirs[0]!), 10_000, 'the old digest\'s layer directory removed once its last job released it (before: kept for good)');
  assert.equal(readdirSync(join(root, 'images')).length, 1, 'one image record: the tag\'s current one');
  // Moved again while nobody holds the old one: it goes with the pull itself.
  await pushDistinct('moving/tag', 'latest', 100_000);
  (await store.acquire(ref, { policy: 'always' })).release();
  assert.equal(existsSync(second.layerDirs[0]!), false, 'an unheld old digest goes with the pull that moved its tag');
  assert.deepEqual(readdirSync(join(root, 'layers/sha256')).length, 1);
  assert.deepEqual((await store.list()).map((l) => l.image), [ref]);
});

/**
 * Two stores on one cache directory (two workers of a host): `holder` runs the tag's old digest
 * while `puller` moves the tag, then `holder` stops with that job's hold (a worker stopped or
 * crashed mid-job). Returns the old image's layer directory, now named by no reference.
 */
async function oldDigestLeftBehind(root: string, puller: ImageStore, repo: string, size: number): Promise<string> {
  const holder = await newStore({ root });
  const ref = `${registry.host}/${repo}:latest`;
  await pushDistinct(repo, 'latest', size);
  const old = await holder.acquire(ref);
  await pushDistinct(repo, 'latest', size);
  (await puller.acquire(ref, { policy: 'always' })).release();
  assert.ok(existsSync(old.layerDirs[0]!), 'held while the tag moved: kept');
  await holder.close();
  return old.layerDirs[0]!;
}

it('over the disk budget, an old digest no reference names goes before any image a reference names', async () => {
  const MB = 1 << 20;
  const root = await stores.root();
  const store = await newStore({ root, maxCacheBytes: 3.5 * MB });
  const other = await distinctImage('budget/other', MB);
  (await store.acquire(other)).release(); // the least recently used image
  const oldDir = await oldDigestLeftBehind(root, store, 'budget/moving', MB); // 3 MB cached
  const third = await distinctImage('budget/third', MB);
  (await store.acquire(third)).release(); // 4 MB: over the budget
  assert.equal(existsSync(oldDir), false, 'the old digest went');
  assert.deepEqual((await store.list()).map((l) => l.image).sort(), [other, `${registry.host}/budget/moving:latest`, third].sort(), 'no image a reference names was evicted (before: other went first)');
});

it('a worker starting on a cache with an old digest no reference names removes it', async () => {
  const root = await stores.root();
  const oldDir = await oldDigestLeftBehind(root, await newStore({ root }), 'restart/moving', 100_000);
  const restarted = await newStore({ root });
  await restarted.warmUp();
  await waitUntil(async () => !existsSync(oldDir), 10_000, 'the old digest removed after the start (before: kept for good)');
  assert.deepEqual((await restarted.list()).map((l) => l.image), [`${registry.host}/restart/moving:latest`]);
  assert.equal(readdirSync(join(root, 'images')).length, 1);
});

it('two stores sharing a cache directory download each layer once', async () => {
  const agent = new CountingAgent();
  const root = await stores.root();
  try {
    const ref = await distinctImage('shared/root', 512 * 1024);
    const a = await newStore({ root, dispatcher: agent });
    const b = await newStore({ root, dispatcher: agent });
    const [x, y] = await Promise.all([a.acquire(ref), b.acquire(ref)]);
    assert.deepEqual(x.layerDirs, y.layerDirs);
    const layerHex = x.layerDirs[0]!.split('/').pop()!;
    assert.equal(agent.paths.filter((p) => p.endsWith(`/blobs/sha256:${layerHex}`)).length, 1, 'the layer was downloaded once');
    // a third store started later finds it on disk without the registry
    const c = await newStore({ root, dispatcher: agent });
    const before = agent.paths.length;
    assert.equal((await c.acquire(ref)).pulled, false);
    assert.equal(agent.paths.length, before);
  } finally {
    await agent.close();
  }
});

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...filesUnder(path));
    else out.push(path);
  }
  return out;
}

it('zstd, uncompressed and gzip layers stack in one image (many layers)', async () => {
  const zstd = await buildLayer([{ type: 'file', path: 'etc/zstd.txt', content: 'zstd!'.repeat(1000) }], { compression: 'zstd' });
  const plain = await buildLayer([{ type: 'file', path: 'etc/plain.txt', content: 'plain' }], { compression: 'none' });
  const many = await Promise.all(
    Array.from({ length: 20 }, (_, i) =>
      buildLayer([
        { type: 'file', path: `layers/${i}`, content: String(i), mode: 0o600, uid: 1000, gid: 1000 },
        ...(i > 0 ? [{ type: 'whiteout' as const, path: `layers/${i - 1}` }] : []),
      ]),
    ),
  );
  await pushImage(registry.url, 'mixed/layers', 'latest', await busyboxImage({ extraLayers: [zstd, plain, ...many], config: { User: 'app' } }));
  const store = await newStore();
  const image = await store.acquire(`${registry.host}/mixed/layers:latest`);
  assert.equal(image.layerDirs.length, 23);
  assert.equal(readFileSync(join(image.layerDirs[1]!, 'etc/zstd.txt'), 'utf8'), 'zstd!'.repeat(1000));
  assert.equal(readFileSync(join(image.layerDirs[2]!, 'etc/plain.txt'), 'utf8'), 'plain');
  const last = image.layerDirs[22]!;
  const st = statSync(join(last, 'layers/19'));
  assert.deepEqual([st.mode & 0o777, st.uid, st.gid], [0o600, 1000, 1000]);
  assert.ok(lstatSync(join(last, 'layers/18')).isCharacterDevice());
  assert.equal(image.config.user, 'app');
});

it('close() is idempotent: a second call waits for the first and does not fail', async () => {
  const store = await newStore();
  (await store.acquire(`${registry.host}/test/busybox:latest`)).release();
  await Promise.all([store.close(), store.close()]);
  await store.close();
});
