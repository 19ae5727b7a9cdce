/**
 * One cold acquire() of the bench image, for profiling: builds and pushes the image, runs one warm-up
 * pull (JIT), then waits for the file named by SBX_PROFILE_GATE (if set) before the measured pull, so
 * that `perf record -g -p <pid>` can attach to exactly that pull. Prints wall and CPU seconds.
 *
 *   node --initial-old-space-size=128 --import tsx worker/bench/pull-profile.ts [zstd] [--runs N] [--dir DIR]
 *   (the worker's V8 flags, worker/src/node-flags.ts: the pull runs in this process)
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startRegistry } from '../../test/harness/registry.ts';
import { buildLargeImage, LARGE_IMAGE } from '../../test/fixtures/large-image.ts';
import { pushImage } from '../../test/fixtures/oci-builder.ts';
import { LOOPBACK_EGRESS } from '../../test/harness/egress.ts';
import { ImageStore } from '../src/images/image-store.ts';
import { sharedUnpackPool } from '../src/images/layers/unpack-pool.ts';
import { benchArgs } from './bench-args.ts';

function cpu(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

const zstd = process.argv.includes('zstd');
const args = benchArgs(process.argv);
const runs = args.value('--runs') === undefined ? 2 : args.runs;
const registry = await startRegistry();
await sharedUnpackPool().warm();
const large = await buildLargeImage({ ...LARGE_IMAGE, compression: zstd ? 'zstd' : 'gzip' });
await pushImage(registry.url, 'bench/profile', 'latest', large.image);
const workDir = await mkdtemp(join(args.dir, 'sbx-pull-profile-'));
const gate = process.env.SBX_PROFILE_GATE;
for (let i = 0; i < runs; i++) {
  if (i === runs - 1 && gate) {
    console.log(`pid ${process.pid}: waiting for ${gate}`);
    while (!existsSync(gate)) await sleep(50);
  }
  const store = new ImageStore({ root: await mkdtemp(join(workDir, 'run-')), egressAllow: LOOPBACK_EGRESS });
  const c0 = cpu();
  const t0 = performance.now();
  await store.acquire(`${registry.host}/bench/profile:latest`);
  console.log(`run ${i + 1}: ${((performance.now() - t0) / 1000).toFixed(3)} s, cpu ${(cpu() - c0).toFixed(3)} s (load ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')})`);
  await store.close();
}
await registry.stop?.();
await rm(workDir, { recursive: true, force: true });
process.exit(0);
