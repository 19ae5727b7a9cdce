/**
 * A/B of two trees' ImageStore in one process: the same registry and image, cold pulls alternating
 * between this tree and `--before <tree>` (e.g. a checkout of main), so both see the same load and
 * disk state. Medians of wall, CPU and user CPU (user CPU does not depend on the ext4/page-cache state).
 *
 *   npx tsx worker/bench/pull-ab.ts --before /path/to/other/tree [--runs 5] [--layers N | --tar FILE] [--compression gzip|zstd]
 *
 * --layers N: the bench image's content over N layers instead of its 2 (e.g. 1: a layer alone in
 * its pull, which gets a writer thread for its files); --tar FILE: one layer of real content made
 * from FILE instead (e.g. .sbx/cache/bookworm-python3-minimal.tar, which `npm run bench:python`
 * builds with mmdebstrap); --compression: only that variant.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { buildLargeImage, LARGE_IMAGE } from '../../test/fixtures/large-image.ts';
import { buildImage, layerFromTar, pushImage } from '../../test/fixtures/oci-builder.ts';
import { LOOPBACK_EGRESS } from '../../test/harness/egress.ts';
import { startRegistry } from '../../test/harness/registry.ts';
import { benchArgs } from './bench-args.ts';
import { midpointMedian as median } from '../../loadtest/lib/stats.ts';

interface Tree {
  name: string;
  ImageStore: typeof import('../src/images/image-store.ts').ImageStore;
  warm: () => Promise<void>;
}

async function loadTree(name: string, root: string): Promise<Tree> {
  const url = (p: string) => pathToFileURL(join(root, p)).href;
  const store = (await import(url('worker/src/images/image-store.ts'))) as typeof import('../src/images/image-store.ts');
  const pool = (await import(url('worker/src/images/layers/unpack-pool.ts'))) as typeof import('../src/images/layers/unpack-pool.ts');
  return { name, ImageStore: store.ImageStore, warm: () => pool.sharedUnpackPool().warm() };
}

const argv = process.argv.slice(2);
const beforeAt = argv.indexOf('--before');
if (beforeAt < 0) throw new Error('usage: pull-ab.ts --before <tree> [--runs N]');
const args = benchArgs(argv.filter((_, i) => i !== beforeAt && i !== beforeAt + 1));
const trees = [await loadTree('before', resolve(argv[beforeAt + 1]!)), await loadTree('after', resolve(import.meta.dirname, '../..'))];
const registry = await startRegistry();
for (const t of trees) await t.warm();
const workDir = await mkdtemp(join(args.dir, 'sbx-pull-ab-'));
console.log(`outputs stay in ${workDir} (remove it afterwards: deleting right before a run slows ext4 inode allocation)`);
const layers = Number(args.value('--layers') ?? LARGE_IMAGE.layers);
if (!Number.isInteger(layers) || layers < 1) throw new Error('--layers takes a whole number of layers, at least 1');
const compressions = (['gzip', 'zstd'] as const).filter((c) => (args.value('--compression') ?? c) === c);
if (compressions.length === 0) throw new Error('--compression takes gzip or zstd');
/** The bench image's bytes and files spread over `layers` layers. */
const spec = {
  layers,
  filesPerLayer: Math.round((LARGE_IMAGE.filesPerLayer * LARGE_IMAGE.layers) / layers),
  bytesPerLayer: Math.round((LARGE_IMAGE.bytesPerLayer * LARGE_IMAGE.layers) / layers),
};
const tarFile = args.value('--tar');
const tar = tarFile === undefined ? null : readFileSync(tarFile);
for (const compression of compressions) {
  const image = tar
    ? buildImage({ layers: [layerFromTar(tar, { compression })], config: { Cmd: ['sh'] } })
    : (await buildLargeImage({ ...spec, compression })).image;
  await pushImage(registry.url, `ab/${compression}`, 'latest', image);
  const ref = `${registry.host}/ab/${compression}:latest`;
  const seen = new Map(trees.map((t) => [t.name, { wall: [] as number[], cpu: [] as number[], user: [] as number[] }]));
  for (let i = 0; i <= args.runs; i++) {
    for (const tree of i % 2 ? [...trees].reverse() : trees) {
      const store = new tree.ImageStore({ root: await mkdtemp(join(workDir, `${tree.name}-`)), egressAllow: LOOPBACK_EGRESS });
      execFileSync('sync');
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      await store.acquire(ref);
      const wall = (performance.now() - t0) / 1000;
      const c = process.cpuUsage(c0);
      await store.close();
      if (i === 0) continue; // one warm-up pair (JIT)
      const s = seen.get(tree.name)!;
      s.wall.push(wall);
      s.cpu.push((c.user + c.system) / 1e6);
      s.user.push(c.user / 1e6);
      const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
      console.log(`${compression} ${tree.name} run ${i}: ${wall.toFixed(3)} s, cpu ${((c.user + c.system) / 1e6).toFixed(3)} s (user ${(c.user / 1e6).toFixed(3)}), load ${load}`);
    }
  }
  for (const [name, s] of seen) {
    console.log(`${compression} ${name}: median ${median(s.wall).toFixed(3)} s, cpu ${median(s.cpu).toFixed(3)} s, user ${median(s.user).toFixed(3)} s; runs ${s.wall.map((w) => w.toFixed(2)).join(' ')}`);
  }
}
await registry.stop();
process.exit(0);
