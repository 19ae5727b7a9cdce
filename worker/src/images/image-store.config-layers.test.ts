/**
 * A pull downloads an image's config and its layers at once (pull/image-puller.ts): a layer needs
 * its diffID only once its blob is read. Against the in-process registry, whose hooks hold back the
 * config or trickle a layer.
 */
import { test, before, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { InvalidImageError } from '../../../core/src/errors.ts';
import { busyboxLayer } from '../../../test/fixtures/build-images.ts';
import { startFakeRegistry, type FakeRegistry } from '../../../test/fixtures/fake-registry.ts';
import { buildImage, type Blob, type BuiltImage } from '../../../test/fixtures/oci-builder.ts';
import { TempImageStores } from '../../../test/harness/temp-image-store.ts';

const it = (name: string, fn: (t: TestContext) => Promise<void>) => test(name, { timeout: 60_000 }, fn);

let linux: BuiltImage;
let windows: BuiltImage;
let fake: FakeRegistry;
const stores = new TempImageStores('sbx-images-config-');

before(async () => {
  const layer = await busyboxLayer();
  linux = buildImage({ layers: [layer] });
  windows = buildImage({ layers: [layer], platform: { os: 'windows', architecture: 'amd64' } });
  fake = await startFakeRegistry();
  fake.add('config/linux', 'latest', linux);
  fake.add('config/windows', 'latest', windows);
});

after(async () => {
  await stores.cleanup();
  fake.hook = null;
  await fake.stop();
});

/** Answers the config blob's request after `ms`, with its bytes; notes when. */
function holdConfig(image: BuiltImage, ms: number): { answeredAt: Promise<number> } {
  let answered: (at: number) => void = () => {};
  const answeredAt = new Promise<number>((r) => (answered = r));
  const previous = fake.hook;
  fake.hook = (req: IncomingMessage, res: ServerResponse, ctx: { blob: Blob | undefined; count: number }) => {
    if (!req.url?.endsWith(`/blobs/${image.config.digest}`) || ctx.blob === undefined) return previous?.(req, res, ctx) ?? false;
    const blob = ctx.blob;
    setTimeout(() => {
      res.writeHead(200, { 'content-type': blob.mediaType, 'content-length': String(blob.bytes.length) });
      res.end(blob.bytes);
      answered(performance.now());
    }, ms);
    return true;
  };
  return { answeredAt };
}

it('a slow config does not hold back the layers: they download while it comes', async () => {
  const store = await stores.make({});
  let layerAskedAt: number | null = null;
  fake.hook = (req: IncomingMessage) => {
    if (req.url?.endsWith(`/blobs/${linux.layers[0]!.digest}`)) layerAskedAt ??= performance.now();
    return false; // served as usual
  };
  const config = holdConfig(linux, 400);
  try {
    const image = await store.acquire(`${fake.host}/config/linux:latest`);
    const answeredAt = await config.answeredAt;
    assert.ok(layerAskedAt !== null, 'the layer was downloaded');
    assert.ok(layerAskedAt < answeredAt, `the layer was asked for ${(layerAskedAt - answeredAt).toFixed(0)} ms after the config came`);
    assert.equal(image.layerDirs.length, 1);
    image.release();
  } finally {
    fake.hook = null;
  }
});

it('a config that fails while a layer downloads ends the pull with its error at once, and the download stops', async () => {
  const store = await stores.make({});
  const layer = windows.layers[0]!;
  let socketClosed: Promise<void> | null = null;
  // The layer trickles: 1 byte every 100 ms, far longer than the test.
  fake.hook = (req: IncomingMessage, res: ServerResponse, ctx: { blob: Blob | undefined }) => {
    if (!req.url?.endsWith(`/blobs/${layer.digest}`) || ctx.blob === undefined) return false;
    res.writeHead(200, { 'content-type': layer.mediaType, 'content-length': String(layer.bytes.length) });
    let sent = 0;
    const timer = setInterval(() => res.write(layer.bytes.subarray(sent, ++sent)), 100);
    socketClosed = new Promise((r) => req.socket.once('close', () => (clearInterval(timer), r())));
    return true;
  };
  holdConfig(windows, 300); // then says: built for windows
  try {
    const t0 = performance.now();
    await assert.rejects(store.acquire(`${fake.host}/config/windows:latest`), (e: unknown) => e instanceof InvalidImageError && /built for windows/.test(e.message));
    assert.ok(performance.now() - t0 < 10_000, 'the pull waited for the layer');
    assert.ok(socketClosed, 'the layer was not asked for while the config came');
    await socketClosed; // the trickling download was given up (the test times out otherwise)
  } finally {
    fake.hook = null;
  }
});
