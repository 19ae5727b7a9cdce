/**
 * Transport behaviour the real registry will not show on demand: redirects to another origin,
 * 429/5xx and resets with retries, oversize or lying responses.
 */
import { test, before, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { ImagePullFailedError, InvalidImageError } from '../../../../core/src/errors.ts';
import { busyboxImage } from '../../../../test/fixtures/build-images.ts';
import { startBlobHost, startFakeRegistry, type FakeRegistry } from '../../../../test/fixtures/fake-registry.ts';
import { buildImage, buildLayer, sha256, type BuiltImage } from '../../../../test/fixtures/oci-builder.ts';
import { ImageStore, type ImageStoreOptions } from '../image-store.ts';
import { TempImageStores } from '../../../../test/harness/temp-image-store.ts';

/** Integration tests fail after a minute instead of stalling the suite. */
const it = (name: string, fn: (t: TestContext) => Promise<void>) => test(name, { timeout: 60_000 }, fn);

let image: BuiltImage;
let fake: FakeRegistry;
const cleanups: Array<() => Promise<void>> = [];

before(async () => {
  image = await busyboxImage();
  fake = await startFakeRegistry();
  fake.add('lib/busybox', 'latest', image);
});

after(async () => {
  await stores.cleanup();
  for (const c of cleanups.reverse()) await c();
  await fake.stop();
});

const stores = new TempImageStores('sbx-images-client-');
const store = (opts: Partial<ImageStoreOptions> = {}): Promise<ImageStore> => stores.make({ retry: { attempts: 4, baseDelayMs: 5, maxDelayMs: 50, deadlineMs: 5_000 }, ...opts });

const layerPath = () => `/v2/lib/busybox/blobs/${image.layers[0]!.digest}`;

it('blob redirects to another origin are followed without our Authorization', async () => {
  const cdn = await startBlobHost();
  cleanups.push(cdn.stop);
  cdn.serve.set('/layer', image.layers[0]!.bytes);
  fake.hook = (req, res) => {
    if (req.headers.authorization !== 'Bearer good') {
      res.writeHead(401, { 'www-authenticate': `Bearer realm="${fake.url}/token",service="fake"` });
      res.end('{"errors":[{"code":"UNAUTHORIZED","message":"auth required"}]}');
      return true;
    }
    if (req.url === layerPath()) {
      res.writeHead(307, { location: `${cdn.url}/layer?sig=abc` });
      res.end();
      return true;
    }
    return false;
  };
  const originalHook = fake.hook;
  fake.hook = (req, res, ctx) => {
    if (req.url?.startsWith('/token')) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ token: 'good', expires_in: 60 }));
      return true;
    }
    return originalHook(req, res, ctx);
  };
  try {
    const acquired = await (await store()).acquire(`${fake.host}/lib/busybox:latest`);
    assert.equal(acquired.pulled, true);
    assert.deepEqual(cdn.requests.map((r) => [r.path, r.authorization]), [['/layer?sig=abc', undefined]]);
    assert.ok(fake.requests.some((r) => r.path === layerPath() && r.authorization === 'Bearer good'));
  } finally {
    fake.hook = null;
  }
});

it('503 and 429 are retried with backoff, honouring Retry-After', async () => {
  fake.hook = (req, res, { count }) => {
    if (req.url?.includes('/manifests/') && count <= 2) {
      res.writeHead(503, { 'content-type': 'application/json' });
      res.end('{"errors":[{"code":"UNAVAILABLE","message":"try later"}]}');
      return true;
    }
    if (req.url === layerPath() && count === 1) {
      res.writeHead(429, { 'retry-after': '0' });
      res.end();
      return true;
    }
    return false;
  };
  try {
    const fresh = `retry${Date.now()}`;
    fake.add(fresh, 'latest', image);
    const acquired = await (await store()).acquire(`${fake.host}/${fresh}:latest`);
    assert.equal(acquired.pulled, true);
    assert.equal(fake.requests.filter((r) => r.path === `/v2/${fresh}/manifests/latest`).length, 3);
  } finally {
    fake.hook = null;
  }
});

it('a connection reset mid-layer restarts that layer', async () => {
  const name = `reset${Date.now()}`;
  fake.add(name, 'latest', image);
  const path = `/v2/${name}/blobs/${image.layers[0]!.digest}`;
  fake.hook = (req, res, { blob, count }) => {
    if (req.url === path && count === 1 && blob) {
      res.writeHead(200, { 'content-length': blob.size });
      res.write(blob.bytes.subarray(0, blob.size >> 1), () => res.destroy());
      return true;
    }
    return false;
  };
  try {
    const acquired = await (await store()).acquire(`${fake.host}/${name}:latest`);
    assert.equal(acquired.pulled, true);
    assert.equal(fake.requests.filter((r) => r.path === path).length, 2);
  } finally {
    fake.hook = null;
  }
});

it('a registry that keeps failing is ImagePullFailedError with its message', async () => {
  fake.hook = (req, res) => {
    res.writeHead(500, { 'content-type': 'application/json' });
    res.end('{"errors":[{"code":"UNKNOWN","message":"disk on fire"}]}');
    return true;
  };
  try {
    await assert.rejects((await store()).acquire(`${fake.host}/lib/busybox:latest`), (e: unknown) => {
      assert.ok(e instanceof ImagePullFailedError, String(e));
      assert.equal(e.retryable, true);
      assert.match(e.message, /HTTP 500: UNKNOWN: disk on fire/);
      return true;
    });
  } finally {
    fake.hook = null;
  }
});

it('a blob longer than its descriptor is cut off; an oversize manifest is refused', async () => {
  const name = `long${Date.now()}`;
  fake.add(name, 'latest', image);
  fake.hook = (req, res, { blob }) => {
    if (blob && req.url?.startsWith(`/v2/${name}/`) && blob.digest === image.layers[0]!.digest) {
      res.writeHead(200); // no content-length: chunked, so only the byte count can catch it
      res.end(Buffer.concat([blob.bytes, Buffer.alloc(1024)]));
      return true;
    }
    return false;
  };
  try {
    await assert.rejects((await store()).acquire(`${fake.host}/${name}:latest`), (e: unknown) => e instanceof InvalidImageError && /larger than the \d+ bytes its descriptor declares/.test(e.message));
  } finally {
    fake.hook = null;
  }
  await assert.rejects((await store({ maxManifestBytes: 100 })).acquire(`${fake.host}/lib/busybox:latest`), /manifest is larger than the 100-byte limit/);
});

it('a manifest fetched by digest must hash to that digest', async () => {
  const other = buildImage({ layers: [await buildLayer([{ type: 'file', path: 'x', content: 'x' }])] });
  const claimed = sha256('not the bytes');
  fake.addManifest('liar/image', claimed, other.manifest);
  await assert.rejects((await store()).acquire(`${fake.host}/liar/image@${claimed}`), (e: unknown) => e instanceof InvalidImageError && /fetched by digest/.test(e.message));
});

it('a redirect whose Location is not a URL is ImagePullFailedError saying so, not retried', async () => {
  let asked = 0;
  fake.hook = (req, res) => {
    if (req.url !== layerPath()) return false;
    asked++;
    res.writeHead(302, { location: 'http://%zz/blob' });
    res.end();
    return true;
  };
  try {
    await assert.rejects((await store()).acquire(`${fake.host}/lib/busybox:latest`), (e: unknown) => {
      assert.ok(e instanceof ImagePullFailedError, String(e));
      assert.equal(e.retryable, false);
      assert.match(e.message, /answered HTTP 302 with a Location that is not a URL: "http:\/\/%zz\/blob"/);
      return true;
    });
    assert.equal(asked, 1, 'asked once: another try would get the same answer');
  } finally {
    fake.hook = null;
  }
});
