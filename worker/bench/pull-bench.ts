/**
 * Cold pull + unpack from a local registry: sbx's ImageStore against `skopeo copy` + `umoci unpack`,
 * in the same run, alternating order, medians of N runs; plus the warm (cached) lookup time.
 *
 *   npm run bench:pull -- [--runs 5] [--json] [--small] [--phases] [--curve] [--dir /var/tmp] [--fresh-fs]
 *
 * Always: the bench image (2 layers, ~250 MB unpacked) with gzip layers and the same with zstd
 * layers. --phases: where the time goes (each stage alone, see pull-phases.ts). --curve: the same
 * comparison over image size (50 MB, 250 MB, 1 GB) and layer count (1, 5, 20 layers, same total).
 * --fresh-fs: each image's outputs (both tools, every run) go to a new ext4 file system (with
 * journal) on a loop device made for that image (fresh-fs.ts), instead of --dir's own, whose deletion
 * history slows file creation; no image inherits the trees of the ones before it.
 *
 * With --json the last line is one object:
 *   {"peer":{..versions},"images":[{"name","compression","layers","bytes","unpackedBytes","files",
 *     "sbx":{"median_s","runs"},"skopeo_umoci":{"median_s","runs"},"ratio"}],"ratio":<gzip image>,
 *    "ratio_zstd":..,"warm_ms":..,"phases":[..]?}
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startRegistry } from '../../test/harness/registry.ts';
import { buildLargeImage, LARGE_IMAGE, type LargeImage, type LargeImageSpec } from '../../test/fixtures/large-image.ts';
import { pushImage } from '../../test/fixtures/oci-builder.ts';
import { ImageStore } from '../src/images/image-store.ts';
import { LOOPBACK_EGRESS } from '../../test/harness/egress.ts';
import { sharedUnpackPool } from '../src/images/layers/unpack-pool.ts';
import { benchArgs } from './bench-args.ts';
import { missingWorkerNodeFlags } from '../src/node-flags.ts';
import { ensureTools } from '../../loadtest/lib/bench-peers.ts';
import { ensureUmoci } from './umoci-peer.ts';
import { mountFreshExt4, type FreshFs } from './fresh-fs.ts';
import { measurePhases, type PhaseRow } from './pull-phases.ts';
import { midpointMedian as median } from '../../loadtest/lib/stats.ts';

const run = promisify(execFile);

interface Args {
  runs: number;
  json: boolean;
  small: boolean;
  phases: boolean;
  curve: boolean;
  workDir: string;
  freshFs: boolean;
}

function parseArgs(argv: string[]): Args {
  const args = benchArgs(argv);
  return { runs: args.runs, json: args.json, small: args.has('--small'), phases: args.has('--phases'), curve: args.has('--curve'), workDir: args.dir, freshFs: args.has('--fresh-fs') };
}

const MB = 1024 * 1024;

interface Variant {
  name: string;
  spec: LargeImageSpec;
}

/** The bench image scaled: `totalMb` unpacked over `layers` layers, files in proportion (as LARGE_IMAGE). */
function scaled(name: string, totalMb: number, layers: number, compression: 'gzip' | 'zstd' = 'gzip'): Variant {
  const totalFiles = Math.round((LARGE_IMAGE.filesPerLayer * LARGE_IMAGE.layers * totalMb * MB) / (LARGE_IMAGE.bytesPerLayer * LARGE_IMAGE.layers));
  return { name, spec: { layers, filesPerLayer: Math.max(1, Math.round(totalFiles / layers)), bytesPerLayer: Math.round((totalMb * MB) / layers), compression } };
}

function variants(args: Args): Variant[] {
  if (args.small) {
    const small = { layers: 2, filesPerLayer: 500, bytesPerLayer: 10 * MB };
    return [
      { name: 'small gzip', spec: small },
      { name: 'small zstd', spec: { ...small, compression: 'zstd' } },
    ];
  }
  const list: Variant[] = [
    { name: 'bench gzip', spec: LARGE_IMAGE },
    { name: 'bench zstd', spec: { ...LARGE_IMAGE, compression: 'zstd' } },
  ];
  if (args.curve) {
    list.push(scaled('size 50 MB', 50, 2), scaled('size 1 GB', 1024, 2), scaled('layers 1', 230, 1), scaled('layers 5', 230, 5), scaled('layers 20', 230, 20));
  }
  return list;
}

/** CPU seconds (user + system) of this process (all its threads) and of its waited-for children. */
function cpuSeconds(): { self: number; children: number } {
  const fields = readFileSync('/proc/self/stat', 'utf8').replace(/^.*\) /, '').split(' ');
  const tick = 100; // USER_HZ
  const usage = process.cpuUsage();
  return { self: (usage.user + usage.system) / 1e6, children: (Number(fields[13]) + Number(fields[14])) / tick };
}

interface Timing {
  wall: number;
  /** CPU seconds the tool used (sbx: this process; the peers: their processes). Not the registry's. */
  cpu: number;
}

// Outputs are kept until the run is done: on ext4 without a journal, creating inodes right after
// deleting many is several times slower (ext4's recently_deleted() scan), which would punish
// whoever runs next.

/** Room on a --fresh-fs file system for one image: every run's two trees (sbx's, the peers' OCI layout and bundle), the phases' and the warm lookup's, with margin. */
function freshFsBytes(image: LargeImage, runs: number): number {
  return 2 ** 32 + (runs + 2) * 3 * (image.bytes + image.unpackedBytes);
}

async function timeSbx(workDir: string, ref: string): Promise<Timing> {
  const root = await mkdtemp(join(workDir, 'sbx-'));
  const store = new ImageStore({ root, egressAllow: LOOPBACK_EGRESS }); // the bench registry is on loopback
  try {
    await run('sync');
    const cpu = cpuSeconds().self;
    const started = performance.now();
    const image = await store.acquire(ref);
    const seconds = (performance.now() - started) / 1000;
    if (!image.pulled) throw new Error('expected a cold pull');
    return { wall: seconds, cpu: cpuSeconds().self - cpu };
  } finally {
    await store.close();
  }
}

async function timeSkopeoUmoci(umoci: string, workDir: string, host: string, repo: string): Promise<Timing> {
  const dir = await mkdtemp(join(workDir, 'skopeo-umoci-'));
  await run('sync');
  const cpu = cpuSeconds().children;
  const started = performance.now();
  await run('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${host}/${repo}:latest`, `oci:${join(dir, 'oci')}:latest`], { maxBuffer: 1 << 24 });
  await run(umoci, ['unpack', '--image', `${join(dir, 'oci')}:latest`, join(dir, 'bundle')], { maxBuffer: 1 << 24 });
  return { wall: (performance.now() - started) / 1000, cpu: cpuSeconds().children - cpu };
}

async function warmLookupMs(workDir: string, ref: string): Promise<number> {
  const root = await mkdtemp(join(workDir, 'warm-'));
  const store = new ImageStore({ root, egressAllow: LOOPBACK_EGRESS }); // the bench registry is on loopback
  try {
    await store.acquire(ref);
    const samples: number[] = [];
    for (let i = 0; i < 1000; i++) {
      const started = performance.now();
      const image = await store.acquire(ref);
      samples.push(performance.now() - started);
      image.release();
    }
    return median(samples);
  } finally {
    await store.close();
  }
}

interface VariantResult {
  name: string;
  compression: string;
  layers: number;
  bytes: number;
  unpackedBytes: number;
  files: number;
  sbx: { median_s: number; runs: number[]; cpu_s: number };
  skopeo_umoci: { median_s: number; runs: number[]; cpu_s: number };
  ratio: number;
  /** Median CPU seconds sbx / peers: what a busy host shows better than wall time. */
  cpu_ratio: number;
}

const round = (x: number, digits = 3) => Number(x.toFixed(digits));

/** Counts timed pairs over the whole run, so that the order alternates across images too. */
let pairs = 0;

async function compare(opts: { variant: Variant; large: LargeImage; ref: string; host: string; repo: string; umoci: string; runs: number; workDir: string; log: (l: string) => void }): Promise<VariantResult> {
  const { variant, large } = opts;
  const sbx: Timing[] = [];
  const other: Timing[] = [];
  for (let i = 0; i < opts.runs; i++) {
    // Alternate which goes first so neither always inherits the other's page-cache and disk state.
    if (pairs++ % 2 === 0) {
      sbx.push(await timeSbx(opts.workDir, opts.ref));
      other.push(await timeSkopeoUmoci(opts.umoci, opts.workDir, opts.host, opts.repo));
    } else {
      other.push(await timeSkopeoUmoci(opts.umoci, opts.workDir, opts.host, opts.repo));
      sbx.push(await timeSbx(opts.workDir, opts.ref));
    }
    opts.log(`  ${variant.name} run ${i + 1}: sbx ${sbx[i]!.wall.toFixed(2)} s (cpu ${sbx[i]!.cpu.toFixed(2)} s), skopeo+umoci ${other[i]!.wall.toFixed(2)} s (cpu ${other[i]!.cpu.toFixed(2)} s)`);
  }
  return {
    name: variant.name,
    compression: variant.spec.compression ?? 'gzip',
    layers: variant.spec.layers,
    bytes: large.bytes,
    unpackedBytes: large.unpackedBytes,
    files: large.files,
    sbx: { median_s: round(median(sbx.map((t) => t.wall))), runs: sbx.map((t) => round(t.wall)), cpu_s: round(median(sbx.map((t) => t.cpu))) },
    skopeo_umoci: { median_s: round(median(other.map((t) => t.wall))), runs: other.map((t) => round(t.wall)), cpu_s: round(median(other.map((t) => t.cpu))) },
    ratio: round(median(sbx.map((t) => t.wall)) / median(other.map((t) => t.wall))),
    cpu_ratio: round(median(sbx.map((t) => t.cpu)) / median(other.map((t) => t.cpu))),
  };
}

function table(results: VariantResult[]): string {
  const lines = [
    '| image | layers | compressed MB | unpacked MB | entries | sbx s | skopeo+umoci s | ratio | sbx cpu s | peers cpu s | cpu ratio |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const r of results) {
    lines.push(
      `| ${r.name} (${r.compression}) | ${r.layers} | ${(r.bytes / 1e6).toFixed(1)} | ${(r.unpackedBytes / 1e6).toFixed(1)} | ${r.files} | ${r.sbx.median_s.toFixed(2)} | ${r.skopeo_umoci.median_s.toFixed(2)} | ${r.ratio.toFixed(3)} | ${r.sbx.cpu_s.toFixed(2)} | ${r.skopeo_umoci.cpu_s.toFixed(2)} | ${r.cpu_ratio.toFixed(3)} |`,
    );
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  // The pulls run in this process: measured as the worker runs them only with the worker's V8 flags.
  const missing = missingWorkerNodeFlags();
  if (missing.length) process.stderr.write(`bench:pull: node was started without the worker's V8 flags (${missing.join(' ')}): sbx's pulls are measured as a worker started without them would make them; npm run bench:pull passes them\n`);
  const log = (line: string) => (args.json ? process.stderr.write(line + '\n') : console.log(line));
  ensureTools({ skopeo: 'skopeo', 'docker-registry': 'docker-registry', zstd: 'zstd', go: 'golang-go' }, log);
  const umoci = await ensureUmoci(log);
  const skopeoVersion = (await run('skopeo', ['--version'])).stdout.trim();
  const registry = await startRegistry();
  // The unpack workers start once per process (~0.4 s under tsx); a worker does this at start-up.
  await sharedUnpackPool().warm();
  // Without --fresh-fs every output stays in --dir until the end of the run (see the note above):
  // deleting one image's trees would slow down whichever tool creates files next.
  const workDir = await mkdtemp(join(args.workDir, 'sbx-pull-bench-'));
  const outputs = args.freshFs ? `a fresh ext4 (with journal) per image, on a loop device in ${args.workDir}` : `the file system of ${args.workDir}`;
  const results: VariantResult[] = [];
  let phases: Record<string, PhaseRow[]> | undefined;
  let warm = 0;
  try {
    for (const variant of variants(args)) {
      const spec = variant.spec;
      log(`${variant.name}: building ${spec.layers} layers × ${spec.filesPerLayer} files × ${(spec.bytesPerLayer / MB).toFixed(1)} MiB (${spec.compression ?? 'gzip'}) …`);
      const large = await buildLargeImage(spec);
      const repo = `bench/${variant.name.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '')}`;
      await pushImage(registry.url, repo, 'latest', large.image);
      const ref = `${registry.host}/${repo}:latest`;
      log(`  ${ref}: ${(large.bytes / 1e6).toFixed(1)} MB compressed, ${(large.unpackedBytes / 1e6).toFixed(1)} MB unpacked, ${large.files} entries`);
      // --fresh-fs: each image's runs (both tools, alternating) on a new file system of their own,
      // so that no image inherits the trees of the images before it.
      const fresh: FreshFs | undefined = args.freshFs ? await mountFreshExt4(args.workDir, freshFsBytes(large, args.runs)) : undefined;
      if (fresh) log(`  outputs on ${fresh.describe}`);
      const dir = fresh ? await mkdtemp(join(fresh.dir, 'sbx-pull-bench-')) : workDir;
      try {
        if (args.phases && (variant.name.startsWith('bench') || args.small)) {
          phases ??= {};
          phases[variant.name] = await measurePhases({ image: large.image, tars: large.tars, registryHost: registry.host, repo, workDir: dir, runs: args.runs });
          for (const row of phases[variant.name]!) log(`  phase ${row.stage}: ${row.seconds.toFixed(3)} s (cpu ${row.cpu_s.toFixed(3)} s)`);
        }
        results.push(await compare({ variant, large, ref, host: registry.host, repo, umoci: umoci.path, runs: args.runs, workDir: dir, log }));
        if (results.length === 1) warm = await warmLookupMs(dir, ref);
      } finally {
        await fresh?.close();
      }
    }
    log(table(results));
    const first = results[0]!;
    const zstd = results.find((r) => r.compression === 'zstd')!;
    log(`bench image: gzip ratio ${first.ratio} (cpu ${first.cpu_ratio}), zstd ratio ${zstd.ratio} (cpu ${zstd.cpu_ratio}); warm lookup ${warm.toFixed(4)} ms; load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
    if (args.json) {
      const summary = {
        peer: { skopeo: skopeoVersion, umoci: umoci.version },
        outputs,
        images: results,
        ratio: first.ratio,
        ratio_zstd: zstd.ratio,
        cpu_ratio: first.cpu_ratio,
        cpu_ratio_zstd: zstd.cpu_ratio,
        loadavg: loadavg().map((l) => round(l, 2)),
        sbx: first.sbx,
        skopeo_umoci: first.skopeo_umoci,
        warm_ms: round(warm, 4),
        ...(phases ? { phases } : {}),
      };
      console.log(JSON.stringify(summary));
    }
  } finally {
    await registry.stop();
    await sharedUnpackPool().close();
    await rm(workDir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench:pull: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
