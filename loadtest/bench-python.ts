/**
 * `npm run bench:python`: a real-language job end to end. A Debian bookworm image with python3
 * (mmdebstrap --variant=minbase --include=python3-minimal, no Docker; the rootfs tarball is cached
 * under .sbx/cache/) is pushed to the stack's registry as one zstd layer; then `python3 -c pass`
 * is submitted with ?wait=true through the whole stack (API, Redis, worker, launcher) and run on the
 * host (Debian's /usr/bin/python3, spawned and waited for from this process), interleaved in
 * rounds, medians of --runs each, and the ratio.
 * Starts a stack of its own (test harness: private Redis and registry, API and worker as separate
 * processes) and stops it at the end.
 * Flags: --runs N (default 100)  --json
 * Env: SBX_DEBIAN_MIRROR (default: the first Debian archive this machine's apt sources use), SBX_BENCH_CACHE (default .sbx/cache)
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { buildImage, layerFromTar, pushImage } from '../test/fixtures/oci-builder.ts';
import { ensureTools } from './lib/bench-peers.ts';
import { percentile, r2 } from './lib/stats.ts';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '100' },
    json: { type: 'boolean', default: false },
  },
});
const runs = Number(values.runs);
const log = (s: string) => (values.json ? process.stderr : process.stdout).write(`${s}\n`);
const repoRoot = resolve(dirname(new URL(import.meta.url).pathname), '..');
const cacheDir = process.env.SBX_BENCH_CACHE ?? join(repoRoot, '.sbx', 'cache');
const mirror = process.env.SBX_DEBIAN_MIRROR ?? aptDebianMirror();
const HOST_PYTHON = '/usr/bin/python3'; // Debian's, the same bookworm build as in the image
const COMMAND = ['python3', '-c', 'pass'];

/** The Debian archive this machine's apt already uses (deb822 `URIs:` or a one-line `deb` entry ending in /debian). */
function aptDebianMirror(): string {
  const files = ['/etc/apt/sources.list', ...readdirSync('/etc/apt/sources.list.d').filter((f) => /\.(sources|list)$/.test(f)).map((f) => `/etc/apt/sources.list.d/${f}`)];
  for (const f of files) {
    let text = '';
    try {
      text = readFileSync(f, 'utf8');
    } catch {
      continue;
    }
    const m = /^(?:URIs:\s*|deb\s+(?:\[[^\]]*\]\s+)?)(\S+\/debian)\/?\s/m.exec(text);
    if (m) return m[1]!;
  }
  throw new Error('no Debian archive in /etc/apt/sources.list(.d): set SBX_DEBIAN_MIRROR');
}

/** The bookworm minbase + python3-minimal rootfs as a tar, built once with mmdebstrap. */
function rootfsTar(): string {
  const path = join(cacheDir, 'bookworm-python3-minimal.tar');
  if (existsSync(path)) {
    log(`rootfs: cached ${path}`);
    return path;
  }
  mkdirSync(cacheDir, { recursive: true });
  const tmp = `${path}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  log(`rootfs: mmdebstrap bookworm minbase + python3-minimal from ${mirror} → ${path}`);
  const t0 = performance.now();
  const r = spawnSync('mmdebstrap', ['--quiet', '--variant=minbase', '--include=python3-minimal', '--format=tar', '--skip=output/dev', 'bookworm', tmp, mirror], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  if (r.status !== 0) throw new Error(`mmdebstrap failed (exit ${r.status})`);
  renameSync(tmp, path);
  log(`rootfs: built in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return path;
}

async function submitWait(api: string, image: string): Promise<{ ms: number; ok: boolean; detail?: string }> {
  const t0 = performance.now();
  const res = await fetch(`${api}/v1/jobs?wait=true`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ image, command: COMMAND }) });
  const body = (await res.json()) as { status?: string; exitCode?: number };
  const ms = performance.now() - t0;
  const ok = res.status === 200 && body.status === 'succeeded';
  return { ms, ok, detail: ok ? undefined : `${res.status} ${JSON.stringify(body).slice(0, 300)}` };
}

function hostRun(): Promise<number> {
  const t0 = performance.now();
  return new Promise((ok, fail) => {
    const child = spawn(HOST_PYTHON, ['-c', 'pass'], { stdio: 'ignore' });
    child.on('error', fail);
    child.on('exit', (code) => (code === 0 ? ok(performance.now() - t0) : fail(new Error(`host python3 exited ${code}`))));
  });
}

const summary = (xs: number[]) => ({ median_ms: r2(percentile(xs, 50)), p90_ms: r2(percentile(xs, 90)), p99_ms: r2(percentile(xs, 99)) });

async function main(): Promise<void> {
  if (!(runs >= 1)) throw new Error(`--runs must be a positive number, got ${values.runs}`);
  ensureTools({ mmdebstrap: 'mmdebstrap', 'redis-server': 'redis-server', 'docker-registry': 'docker-registry', zstd: 'zstd' }, log);
  if (!existsSync(HOST_PYTHON)) ensureTools({ python3: 'python3-minimal' }, log);
  const tarPath = rootfsTar();
  const tar = readFileSync(tarPath);
  const layer = layerFromTar(tar, { compression: 'zstd' });
  const built = buildImage({ layers: [layer], config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: COMMAND } });
  log(`image: ${(tar.length / 1e6).toFixed(1)} MB tar, ${(layer.size / 1e6).toFixed(1)} MB zstd layer`);

  const { startStack } = await import('../test/harness/stack.ts');
  const stack = await startStack();
  try {
    await pushImage(stack.registry.url, 'bench/python3', 'latest', built);
    const image = `${stack.registry.host}/bench/python3:latest`;
    const tPull = performance.now();
    const first = await submitWait(stack.apiUrl, image); // pulls and unpacks the image
    if (!first.ok) throw new Error(`first job failed: ${first.detail}`);
    log(`first job (cold pull + unpack + run): ${r2(performance.now() - tPull)} ms`);
    for (let i = 0; i < 10; i++) {
      const w = await submitWait(stack.apiUrl, image);
      if (!w.ok) throw new Error(`warm-up job failed: ${w.detail}`);
      await hostRun();
    }
    const sbx: number[] = [];
    const host: number[] = [];
    let errors = 0;
    let firstError: string | undefined;
    const block = Math.max(1, Math.min(10, Math.floor(runs / 10)));
    // Interleaved in blocks so that load from elsewhere on the machine hits both sides alike.
    while (sbx.length < runs) {
      const n = Math.min(block, runs - sbx.length);
      for (let i = 0; i < n; i++) {
        const r = await submitWait(stack.apiUrl, image);
        sbx.push(r.ms);
        if (!r.ok) {
          errors++;
          firstError ??= r.detail;
        }
      }
      for (let i = 0; i < n; i++) host.push(await hostRun());
    }
    const result = {
      runs,
      command: COMMAND.join(' '),
      image: { ref: image, tarBytes: tar.length, layerBytes: layer.size },
      sbx: { ...summary(sbx), errors },
      host: { ...summary(host), python: HOST_PYTHON },
      ratio: r2(percentile(sbx, 50) / percentile(host, 50)),
    };
    log(`python3 -c pass, n=${runs}: sbx end to end (?wait=true) median ${result.sbx.median_ms} ms p90 ${result.sbx.p90_ms} ms; host median ${result.host.median_ms} ms p90 ${result.host.p90_ms} ms; ratio ${result.ratio}; errors ${errors}${firstError ? ` first: ${firstError}` : ''}`);
    if (values.json) process.stdout.write(`${JSON.stringify(result)}\n`);
    if (errors > 0) process.exitCode = 1;
  } finally {
    await stack.stop();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench:python: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
