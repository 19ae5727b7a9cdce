/**
 * Two pulls of one layer from one registry share its download (pull/image-puller.ts, single-flight):
 * what the joining pull gets must not depend on the image of the pull that started it. Each pull
 * checks the layer's diffID against its own config; a shared download that failed for the other
 * image's reasons (its config's diffID, its repository's answer) is fetched again by the joiner;
 * and no error a pull ends with names the other image. Against the in-process registry, which holds
 * the layer's first download until the second pull has asked for its config (so it joined).
 */
import { test, before, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import { startFakeRegistry, type FakeRegistry } from '../../../test/fixtures/fake-registry.ts';
import { buildImage, buildLayer, type Blob, type BuiltImage, type BuiltLayer } from '../../../test/fixtures/oci-builder.ts';
import { TempImageStores } from '../../../test/harness/temp-image-store.ts';

const it = (name: string, fn: (t: TestContext) => Promise<void>) => test(name, { timeout: 60_000 }, fn);

let fake: FakeRegistry;
const stores = new TempImageStores('sbx-images-joined-');

before(async () => {
  fake = await startFakeRegistry();
});

after(async () => {
  await stores.cleanup();
  fake.hook = null;
  await fake.stop();
});

const WRONG = 'sha256:' + 'e'.repeat(64);

async function freshLayer(): Promise<BuiltLayer> {
  return buildLayer([{ type: 'file', path: 'data', content: randomBytes(64 * 1024) }]);
}

/**
 * Holds the first request for `layer` from `firstRepo` until `joinerConfig` has been requested (the
 * joiner's layers start with its config), and a little more; then answers it with `answer`
 * (default: the blob). Other requests are answered normally.
 */
function holdFirstDownload(firstRepo: string, layer: BuiltLayer, joinerConfig: string, answer?: (res: ServerResponse) => void): { firstHeld: Promise<void> } {
  let held: (() => void) | null = null;
  let joined = false;
  let markHeld: () => void = () => {};
  const firstHeld = new Promise<void>((r) => (markHeld = r));
  const release = () => setTimeout(() => held?.(), 300);
  fake.hook = (req: IncomingMessage, res: ServerResponse, ctx: { blob: Blob | undefined }) => {
    if (req.url === joinerConfig && !joined) {
      joined = true;
      release();
      return false;
    }
    if (req.url !== `/v2/${firstRepo}/blobs/${layer.digest}` || held !== null) return false;
    held = () => {
      if (answer) return answer(res);
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': ctx.blob!.size });
      res.end(ctx.blob!.bytes);
    };
    markHeld();
    if (joined) release();
    return true;
  };
  return { firstHeld };
}

interface Outcome {
  ok: boolean;
  code?: string;
  message?: string;
}

const outcome = (p: Promise<{ release(): void | Promise<void> }>): Promise<Outcome> =>
  p.then(
    async (img) => {
      await img.release();
      return { ok: true };
    },
    (e: unknown) => ({ ok: false, code: (e as { code?: string }).code, message: (e as Error).message }),
  );

/** Pulls `first`, then (once its layer download is held) `second`, in one store; their outcomes. */
async function pullBoth(first: string, second: string): Promise<[Outcome, Outcome, number]> {
  const store = await stores.make({});
  const a = outcome(store.acquire(`${fake.host}/${first}:latest`));
  await heldFirst;
  const b = outcome(store.acquire(`${fake.host}/${second}:latest`));
  const layerRequests = () => fake.requests.filter((r) => r.path.includes('/blobs/') && r.path.endsWith(currentLayer)).length;
  const results = await Promise.all([a, b]);
  return [results[0], results[1], layerRequests()];
}
let heldFirst: Promise<void> = Promise.resolve();
let currentLayer = '';

function add(repo: string, layer: BuiltLayer, diffIds?: string[]): BuiltImage {
  const image = buildImage({ layers: [layer], config: { Env: [`REPO=${repo}`] }, ...(diffIds ? { diffIds } : {}) });
  fake.add(repo, 'latest', image);
  return image;
}

it('a joined download whose starter\'s config has a wrong diffID: the joiner (right diffID) pulls, and no error names the other image', async () => {
  const layer = await freshLayer();
  add('alpha/wrong', layer, [WRONG]);
  const joiner = add('beta/right', layer);
  currentLayer = layer.digest;
  heldFirst = holdFirstDownload('alpha/wrong', layer, `/v2/beta/right/blobs/${joiner.config.digest}`).firstHeld;
  const [a, b] = await pullBoth('alpha/wrong', 'beta/right');
  assert.equal(a.code, 'invalid_image', JSON.stringify(a));
  assert.match(a.message!, /alpha\/wrong/);
  assert.match(a.message!, /its config says sha256:e{64}/);
  assert.deepEqual(b, { ok: true }, `the joining pull of beta/right: ${JSON.stringify(b)}`);
});

it('a joined download whose starter\'s config is right: the joiner whose config has a wrong diffID is refused, naming its own image', async () => {
  const layer = await freshLayer();
  add('gamma/right', layer);
  const joiner = add('delta/wrong', layer, [WRONG]);
  currentLayer = layer.digest;
  heldFirst = holdFirstDownload('gamma/right', layer, `/v2/delta/wrong/blobs/${joiner.config.digest}`).firstHeld;
  const [a, b] = await pullBoth('gamma/right', 'delta/wrong');
  assert.deepEqual(a, { ok: true }, JSON.stringify(a));
  assert.equal(b.code, 'invalid_image', `the joining pull of delta/wrong: ${JSON.stringify(b)}`);
  assert.match(b.message!, /delta\/wrong/);
  assert.match(b.message!, /its config says sha256:e{64}/);
  assert.doesNotMatch(b.message!, /gamma/);
  // And once cached, a later pull of it is checked against its own config too.
  const store = await stores.make({});
  assert.deepEqual(await outcome(store.acquire(`${fake.host}/gamma/right:latest`)), { ok: true });
  const again = await outcome(store.acquire(`${fake.host}/delta/wrong:latest`));
  assert.equal(again.code, 'invalid_image', JSON.stringify(again));
  assert.match(again.message!, /delta\/wrong:latest is invalid: .*its config says sha256:e{64}/);
});

it('a joined download that the starter\'s repository refuses: the joiner fetches the layer from its own and pulls', async () => {
  const layer = await freshLayer();
  add('eps/missing', layer);
  const joiner = add('zeta/has', layer);
  currentLayer = layer.digest;
  heldFirst = holdFirstDownload('eps/missing', layer, `/v2/zeta/has/blobs/${joiner.config.digest}`, (res) => {
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ errors: [{ code: 'BLOB_UNKNOWN', message: 'not in this repository' }] }));
  }).firstHeld;
  const [a, b, requests] = await pullBoth('eps/missing', 'zeta/has');
  assert.equal(a.ok, false, JSON.stringify(a));
  assert.match(a.message!, /eps\/missing/);
  assert.deepEqual(b, { ok: true }, `the joining pull of zeta/has: ${JSON.stringify(b)}`);
  assert.ok(requests >= 2, `${requests} layer requests`);
});
