/**
 * A worker whose state directory's file system fills up, on the real stack: the state directory is
 * a small tmpfs of this file's own, filled from outside sbx (a file written until ENOSPC), as a
 * host's disk fills for reasons of its own.
 *
 * Running a cached image needs no disk (a job writes to a tmpfs of its own), but its hold writes an
 * in-use marker into the cache; on the full disk that write failed with ENOSPC and every job, cached
 * image or not, ended `internal`, nothing evicted (auditor: tmpfs and ext4 out of inodes).
 *
 * A disk that fills while a layer is being unpacked leaves nothing a later job trusts: the layer
 * half-written is never taken as cached, and the same image pulled once space is back has every file
 * whole.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { busyboxImage } from '../fixtures/build-images.ts';
import { startFakeRegistry, type FakeRegistry } from '../fixtures/fake-registry.ts';
import { buildLayer, pushImage, type BuiltImage, type BuiltLayer } from '../fixtures/oci-builder.ts';
import { SbxClient } from '../harness/api-client.ts';
import { waitUntil } from '../harness/redis.ts';
import { mountSmallDisk, type SmallDisk } from '../harness/small-disk.ts';
import { startStack, startWorkerWithMetrics, type ManagedProcess, type Stack } from '../harness/stack.ts';

let disk: SmallDisk;
let stack: Stack;
let api: SbxClient;
let worker: ManagedProcess;
let metricsUrl: string;
let other: string;
let fake: FakeRegistry;
/** 16 MiB that do not compress (a download that takes as much), then 200 small files. */
const content = randomBytes(16 << 20);
let halfway: BuiltLayer;
let records: BuiltImage;

before(async () => {
  disk = mountSmallDisk({ mib: 48 });
  fake = await startFakeRegistry();
  halfway = await buildLayer([{ type: 'file', path: 'big', content }, ...Array.from({ length: 200 }, (_, i) => ({ type: 'file' as const, path: `small/f${i}`, content: `file ${i}\n` }))]);
  fake.add('disk/halfway', 'latest', await busyboxImage({ extraLayers: [halfway] }));
  records = await busyboxImage({ config: { Env: ['RECORDS=1'] } }); // busybox's layer, cached: only records are written
  fake.add('disk/records', 'latest', records);
  stack = await startStack({ workers: 0, env: { SBX_STATE_DIR: join(disk.dir, 'state'), SBX_LOG_LEVEL: 'info' } });
  ({ worker, metricsUrl } = await startWorkerWithMetrics(stack, { SBX_IMAGE_CACHE_MIN_FREE_PERCENT: '0', SBX_EGRESS_ALLOW: `${stack.registry.host},${fake.host}` }));
  api = new SbxClient(stack.apiUrl);
  const layer = await buildLayer([{ type: 'file', path: 'other', content: Buffer.alloc(1 << 20, 1) }]);
  await pushImage(`http://${stack.registry.host}`, 'disk/other', 'latest', await busyboxImage({ extraLayers: [layer] }));
  other = `${stack.registry.host}/disk/other:latest`;
});

after(async () => {
  await stack?.stop();
  await fake?.stop();
  disk?.unmount();
});

const run = (image: string) => api.submit({ image, command: ['sh', '-c', 'echo ran'] }, { wait: true }).then((r) => r.body);

/** Until no job holds an image (a job's hold goes a little after its answer): the next hold writes its marker. */
async function noHolds(): Promise<void> {
  const inuse = join(disk.dir, 'state/images/inuse');
  await waitUntil(async () => readdirSync(inuse).every((d) => readdirSync(join(inuse, d)).length === 0), 10_000, 'no image held');
}

async function diskFullEvictions(): Promise<number> {
  const text = await (await fetch(metricsUrl)).text();
  return Number(/sbx_image_cache_evictions_total\{reason="disk_full"[^}]*\} (\d+)/.exec(text)?.[1] ?? NaN);
}

test('a cached image runs on a disk filled from outside once an image nobody holds made room; with none left, image_pull_failed "no disk space"; once space is back, it runs again', { timeout: 60_000 }, async () => {
  for (const image of [other, stack.images.busybox]) assert.equal((await run(image)).status, 'succeeded');
  await noHolds();
  disk.fill();
  assert.ok(disk.free().bytes < 64 * 1024, `filled: ${disk.free().bytes} bytes free`);

  const made = await run(stack.images.busybox);
  assert.equal(made.status, 'succeeded', `the cached image's job: ${JSON.stringify(made.error)}`);
  assert.equal(made.output?.stdout, 'ran\n');
  assert.equal(await diskFullEvictions(), 1, 'the other image, which nobody held, was evicted for it');

  await noHolds();
  disk.fill(); // what the eviction freed is taken too: nothing is left to evict but the image itself
  const refused = await run(stack.images.busybox);
  assert.equal(refused.status, 'error');
  assert.equal(refused.error?.code, 'image_pull_failed', JSON.stringify(refused.error));
  assert.match(refused.error!.message, /no disk space left for it \(ENOSPC\)/);

  disk.unfill();
  const again = await run(stack.images.busybox);
  assert.equal(again.status, 'succeeded', `once space is back, without a restart: ${JSON.stringify(again.error)}`);
  assert.equal(again.placement?.imageCached, true, 'the image the full disk kept out of no job is still cached');
  const inuse = join(disk.dir, 'state/images/inuse');
  assert.deepEqual(readdirSync(inuse).flatMap((d) => readdirSync(join(inuse, d))).filter((n) => n.startsWith('.')), [], 'no marker left half-written');
  assert.equal(worker.log().match(/"level":50/g)?.length ?? 0, 0, `no error logged:\n${worker.log().split('\n').filter((l) => l.includes('"level":50')).join('\n').slice(0, 2000)}`);
});

test('a disk filled from outside while a layer is unpacked: image_pull_failed, no layer half-written kept; once space is back the same image pulls whole', { timeout: 60_000 }, async () => {
  // The layer's first download sends half its bytes, waits while the disk is filled, then the rest.
  let sentHalf: () => void = () => {};
  let sendRest: () => void = () => {};
  const half = new Promise<void>((r) => (sentHalf = r));
  const rest = new Promise<void>((r) => (sendRest = r));
  fake.hook = (_req, res, { blob, count }) => {
    if (blob?.digest !== halfway.digest || count > 1) return false;
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': blob.size });
    const mid = Math.floor(blob.size / 2);
    res.write(blob.bytes.subarray(0, mid), () => sentHalf());
    void rest.then(() => res.end(blob.bytes.subarray(mid)));
    return true;
  };
  const image = `${fake.host}/disk/halfway:latest`;
  const command = ['sh', '-c', 'sha256sum /big | cut -d" " -f1; ls /small | wc -l; cat /small/f199'];
  const pulling = api.submit({ image, command }, { wait: true });
  await half;
  disk.fill();
  sendRest();
  const failed = (await pulling).body;
  assert.equal(failed.status, 'error');
  assert.equal(failed.error?.code, 'image_pull_failed', JSON.stringify(failed.error));
  assert.match(failed.error!.message, /no disk space left for it \(ENOSPC\)/);
  const images = join(disk.dir, 'state/images');
  assert.equal(readdirSync(join(images, 'layers/sha256')).includes(halfway.digest.slice(7)), false, 'the layer half-written is not in the cache');
  assert.deepEqual(readdirSync(join(images, 'tmp')).flatMap((d) => readdirSync(join(images, 'tmp', d))), [], 'nothing left being unpacked');

  disk.unfill();
  const whole = await api.submit({ image, command }, { wait: true });
  assert.equal(whole.body.status, 'succeeded', JSON.stringify(whole.body.error));
  assert.equal(whole.body.output?.stdout, `${createHash('sha256').update(content).digest('hex')}\n200\nfile 199\n`);
});

test('a disk filled from outside just before a pull writes its records: no temp file is left of the writes that failed', { timeout: 60_000 }, async () => {
  // Before, each record write that failed (manifest, config, image record) left its temp file in the
  // cache for good: two per failed pull, kept through every later pull and restart (auditor).
  assert.equal((await run(stack.images.busybox)).status, 'succeeded', 'the layer is cached');
  fake.hook = (_req, _res, { blob, count }) => {
    if (blob?.digest === records.config.digest && count === 1) disk.fill(); // then served as usual
    return false;
  };
  // Its retry, once busybox (nobody holds it) was evicted, may find room for the records or not.
  const first = await run(`${fake.host}/disk/records:latest`);
  assert.ok(first.status === 'succeeded' || first.error?.code === 'image_pull_failed', JSON.stringify(first.error));
  disk.unfill();
  const images = join(disk.dir, 'state/images');
  const temps = ['blobs/sha256', 'images', 'manifests', 'layer-meta'].flatMap((d) => readdirSync(join(images, d)).filter((n) => n.endsWith('.tmp')).map((n) => `${d}/${n}`));
  assert.deepEqual(temps, [], 'temp files of records not written');
  assert.equal((await run(`${fake.host}/disk/records:latest`)).status, 'succeeded');
});

test('a worker stopped (SIGTERM) while its disk is full exits 0: the last-use times it could not write are a warning', { timeout: 30_000 }, async () => {
  // Before, the ENOSPC of writing them rejected the shutdown: a fatal log, exit 1, the rest of it
  // (metrics server, Redis connections, the uid range claim) skipped (auditor).
  assert.equal((await run(stack.images.busybox)).status, 'succeeded', 'a use to record');
  disk.fill();
  try {
    const exited = new Promise<number | null>((resolve) => worker.child.once('exit', (code) => resolve(code)));
    worker.child.kill('SIGTERM');
    assert.equal(await exited, 0, worker.log().split('\n').filter((l) => l.includes('"level":60')).join('\n'));
    assert.match(worker.log(), /"level":40[^\n]*recording when cached images were last used failed/);
  } finally {
    disk.unfill();
  }
});
