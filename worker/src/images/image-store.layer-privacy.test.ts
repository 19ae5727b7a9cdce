/**
 * A layer that only one tenant's credentials fetched is not handed to another tenant on the strength
 * of its digest: a tenant's own registry can put any digest in a manifest, and before, the worker
 * then unpacked nothing and used the cached layer, so another tenant's private files were readable
 * by anyone who knew a layer digest ("B got image; secret files: [ 'tenant A secret\n' ]"). Now such
 * a pull fetches the blob from its own registry first (verified; the bytes are the cached layer's),
 * and only then may use the layer. Layers fetched anonymously stay shared as before, with no fetch.
 * The same for an image's config (its Env, Cmd…), whose record an index of one's own registry could
 * name by the platform manifest's digest alone.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { InvalidImageError } from '../../../core/src/errors.ts';
import { busyboxImage } from '../../../test/fixtures/build-images.ts';
import { startFakeRegistry, type FakeRegistry } from '../../../test/fixtures/fake-registry.ts';
import { buildImage, buildIndex, buildLayer, type BuiltImage, type BuiltLayer } from '../../../test/fixtures/oci-builder.ts';
import { TempImageStores } from '../../../test/harness/temp-image-store.ts';

const A = { username: 'tenant-a', password: 'a-password' };
const C = { username: 'tenant-c', password: 'c-password' };
const stores = new TempImageStores('sbx-layer-privacy-');
const registries: FakeRegistry[] = [];
let base: BuiltImage;
let secret: BuiltLayer;

before(async () => {
  base = await busyboxImage();
  secret = await buildLayer([{ type: 'file', path: 'secret.txt', content: 'tenant A secret\n' }]);
});
after(async () => {
  await stores.cleanup();
  for (const r of registries) await r.stop();
});

/** A registry serving `image` as repo:latest: behind Basic auth, without one blob (404), or with other bytes for one. */
async function registryWith(repo: string, image: BuiltImage, opts: { auth?: { username: string; password: string }; withoutBlob?: string; wrongBytes?: string } = {}): Promise<FakeRegistry> {
  const r = await startFakeRegistry();
  registries.push(r);
  r.add(repo, 'latest', image);
  const expected = opts.auth && `Basic ${Buffer.from(`${opts.auth.username}:${opts.auth.password}`).toString('base64')}`;
  r.hook = (req, res) => {
    if (expected && req.headers.authorization !== expected) {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="private"' });
      res.end();
      return true;
    }
    const path = req.url ?? '';
    if (opts.withoutBlob && path.endsWith(opts.withoutBlob)) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end('{"errors":[{"code":"BLOB_UNKNOWN","message":"not here"}]}');
      return true;
    }
    if (opts.wrongBytes && path.endsWith(opts.wrongBytes)) {
      const size = image.layers.find((l) => l.digest === opts.wrongBytes)!.size;
      res.writeHead(200, { 'content-length': size });
      res.end(Buffer.alloc(size, 0x41));
      return true;
    }
    return false;
  };
  return r;
}

const blobFetches = (r: FakeRegistry, digest: string) => r.requests.filter((q) => q.method === 'GET' && q.path.endsWith(`/blobs/${digest}`)).length;
const secretIn = (layerDirs: string[]) => layerDirs.map((d) => join(d, 'secret.txt')).filter(existsSync).map((f) => readFileSync(f, 'utf8'));

test("another tenant's registry naming a privately fetched layer without having it gets invalid_image, not the layer", async () => {
  const store = await stores.make();
  const privateImage = buildImage({ layers: [...base.layers, secret] });
  const privateRegistry = await registryWith('a/private', privateImage, { auth: A });
  const a = await store.acquire(`${privateRegistry.host}/a/private:latest`, { credentials: A });
  assert.deepEqual(secretIn(a.layerDirs), ['tenant A secret\n']);
  a.release();

  // B's manifest: its own config, the public base layer and A's secret layer's digest.
  const attack = buildImage({ layers: [...base.layers, secret], config: { Cmd: ['cat', '/secret.txt'] } });
  const lacking = await registryWith('b/attack', attack, { withoutBlob: secret.digest });
  await assert.rejects(store.acquire(`${lacking.host}/b/attack:latest`), (e: unknown) => {
    assert.ok(e instanceof InvalidImageError, String(e));
    assert.match(e.message, new RegExp(`its blob ${secret.digest} is missing from the registry`));
    return true;
  });
  assert.equal(blobFetches(lacking, secret.digest), 1, 'the pull asked its own registry for the blob');

  // Other bytes under that digest: refused by the digest check.
  const lying = await registryWith('b/attack', attack, { wrongBytes: secret.digest });
  await assert.rejects(store.acquire(`${lying.host}/b/attack:latest`), (e: unknown) => e instanceof InvalidImageError && /sha256|digest/.test(e.message));

  // With credentials of another tenant (C), the same.
  await assert.rejects(store.acquire(`${lacking.host}/b/attack:latest`, { credentials: C }), InvalidImageError);

  // A again, another image of A's with the same layer on the same registry: A's own, no fetch of it.
  // (Credentials are per registry: the same ones on another registry are another viewer.)
  privateRegistry.add('a/private2', 'latest', buildImage({ layers: [...base.layers, secret], config: { Cmd: ['true'] } }));
  const before = blobFetches(privateRegistry, secret.digest);
  (await store.acquire(`${privateRegistry.host}/a/private2:latest`, { credentials: A })).release();
  assert.equal(blobFetches(privateRegistry, secret.digest), before, "the layer is A's own: not fetched again");
});

test('a registry that has the blob proves it once; anonymously fetched layers are shared without a fetch', async () => {
  const store = await stores.make();
  const privateRegistry = await registryWith('a/private', buildImage({ layers: [...base.layers, secret] }), { auth: A });
  (await store.acquire(`${privateRegistry.host}/a/private:latest`, { credentials: A })).release();
  const baseFetches = base.layers.map((l) => blobFetches(privateRegistry, l.digest));
  assert.deepEqual(baseFetches, base.layers.map(() => 1));

  // B's registry has the bytes: it fetches them once, then uses the cached layer.
  const holder = await registryWith('b/has-it', buildImage({ layers: [...base.layers, secret], config: { Cmd: ['cat', '/secret.txt'] } }));
  const b = await store.acquire(`${holder.host}/b/has-it:latest`);
  assert.deepEqual(secretIn(b.layerDirs), ['tenant A secret\n']);
  b.release();
  assert.equal(blobFetches(holder, secret.digest), 1);
  // Fetched anonymously now: anyone's pull that names it uses it without a fetch.
  const other = await registryWith('c/same-layer', buildImage({ layers: [...base.layers, secret], config: { Cmd: ['true'] } }), { withoutBlob: secret.digest });
  (await store.acquire(`${other.host}/c/same-layer:latest`)).release();
  assert.equal(blobFetches(other, secret.digest), 0);

  // A public image first: its layers are everyone's from the start (no extra fetch for a later pull).
  const fresh = await stores.make();
  const publicRegistry = await registryWith('p/base', base);
  (await fresh.acquire(`${publicRegistry.host}/p/base:latest`)).release();
  const sharing = await registryWith('a/on-base', buildImage({ layers: [...base.layers, secret] }), { auth: A });
  (await fresh.acquire(`${sharing.host}/a/on-base:latest`, { credentials: A })).release();
  assert.deepEqual(base.layers.map((l) => blobFetches(sharing, l.digest)), base.layers.map(() => 0), 'public base layers are not fetched again');
});

test("an index naming a privately fetched image's manifest digest does not get its config (Env, Cmd) without serving it", async () => {
  const store = await stores.make();
  // Public base layers first (everyone's), then A's image on them: only its config is A's.
  const publicRegistry = await registryWith('p/base', base);
  (await store.acquire(`${publicRegistry.host}/p/base:latest`)).release();
  const privateImage = buildImage({ layers: base.layers, config: { Env: ['API_TOKEN=tenant-a-token'], Cmd: ['true'] } });
  const privateRegistry = await registryWith('a/with-token', privateImage, { auth: A });
  const a = await store.acquire(`${privateRegistry.host}/a/with-token:latest`, { credentials: A });
  assert.ok(a.config.env.includes('API_TOKEN=tenant-a-token'));
  a.release();

  // B's registry: an index naming A's platform manifest by digest; neither that manifest nor its config.
  const index = buildIndex([privateImage]);
  const lacking = await startFakeRegistry();
  registries.push(lacking);
  lacking.addManifest('b/index', 'latest', index.manifest);
  await assert.rejects(store.acquire(`${lacking.host}/b/index:latest`), (e: unknown) => {
    assert.ok(e instanceof InvalidImageError, String(e));
    assert.match(e.message, new RegExp(`its blob ${privateImage.config.digest} is missing from the registry`));
    return true;
  });

  // A registry that serves the config may use it (it had it anyway), from then on without a fetch.
  const holder = await startFakeRegistry();
  registries.push(holder);
  holder.addManifest('b/index', 'latest', index.manifest);
  holder.hook = (req, res) => {
    if (!req.url?.endsWith(privateImage.config.digest)) return false;
    res.writeHead(200, { 'content-length': privateImage.config.size });
    res.end(privateImage.config.bytes);
    return true;
  };
  const b = await store.acquire(`${holder.host}/b/index:latest`);
  assert.ok(b.config.env.includes('API_TOKEN=tenant-a-token'));
  b.release();
  assert.equal(blobFetches(holder, privateImage.config.digest), 1);
});
