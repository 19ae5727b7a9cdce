// npm run bench:launcher [-- --runs N] [--json]
// Start-to-exit of /bin/true in a static busybox rootfs with full isolation and memory + pids
// limits: sbx (in-process, as the worker uses it) vs `crun run`, `runc run` (same limits) and
// bwrap (namespaces only, no cgroups), each CLI timed as spawn-and-wait.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { launch, probeHost, type LaunchSpec } from '../index.ts';

const args = process.argv.slice(2);
const json = args.includes('--json');
const runsIdx = args.indexOf('--runs');
const runs = runsIdx >= 0 ? Number(args[runsIdx + 1]) : 500;
const warmup = 20;
const MEM = 64 << 20;
const PIDS = 64;
const here = path.dirname(new URL(import.meta.url).pathname);

interface Stat { median_ms: number; p90_ms: number; mean_ms: number; failures: number }

function stats(times: number[], failures = 0): Stat {
  const s = [...times].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
  const r = (x: number) => Math.round(x * 1000) / 1000;
  return { median_ms: r(q(0.5)), p90_ms: r(q(0.9)), mean_ms: r(s.reduce((a, b) => a + b, 0) / s.length), failures };
}

function log(msg: string): void {
  if (!json) process.stdout.write(msg + '\n');
  else process.stderr.write(msg + '\n');
}

function have(bin: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${bin}`]).status === 0;
}

function buildRootfs(dir: string): void {
  fs.mkdirSync(path.join(dir, 'bin'), { recursive: true });
  fs.copyFileSync('/bin/busybox', path.join(dir, 'bin', 'busybox'));
  fs.chmodSync(path.join(dir, 'bin', 'busybox'), 0o755);
  for (const a of ['true', 'sh']) fs.symlinkSync('busybox', path.join(dir, 'bin', a));
  for (const d of ['proc', 'dev', 'sys', 'tmp', 'etc']) fs.mkdirSync(path.join(dir, d), { recursive: true });
}

function ociBundle(runtime: string, dir: string, rootfs: string): void {
  fs.mkdirSync(dir, { recursive: true });
  execFileSync(runtime, ['spec'], { cwd: dir });
  const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
  cfg.root = { path: rootfs, readonly: true };
  cfg.process.terminal = false;
  cfg.process.args = ['/bin/true'];
  cfg.hostname = 'bench';
  cfg.linux.resources = { ...(cfg.linux.resources ?? {}), memory: { limit: MEM, swap: MEM }, pids: { limit: PIDS } };
  const nsTypes = new Set((cfg.linux.namespaces as { type: string }[]).map((n) => n.type));
  for (const t of ['pid', 'network', 'ipc', 'uts', 'mount']) if (!nsTypes.has(t)) cfg.linux.namespaces.push({ type: t });
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(cfg, null, 2));
}

function cli(cmd: string[], n: number): { times: number[]; failures: number; lastError: string } {
  const out = execFileSync(process.execPath, ['--import', 'tsx', path.join(here, 'cli-runner.ts'), String(n), ...cmd],
    { encoding: 'utf8', maxBuffer: 64 << 20 });
  return JSON.parse(out.trim().split('\n').pop()!);
}

async function benchSbx(rootfs: string, parent: string): Promise<Stat> {
  const spec = (i: number): LaunchSpec => ({
    id: `bench-${i}`, slot: 0, lowerDirs: [rootfs], argv: ['/bin/true'], env: ['PATH=/bin'], cwd: '/', uid: 0, gid: 0,
    hostname: 'bench', stdin: null,
    limits: { memoryBytes: MEM, pids: PIDS, cpus: 1, timeoutMs: 10_000, diskBytes: 64 << 20 },
  });
  const times: number[] = [];
  let failures = 0;
  for (let i = 0; i < runs + warmup; i++) {
    const t0 = performance.now();
    const j = await launch(spec(i), { cgroupParent: parent });
    j.stdout.resume();
    j.stderr.resume();
    const x = await j.exited;
    const dt = performance.now() - t0;
    if (x.exitCode !== 0) failures++;
    if (i >= warmup) times.push(dt);
  }
  return stats(times, failures);
}

function benchCli(name: string, cmd: string[], wrap?: (inner: string[]) => string[]): Stat | null {
  cli(wrap ? wrap(cmd) : cmd, 1);
  const r = cli(wrap ? wrap(cmd) : cmd, runs + warmup);
  if (r.failures === r.times.length) {
    log(`${name}: every run failed: ${r.lastError}`);
    return null;
  }
  return stats(r.times.slice(warmup), r.failures);
}

async function main(): Promise<void> {
  const probe = probeHost();
  if (!probe.ok) throw new Error(`host unsupported: ${probe.missing.join('; ')}`);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sbx-bench-'));
  const parent = `sbx-bench-${process.pid}`;
  const rootfs = path.join(tmp, 'rootfs');
  buildRootfs(rootfs);
  const results: Record<string, Stat | null> = {};
  try {
    log(`runs=${runs} (+${warmup} warm-up), /bin/true, memory ${MEM >> 20} MiB + pids ${PIDS}`);
    results.sbx = await benchSbx(rootfs, parent);
    log(`sbx   ${JSON.stringify(results.sbx)}`);
    if (have('crun')) {
      ociBundle('crun', path.join(tmp, 'crun'), rootfs);
      // crun 1.8 refuses hybrid cgroups while /sys/fs/cgroup/unified has a controller: hide it in
      // a private mount namespace (measurement-notes.md).
      results.crun = benchCli('crun', ['crun', 'run', '--bundle', path.join(tmp, 'crun'), `sbx-bench-crun-${process.pid}`],
        (inner) => ['unshare', '-m', '--propagation', 'private', '--', 'sh', '-c',
          `umount /sys/fs/cgroup/unified 2>/dev/null; exec "$@"`, 'sh', process.execPath, '--import', 'tsx',
          path.join(here, 'cli-runner.ts'), String(runs + warmup), ...inner]);
      log(`crun  ${JSON.stringify(results.crun)}`);
    }
    if (have('runc')) {
      ociBundle('runc', path.join(tmp, 'runc'), rootfs);
      results.runc = benchCli('runc', ['runc', 'run', '--bundle', path.join(tmp, 'runc'), `sbx-bench-runc-${process.pid}`]);
      log(`runc  ${JSON.stringify(results.runc)}`);
    }
    if (have('bwrap')) {
      results.bwrap = benchCli('bwrap', ['bwrap', '--unshare-pid', '--unshare-net', '--unshare-ipc', '--unshare-uts',
        '--ro-bind', rootfs, '/', '--proc', '/proc', '--dev', '/dev', '/bin/true']);
      log(`bwrap ${JSON.stringify(results.bwrap)}`);
    }
  } finally {
    for (const c of ['memory', 'pids', 'cpu', 'cpuacct', 'freezer']) {
      try { fs.rmdirSync(`/sys/fs/cgroup/${c}/${parent}`); } catch { /* absent */ }
    }
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  const ratio = (k: string) => (results[k] && results.sbx ? Math.round((results.sbx.median_ms / results[k]!.median_ms) * 1000) / 1000 : null);
  log(`ratios (sbx median / other median): crun ${ratio('crun')}, runc ${ratio('runc')}, bwrap ${ratio('bwrap')}`);
  const pick = (s: Stat | null | undefined) => (s ? { median_ms: s.median_ms, p90_ms: s.p90_ms } : null);
  process.stdout.write(JSON.stringify({
    runs, sbx: pick(results.sbx), crun: pick(results.crun), runc: pick(results.runc), bwrap: pick(results.bwrap),
    ratio_vs_crun: ratio('crun'),
  }) + '\n');
}

await main();
