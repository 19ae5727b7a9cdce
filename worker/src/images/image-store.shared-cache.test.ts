/**
 * Several processes (or stores) sharing one cache directory: an image one of them holds is never
 * evicted by another's disk budget, gc() or evict(); once released (or its holder died) it can be.
 */
import { test, before, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { startRegistry, type RunningRegistry } from '../../../test/harness/registry.ts';
import { buildImage, buildLayer, pushImage } from '../../../test/fixtures/oci-builder.ts';
import { ImageStore, type ImageStoreOptions } from './image-store.ts';
import { LOOPBACK_EGRESS } from '../../../test/harness/egress.ts';
import { TempImageStores } from '../../../test/harness/temp-image-store.ts';

const it = (name: string, fn: (t: TestContext) => Promise<void>) => test(name, { timeout: 60_000 }, fn);

const MB = 1 << 20;
const HOLDER = fileURLToPath(new URL('../../../test/fixtures/hold-image.ts', import.meta.url));

let registry: RunningRegistry;
const stores = new TempImageStores('sbx-shared-');
const children: ChildProcessWithoutNullStreams[] = [];

before(async () => {
  registry = await startRegistry();
});

after(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await stores.cleanup();
  await registry.stop();
});

const newRoot = () => stores.root();
const newStore = (opts: Partial<ImageStoreOptions>) => stores.make(opts);

/** A single-layer image of ~`size` random bytes (no layer shared with any other image). */
async function distinctImage(repo: string, size: number): Promise<string> {
  const layer = await buildLayer([{ type: 'file', path: 'data', content: randomBytes(size) }], { compression: 'none' });
  await pushImage(registry.url, repo, 'latest', buildImage({ layers: [layer] }));
  return `${registry.host}/${repo}:latest`;
}

interface Holder {
  child: ChildProcessWithoutNullStreams;
  digest: string;
  layerDirs: string[];
  release(): Promise<void>;
}

/** Starts test/fixtures/hold-image.ts: another process holding `reference` from `root`. */
async function holdInChild(root: string, reference: string): Promise<Holder> {
  const child = spawn(process.execPath, ['--import', 'tsx', HOLDER, root, reference], { stdio: ['pipe', 'pipe', 'pipe'] });
  children.push(child);
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const next = async (): Promise<string> => {
    const line = await lines.next();
    if (line.done) throw new Error(`holder exited: ${stderr}`);
    return line.value;
  };
  const held = JSON.parse(await next()) as { digest: string; layerDirs: string[] };
  return {
    child,
    ...held,
    release: async () => {
      child.stdin.write('release\n');
      assert.equal(await next(), 'released');
      await new Promise((resolve) => child.once('exit', resolve));
    },
  };
}

const markerDirs = (root: string) => (existsSync(join(root, 'inuse')) ? readdirSync(join(root, 'inuse')) : []);

it('an image another store holds survives the disk budget, gc() and evict() until it is released', async () => {
  const root = await newRoot();
  const [held, other] = await Promise.all([distinctImage('shared/held', MB), distinctImage('shared/other', MB)]);
  const holder = await newStore({ root });
  const image = await holder.acquire(held!);

  const evictor = await newStore({ root, maxCacheBytes: MB / 2 });
  (await evictor.acquire(other!)).release(); // over budget: evicts what nobody holds (the image just pulled is held meanwhile)
  assert.ok(existsSync(image.layerDirs[0]!), 'the held layer dir must stay');
  assert.ok((await evictor.list()).some((l) => l.image === held));
  assert.deepEqual(await evictor.evict(image.digest), { evicted: [], result: 'in_use', freedBytes: 0 });
  assert.equal(await evictor.gc(), 0);
  assert.ok(existsSync(image.layerDirs[0]!));
  const second = await holder.acquire(held!);
  assert.equal(second.pulled, false, 'still served from the cache');

  image.release();
  assert.equal((await evictor.evict(image.digest)).result, 'in_use', 'the second acquisition still holds it');
  second.release();
  const done = await evictor.evict(image.digest);
  assert.equal(done.result, 'evicted');
  assert.ok(done.freedBytes >= MB);
  assert.equal(existsSync(image.layerDirs[0]!), false);
  assert.deepEqual(markerDirs(root), []);
});

it('an image held by another process is in use for the budget and evict(); after release (or its death) it is not', async () => {
  const root = await newRoot();
  const [held, other, third] = await Promise.all([distinctImage('proc/held', MB), distinctImage('proc/other', MB), distinctImage('proc/third', MB)]);
  const store = await newStore({ root, maxCacheBytes: MB / 2 });
  (await store.acquire(held!)).release(); // cached, then over budget: evicted at the next pull
  const first = await holdInChild(root, held!);
  assert.notEqual(first.child.pid, process.pid);

  (await store.acquire(other!)).release();
  assert.ok(existsSync(first.layerDirs[0]!), 'the layer the other process uses must stay');
  assert.deepEqual(await store.evict(first.digest), { evicted: [], result: 'in_use', freedBytes: 0 });
  await first.release();
  assert.equal((await store.evict(first.digest)).result, 'evicted');
  assert.equal(existsSync(first.layerDirs[0]!), false);

  // A holder that dies without releasing: its marker is stale and swept.
  (await store.acquire(third!)).release();
  const second = await holdInChild(root, third!);
  assert.deepEqual((await store.evict(second.digest)).result, 'in_use');
  second.child.kill('SIGKILL');
  await new Promise((resolve) => second.child.once('exit', resolve));
  assert.equal((await store.evict(second.digest)).result, 'evicted');
  assert.equal(existsSync(second.layerDirs[0]!), false);
  assert.deepEqual(markerDirs(root), []);
});

it('holds(): an image another store pulled into the shared cache counts as held here too (placement)', async () => {
  const root = await newRoot();
  const image = await distinctImage('shared/holds', MB);
  const a = await newStore({ root });
  const b = await newStore({ root });
  assert.equal(await b.holds(image), false);
  (await a.acquire(image)).release();
  assert.equal(await a.holds(image), true);
  assert.equal(await b.holds(image), true, 'b reads the shared index again on a miss');
  assert.ok((await b.list()).some((c) => c.image === image), 'and lists it from then on (its heartbeat publishes it)');
  const digest = (await a.list()).find((c) => c.image === image)!.digest;
  assert.equal(await b.holds(`${registry.host}/shared/holds@${digest}`), true, 'by digest');
  assert.equal(await b.holds(`${registry.host}/shared/nothere:latest`), false);
});

it('a store that stops writes its uses onto the references as they are now: a tag another store moved, or an image it evicted, is not brought back', async () => {
  const root = await newRoot();
  const [stopping, other] = await Promise.all([newStore({ root }), newStore({ root })]);
  const moving = await distinctImage('persist/moving', 100_000);
  const evicted = await distinctImage('persist/evicted', 100_000);
  const old = await stopping.acquire(moving);
  old.release();
  const gone = await stopping.acquire(evicted);
  gone.release();
  await distinctImage('persist/moving', 100_000); // the tag moves
  const moved = await other.acquire(moving, { policy: 'always' });
  moved.release();
  assert.notEqual(moved.digest, old.digest);
  assert.equal((await other.evict(gone.digest)).result, 'evicted');
  await stopping.close(); // writes the uses it recorded
  const restarted = await newStore({ root });
  const now = await restarted.acquire(moving, { policy: 'never' });
  now.release();
  assert.equal(now.digest, moved.digest, 'the tag names what it was moved to (before: its old digest again)');
  assert.deepEqual((await restarted.list()).map((l) => l.image), [moving], 'the evicted image is not listed again');
  assert.equal(readdirSync(join(root, 'manifests')).length, 1, 'one reference on disk');
});
