// npm run bench:launcher [-- --runs N] [--json]
// Start-to-exit of /bin/true in a static busybox rootfs with full isolation and memory + pids
// limits: sbx (in-process, as the worker uses it) vs `crun run`, `runc run` (same limits) and
// bwrap (namespaces only, no cgroups), each CLI timed as spawn-and-wait by a tiny C spawner
// (spawn-timer.c: vfork + exec + waitpid), and the host fork+exec floor of /bin/true.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { launch, probeHost, type LaunchSpec } from '../index.ts';
import { ensureTools } from '../../loadtest/lib/bench-peers.ts';

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

let spawnTimer = '';

// Time `cmd` n times with spawn-timer, itself started under `prefix` (e.g. unshare ... sh -c).
function cli(cmd: string[], n: number, prefix: string[] = []): { times: number[]; failures: number; lastError: string } {
  const all = [...prefix, spawnTimer, String(n), ...cmd];
  const out = execFileSync(all[0]!, all.slice(1), { encoding: 'utf8', maxBuffer: 64 << 20 });
  return JSON.parse(out.trim().split('\n').pop()!);
}

async function sbxBlock(rootfs: string, parent: string, n: number, seq: { i: number }): Promise<{ times: number[]; failures: number }> {
  const times: number[] = [];
  let failures = 0;
  for (let k = 0; k < n; k++) {
    const spec: LaunchSpec = {
      id: `bench-${seq.i++}`, slot: 0, lowerDirs: [rootfs], argv: ['/bin/true'], env: ['PATH=/bin'], cwd: '/', uid: 0,
      gid: 0, hostname: 'bench', stdin: null,
      limits: { memoryBytes: MEM, pids: PIDS, cpus: 1, timeoutMs: 10_000, diskBytes: 64 << 20 },
    };
    const t0 = performance.now();
    const j = await launch(spec, { cgroupParent: parent });
    j.stdout.resume();
    j.stderr.resume();
    const x = await j.exited;
    times.push(performance.now() - t0);
    if (x.exitCode !== 0) failures++;
  }
  return { times, failures };
}

interface Runner { name: string; block(n: number): Promise<{ times: number[]; failures: number; lastError?: string }> }

// Runs every runtime in interleaved blocks (rounds), so that load from elsewhere on the machine
// hits all of them alike; the first block of each is a warm-up and is discarded.
async function runAll(runners: Runner[], rounds: number): Promise<Record<string, Stat | null>> {
  const acc: Record<string, { times: number[]; failures: number; lastError: string }> = {};
  for (const r of runners) {
    await r.block(warmup);
    acc[r.name] = { times: [], failures: 0, lastError: '' };
  }
  const per = Math.ceil(runs / rounds);
  for (let round = 0; round < rounds; round++) {
    for (const r of runners) {
      const b = await r.block(per);
      acc[r.name]!.times.push(...b.times);
      acc[r.name]!.failures += b.failures;
      if (b.lastError) acc[r.name]!.lastError = b.lastError;
    }
  }
  const out: Record<string, Stat | null> = {};
  for (const r of runners) {
    const a = acc[r.name]!;
    out[r.name] = a.failures === a.times.length ? null : stats(a.times.slice(0, runs), a.failures);
    if (!out[r.name]) log(`${r.name}: every run failed: ${a.lastError}`);
  }
  return out;
}

async function main(): Promise<void> {
  const probe = probeHost();
  if (!probe.ok) throw new Error(`host unsupported: ${probe.missing.join('; ')}`);
  // The peers are installed here or the bench fails naming them: never a null ratio.
  ensureTools({ crun: 'crun', runc: 'runc', bwrap: 'bubblewrap', gcc: 'gcc', busybox: 'busybox-static' }, log);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sbx-bench-'));
  const parent = `sbx-bench-${process.pid}`;
  const rootfs = path.join(tmp, 'rootfs');
  buildRootfs(rootfs);
  spawnTimer = path.join(tmp, 'spawn-timer');
  execFileSync('gcc', ['-O2', '-o', spawnTimer, path.join(here, 'spawn-timer.c')]);
  let results: Record<string, Stat | null> = {};
  try {
    log(`runs=${runs} per runtime (+${warmup} warm-up), /bin/true, memory ${MEM >> 20} MiB + pids ${PIDS}, interleaved in rounds`);
    const seq = { i: 0 };
    const runners: Runner[] = [
      { name: 'host', block: async (n) => cli([path.join(rootfs, 'bin', 'true')], n) },
      { name: 'sbx', block: (n) => sbxBlock(rootfs, parent, n, seq) },
    ];
    {
      ociBundle('crun', path.join(tmp, 'crun'), rootfs);
      // crun 1.8 refuses hybrid cgroups while /sys/fs/cgroup/unified has a controller: hide it in
      // a private mount namespace (measurement-notes.md).
      const cmd = ['crun', 'run', '--bundle', path.join(tmp, 'crun'), `sbx-bench-crun-${process.pid}`];
      const prefix = ['unshare', '-m', '--propagation', 'private', '--', 'sh', '-c', 'umount /sys/fs/cgroup/unified 2>/dev/null; exec "$@"', 'sh'];
      runners.push({ name: 'crun', block: async (n) => cli(cmd, n, prefix) });
    }
    {
      ociBundle('runc', path.join(tmp, 'runc'), rootfs);
      const cmd = ['runc', 'run', '--bundle', path.join(tmp, 'runc'), `sbx-bench-runc-${process.pid}`];
      runners.push({ name: 'runc', block: async (n) => cli(cmd, n) });
    }
    {
      const cmd = ['bwrap', '--unshare-pid', '--unshare-net', '--unshare-ipc', '--unshare-uts', '--ro-bind', rootfs, '/',
        '--proc', '/proc', '--dev', '/dev', '/bin/true'];
      runners.push({ name: 'bwrap', block: async (n) => cli(cmd, n) });
    }
    results = await runAll(runners, Math.max(1, Math.min(10, Math.floor(runs / 20))));
    for (const [k, v] of Object.entries(results)) log(`${k.padEnd(5)} ${JSON.stringify(v)}`);
  } finally {
    for (const c of ['memory', 'pids', 'cpu', 'cpuacct', 'freezer']) {
      try { fs.rmdirSync(`/sys/fs/cgroup/${c}/${parent}`); } catch { /* absent */ }
    }
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  const failed = ['host', 'sbx', 'crun', 'runc', 'bwrap'].filter((k) => !results[k]);
  if (failed.length) throw new Error(`every run failed for: ${failed.join(', ')} (no ratio without both sides)`);
  const ratio = (k: string) => Math.round((results.sbx!.median_ms / results[k]!.median_ms) * 1000) / 1000;
  log(`ratios (sbx median / other median): crun ${ratio('crun')}, runc ${ratio('runc')}, bwrap ${ratio('bwrap')}`);
  const pick = (s: Stat | null | undefined) => ({ median_ms: s!.median_ms, p90_ms: s!.p90_ms, failures: s!.failures });
  process.stdout.write(JSON.stringify({
    runs, sbx: pick(results.sbx), crun: pick(results.crun), runc: pick(results.runc), bwrap: pick(results.bwrap),
    host_fork_exec: pick(results.host), ratio_vs_crun: ratio('crun'), ratio_vs_runc: ratio('runc'), ratio_vs_bwrap: ratio('bwrap'),
  }) + '\n');
}

main().catch((e: unknown) => {
  process.stderr.write(`bench:launcher: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
