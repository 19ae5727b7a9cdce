/**
 * Cold pull + unpack of a large image from a local registry: sbx's ImageStore against
 * `skopeo copy` + `umoci unpack`, in the same run, alternating order, medians of N runs; plus the
 * warm (cached) lookup time.
 *
 *   npm run bench:pull -- [--runs 5] [--json] [--small]
 *
 * With --json the last line is
 *   {"image":..,"bytes":..,"files":..,"runs":N,"sbx":{"median_s":..},"skopeo_umoci":{"median_s":..},"ratio":..,"warm_ms":..}
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startRegistry } from '../../test/harness/registry.ts';
import { buildLargeImage, LARGE_IMAGE } from '../../test/fixtures/large-image.ts';
import { pushImage } from '../../test/fixtures/oci-builder.ts';
import { ImageStore } from '../src/images/image-store.ts';
import { LOOPBACK_EGRESS } from '../../test/harness/egress.ts';
import { sharedUnpackPool } from '../src/images/layers/unpack-pool.ts';
import { benchArgs } from './bench-args.ts';
import { ensureTools } from '../../loadtest/lib/bench-peers.ts';

const run = promisify(execFile);

interface Args {
  runs: number;
  json: boolean;
  small: boolean;
  workDir: string;
}

function parseArgs(argv: string[]): Args {
  const args = benchArgs(argv);
  return { runs: args.runs, json: args.json, small: args.has('--small'), workDir: args.dir };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

// Outputs are all kept until the end of the run: on ext4, creating inodes right after deleting many
// is several times slower (ext4's recently_deleted() scan), which would punish whoever runs next.

async function timeSbx(workDir: string, ref: string): Promise<number> {
  const root = await mkdtemp(join(workDir, 'sbx-'));
  const store = new ImageStore({ root, egressAllow: LOOPBACK_EGRESS }); // the bench registry is on loopback
  try {
    await run('sync');
    const started = performance.now();
    const image = await store.acquire(ref);
    const seconds = (performance.now() - started) / 1000;
    if (!image.pulled) throw new Error('expected a cold pull');
    return seconds;
  } finally {
    await store.close();
  }
}

async function timeSkopeoUmoci(workDir: string, host: string, repo: string): Promise<number> {
  const dir = await mkdtemp(join(workDir, 'skopeo-umoci-'));
  await run('sync');
  const started = performance.now();
  await run('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${host}/${repo}:latest`, `oci:${join(dir, 'oci')}:latest`], { maxBuffer: 1 << 24 });
  await run('umoci', ['unpack', '--image', `${join(dir, 'oci')}:latest`, join(dir, 'bundle')], { maxBuffer: 1 << 24 });
  return (performance.now() - started) / 1000;
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

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const log = (line: string) => (args.json ? process.stderr.write(line + '\n') : console.log(line));
  ensureTools({ skopeo: 'skopeo', umoci: 'umoci', 'docker-registry': 'docker-registry' }, log);
  const spec = args.small ? { layers: 2, filesPerLayer: 500, bytesPerLayer: 10 * 1024 * 1024 } : LARGE_IMAGE;
  log(`building the fixture: ${spec.layers} layers × ${spec.filesPerLayer} files × ${(spec.bytesPerLayer / 2 ** 20).toFixed(0)} MiB …`);
  const large = await buildLargeImage(spec);
  const registry = await startRegistry();
  const workDir = await mkdtemp(join(args.workDir, 'sbx-pull-bench-'));
  // The unpack workers start once per process (~0.4 s under tsx); a worker does this at start-up.
  await sharedUnpackPool().warm();
  try {
    const repo = 'bench/large';
    await pushImage(registry.url, repo, 'latest', large.image);
    const ref = `${registry.host}/${repo}:latest`;
    log(`image ${ref}: ${(large.bytes / 1e6).toFixed(1)} MB compressed, ${(large.unpackedBytes / 1e6).toFixed(1)} MB unpacked, ${large.files} entries; work dir ${args.workDir}`);

    const sbx: number[] = [];
    const other: number[] = [];
    for (let i = 0; i < args.runs; i++) {
      // Alternate which goes first so neither always inherits the other's page-cache state.
      if (i % 2 === 0) {
        sbx.push(await timeSbx(workDir, ref));
        other.push(await timeSkopeoUmoci(workDir, registry.host, repo));
      } else {
        other.push(await timeSkopeoUmoci(workDir, registry.host, repo));
        sbx.push(await timeSbx(workDir, ref));
      }
      log(`run ${i + 1}: sbx ${sbx[i]!.toFixed(2)} s, skopeo+umoci ${other[i]!.toFixed(2)} s`);
    }
    const warm = await warmLookupMs(workDir, ref);
    const result = {
      image: ref,
      bytes: large.bytes,
      files: large.files,
      runs: args.runs,
      sbx: { median_s: Number(median(sbx).toFixed(3)) },
      skopeo_umoci: { median_s: Number(median(other).toFixed(3)) },
      ratio: Number((median(sbx) / median(other)).toFixed(3)),
      warm_ms: Number(warm.toFixed(4)),
    };
    log(`median: sbx ${result.sbx.median_s} s, skopeo+umoci ${result.skopeo_umoci.median_s} s, ratio ${result.ratio}; warm lookup ${result.warm_ms} ms`);
    if (args.json) console.log(JSON.stringify(result));
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
