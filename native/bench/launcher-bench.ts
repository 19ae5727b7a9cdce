// npm run bench:launcher [-- --runs N] [--spaced MS] [--throughput-runs N] [--concurrency C] [--only-sbx] [--phases N]
//   [--host-mounts N] [--command true|nop] [--json]
// --phases N: only N traced sbx launches (LaunchOptions.trace), printing the median of each phase
// (where the time goes); nothing else runs.
// --host-mounts N: everything runs in a private mount namespace holding N more mounts than the
// host's (with-host-mounts.py), as on a busy container host: how each runtime's start grows with
// the mount table it is started from.
// --command nop: every runtime runs /bin/nop (nop.c: exits at once, no C library start-up) instead of
// busybox's /bin/true, whose static glibc start-up probes the CPU with CPUID, a VM exit each on a
// virtual machine: what is left is each runtime's own work.
// Start-to-exit of /bin/true (--command nop: /bin/nop) in a static busybox rootfs with full
// isolation and memory + pids limits: sbx (in-process, as the worker uses it) vs `crun run`, `runc
// run` (same limits) and bwrap (namespaces only, no cgroups), each CLI timed as spawn-and-wait by a
// tiny C spawner (spawn-timer.c: vfork + exec + waitpid), and the host fork+exec floor of the command.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DEFAULT_POOL_MIN_IDLE_PERCENT } from '../../core/src/config.ts';
import { closePool, launch, probeHost, type ExitInfo, type LaunchSpec } from '../index.ts';
import { ensureTools } from '../../loadtest/lib/bench-peers.ts';
import { inLanes } from '../../loadtest/lib/lanes.ts';
import { benchCommandPath, buildBusyboxRootfs, installBenchCommand } from './busybox-rootfs.ts';

const args = process.argv.slice(2);
const json = args.includes('--json');
const runsIdx = args.indexOf('--runs');
const runs = runsIdx >= 0 ? Number(args[runsIdx + 1]) : 500;
const numArg = (name: string, dflt: number) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
// Throughput mode: `concurrency` launches in flight (slots 0..C-1, as the worker runs them), each
// slot launching /bin/true back to back; launches per second over `throughputRuns` launches.
const concurrency = numArg('--concurrency', 8);
const throughputRuns = numArg('--throughput-runs', 800);
// --only-sbx: skip the peers (quick iterations while working on the launcher; no ratios)
const onlySbx = args.includes('--only-sbx');
const phasesRuns = numArg('--phases', 0);
// --no-pool: LaunchOptions.pool false (the direct path on every launch), for A/B runs
const noPool = args.includes('--no-pool');
// --spaced MS: every runtime (and --phases) pauses MS ms before each launch (not timed): a job
// arriving at an idle slot rather than back to back, where the previous launch's teardown and the
// slot's next setup still run
const spacedMs = numArg('--spaced', 0);
const hostMounts = numArg('--host-mounts', 0);
const commandIdx = args.indexOf('--command');
let command: string;
try {
  command = benchCommandPath(commandIdx >= 0 ? (args[commandIdx + 1] ?? '') : undefined);
} catch (e) {
  process.stderr.write(`bench:launcher: ${(e as Error).message}\n`);
  process.exit(2);
}
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

function ociBundle(runtime: string, dir: string, rootfs: string): void {
  fs.mkdirSync(dir, { recursive: true });
  execFileSync(runtime, ['spec'], { cwd: dir });
  const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
  cfg.root = { path: rootfs, readonly: true };
  cfg.process.terminal = false;
  cfg.process.args = [command];
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
  const env = { ...process.env, SPAWN_GAP_US: String(Math.round(spacedMs * 1000)) };
  const out = execFileSync(all[0]!, all.slice(1), { encoding: 'utf8', maxBuffer: 64 << 20, env });
  return JSON.parse(out.trim().split('\n').pop()!);
}

// sbx's time is launch() -> `ended`: the outcome (exit status + usage), when the worker reports the
// job's result. `exited` comes after the teardown (cgroup rmdirs, the slot's next setups requested),
// during which the caller already answers; it is kept per runner in `toExited` and printed too.
const toExited: Record<string, number[]> = {};

async function sbxBlock(rootfs: string, parent: string, n: number, seq: { i: number }, pool = !noPool, name = pool ? 'sbx' : 'sbx_direct'): Promise<{ times: number[]; failures: number }> {
  const times: number[] = [];
  let failures = 0;
  for (let k = 0; k < n; k++) {
    if (spacedMs > 0) await sleep(spacedMs);
    const t0 = performance.now();
    let endedMs = NaN;
    const x = await sbxRun(rootfs, parent, `bench-${seq.i++}`, pool ? 0 : 1, false, pool, () => { endedMs = performance.now() - t0; });
    (toExited[name] ??= []).push(performance.now() - t0);
    times.push(endedMs);
    if (x.exitCode !== 0) failures++;
  }
  return { times, failures };
}

async function sbxOne(rootfs: string, parent: string, id: string, slot: number, pool = !noPool): Promise<boolean> {
  return (await sbxRun(rootfs, parent, id, slot, false, pool)).exitCode === 0;
}

async function sbxRun(rootfs: string, parent: string, id: string, slot: number, trace = false, pool = !noPool, onEnded?: () => void): Promise<ExitInfo> {
  const spec: LaunchSpec = {
    id, slot, lowerDirs: [rootfs], argv: [command], env: ['PATH=/bin'], cwd: '/', uid: 0,
    gid: 0, hostname: 'bench', stdin: null,
    limits: { memoryBytes: MEM, pids: PIDS, cpus: 1, timeoutMs: 10_000, diskBytes: 64 << 20 },
  };
  // As a worker with the default SBX_POOL_MIN_IDLE_PERCENT launches.
  const j = await launch(spec, { cgroupParent: parent, ...(trace ? { trace } : {}), ...(pool ? { poolMinIdle: DEFAULT_POOL_MIN_IDLE_PERCENT / 100 } : { pool: false }) });
  j.stdout.resume();
  j.stderr.resume();
  if (onEnded) void j.ended.then(onEnded);
  return j.exited;
}

// Intervals between the trace points of native/src/trace.h: [label, from, to]. The launcher's
// cgroup work (cloned -> goSent) runs on the JS thread while the child unshares and mounts.
const PHASES: [string, string, string][] = [
  ['JS launch() -> native launch', 'jsStart', 'launch'],
  ['plan: spec -> mount program, init config, cgroup plan', 'launch', 'planned'],
  ['pipes, sync socket, pooled net namespace', 'planned', 'fdsOpen'],
  ['clone3 (CLONE_NEWPID) (pooled: -)', 'fdsOpen', 'cloned'],
  ['[JS thread] cgroups mkdir + limits (pooled: rename + limits), send G + config', 'cloned', 'goSent'],
  ['[child] clone -> child runs', 'cloned', 'childStart'],
  ['[child] unshare mnt/uts/ipc, setns net, reset signals', 'childStart', 'unshared'],
  ['[child] mount program (overlay, idmap, /proc, /dev, /sys, masks)', 'unshared', 'mounted'],
  ['[child] wait for G (cgroups ready)', 'mounted', 'gotGo'],
  ['[child] join v1 cgroups (tasks <- 0)', 'gotGo', 'joined'],
  ['[child] unshare cgroup ns + pivot_root', 'joined', 'pivoted'],
  ['[child] hostname, fds', 'pivoted', 'execInit'],
  ['execveat sbx-init (memfd, static)', 'execInit', 'initStart'],
  ['[pooled] hostname (setns into the setup), pipes + job message sent (stdio fds attached)', 'planned', 'cloned'],
  ['[pooled] job message sent -> received by the waiting sbx-init', 'cloned', 'initStart'],
  ['[pooled init] job message -> stdio (mounts, pivot_root and privilege drop made with the setup)', 'initStart', 'initJobMounted'],
  // Pooled: from the end of the stdio step: the init waits for "G" (the launcher's limits written).
  ['[init] read config (pooled: "G"; waits only if the launcher\'s limits are late)', 'initStart', 'initConfig'],
  ['[init] oom score, rlimits, setns userns, caps, creds, prctls (pooled: -)', 'initConfig', 'initDropped'],
  ['[init] seccomp filter (pooled: -)', 'initDropped', 'initSeccomp'],
  ['[init] -> start the command', 'initSeccomp', 'initForked'],
  ['[pooled init] "G" -> start the command', 'initConfig', 'initForked'],
  [`[cmd] clone(CLONE_VM|CLONE_VFORK) -> the child about to execve ${command}`, 'initForked', 'initCmdExec'],
  [`[cmd] execve ${command} (overlay, idmapped), it runs + exits, init wakes and reaps`, 'initCmdExec', 'initReaped'],
  // Not a step: the vfork parent is runnable once the child has exec'd, but often gets a CPU only
  // after the command has exited (the command keeps the CPU it exec'd on).
  ['[init] resumed after the vfork (the command exec\'d; often not before it exited)', 'initForked', 'initExecOk'],
  ['status (\'S\') -> launcher: SIGKILL to pid 1, usage read', 'initReaped', 'reaped'],
  ['"ended" emitted (outcome known; the caller reports it)', 'reaped', 'ended'],
  ['pid 1 exit -> pidfd readable in launcher (ns teardown, after "ended")', 'initReaped', 'exitSeen'],
  ['waitid + procs + cgroup rmdir (teardown, after "ended")', 'ended', 'cgroupRemoved'],
  ['exit event -> exited resolved in JS', 'cgroupRemoved', 'jsEnd'],
  ['TOTAL to the outcome (JS launch() -> ended)', 'jsStart', 'jsEnded'],
  ['TOTAL (JS launch() -> exited, after teardown)', 'jsStart', 'jsEnd'],
];

async function phasesMode(rootfs: string, parent: string, n: number, seq: { i: number }): Promise<Record<string, number>> {
  const samples: Record<string, number>[] = [];
  for (let k = 0; k < n + warmup; k++) {
    if (spacedMs > 0) await sleep(spacedMs);
    const t0 = process.hrtime.bigint();
    let endedMs = NaN;
    const x = await sbxRun(rootfs, parent, `bench-p-${seq.i++}`, 0, true, !noPool, () => { endedMs = Number(process.hrtime.bigint() - t0) / 1e6; });
    const total = Number(process.hrtime.bigint() - t0) / 1e6;
    if (k < warmup || !x.phases) continue;
    // jsStart/jsEnd: the JS clock's view; native times are relative to `launch`. Assume the JS
    // overhead before `launch` is what is left of the total after the native span.
    samples.push({ ...x.phases, jsStart: 0, jsEnded: endedMs, jsEnd: total });
  }
  const med = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)] ?? NaN; };
  // jsStart -> launch is not observable from the native side alone: the wrapper's own work before
  // the native call is measured by placing `launch` at (total - native span) for the tail.
  const out: Record<string, number> = {};
  for (const [label, from, to] of PHASES) {
    const pooledOnly = label.startsWith('[pooled');
    const ds = samples.filter((p) => p[from] !== undefined && p[to] !== undefined && (!pooledOnly || p.initJobMounted !== undefined)).map((p) => {
      if (from === 'jsStart' && to === 'launch') return NaN;
      if (from === 'cgroupRemoved' && to === 'jsEnd') return NaN;
      if (to === 'initConfig' && p.initJobMounted !== undefined) return p[to]! - p.initJobMounted;
      return p[to]! - p[from]!;
    });
    out[label] = Math.round(med(ds) * 1000) / 1000;
  }
  // JS overhead (both ends together): total - (native launch -> cgroupRemoved).
  out['JS wrapper overhead, both ends (total - native span)'] =
    Math.round(med(samples.map((p) => p.jsEnd! - (p.cgroupRemoved ?? p.reported ?? 0))) * 1000) / 1000;
  const pooled = samples.filter((p) => p.initJobMounted !== undefined);
  out['launches from a pooled setup (fraction)'] = Math.round((pooled.length / Math.max(1, samples.length)) * 1000) / 1000;
  out['  of which the setup was ready and waiting (fraction)'] = Math.round((pooled.filter((p) => p.poolReady !== undefined).length / Math.max(1, pooled.length)) * 1000) / 1000;
  // The launcher's limits + "G" (cloned -> goSent) overlap the init's stdio step; the init waits
  // for "G" only when they end later.
  out['  of which the init had to wait for "G" (fraction)'] = Math.round((pooled.filter((p) => p.goSent! > p.initJobMounted!).length / Math.max(1, pooled.length)) * 1000) / 1000;
  delete out['JS launch() -> native launch'];
  delete out['exit event -> exited resolved in JS'];
  return out;
}

interface Throughput { concurrency: number; launches: number; seconds: number; launches_per_s: number; failures: number; lastError?: string }

// `c` slots each launching back to back until `n` launches have been started; wall time from the
// first start to the last exit.
async function sbxThroughput(rootfs: string, parent: string, n: number, c: number, seq: { i: number }, pool = !noPool): Promise<Throughput> {
  let failures = 0;
  let lastError: string | undefined;
  const t0 = performance.now();
  await inLanes(c, n, async (slot) => {
    try {
      if (!(await sbxOne(rootfs, parent, `bench-t-${seq.i++}`, slot, pool))) {
        failures++;
        lastError = 'exit code not 0';
      }
    } catch (e) {
      failures++;
      lastError = String((e as Error).message ?? e);
    }
  });
  const seconds = (performance.now() - t0) / 1000;
  return { concurrency: c, launches: n, seconds: Math.round(seconds * 1000) / 1000, launches_per_s: Math.round(n / seconds), failures, ...(lastError ? { lastError } : {}) };
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
  for (const k of Object.keys(toExited)) toExited[k] = [];  // the warm-up's
  const per = Math.ceil(runs / rounds);
  for (let round = 0; round < rounds; round++) {
    // Each round starts one runtime further on: a block pays for the teardown its predecessor left
    // running in the kernel (net namespaces are freed by a kworker after the exit), and no runtime
    // may always follow the same one.
    for (let i = 0; i < runners.length; i++) {
      const r = runners[(i + round) % runners.length]!;
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

// --host-mounts: this bench again, in a private mount namespace with that many more mounts.
function inHostMounts(): number {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sbx-bench-mounts-'));
  try {
    const r = spawnSync('unshare', ['--mount', '--propagation', 'private', '--', 'python3', path.join(here, 'with-host-mounts.py'), dir,
      String(hostMounts), process.execPath, ...process.execArgv, process.argv[1]!, ...args], { stdio: 'inherit', env: { ...process.env, SBX_BENCH_HOST_MOUNTS: String(hostMounts) } });
    if (r.error) throw r.error;
    return r.status ?? 1;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function mountCount(): number {
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(Boolean).length;
}

async function main(): Promise<void> {
  if (hostMounts > 0 && process.env.SBX_BENCH_HOST_MOUNTS !== String(hostMounts)) process.exit(inHostMounts());
  const probe = probeHost();
  if (!probe.ok) throw new Error(`host unsupported: ${probe.missing.join('; ')}`);
  // The peers are installed here or the bench fails naming them: never a null ratio.
  ensureTools({ crun: 'crun', runc: 'runc', bwrap: 'bubblewrap', gcc: 'gcc', busybox: 'busybox-static' }, log);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sbx-bench-'));
  const parent = `sbx-bench-${process.pid}`;
  const rootfs = path.join(tmp, 'rootfs');
  buildBusyboxRootfs(rootfs);
  installBenchCommand(rootfs, command);
  spawnTimer = path.join(tmp, 'spawn-timer');
  execFileSync('gcc', ['-O2', '-o', spawnTimer, path.join(here, 'spawn-timer.c')]);
  let results: Record<string, Stat | null> = {};
  let throughput: Throughput | null = null;
  let throughputDirect: Throughput | null = null;
  try {
    if (phasesRuns > 0) {
      const ph = await phasesMode(rootfs, parent, phasesRuns, { i: 0 });
      log(`where the time goes: median of ${phasesRuns} traced sequential launches of ${command}, ms`);
      for (const [k, v] of Object.entries(ph)) log(`${String(v).padStart(8)}  ${k}`);
      process.stdout.write(JSON.stringify({ phases_runs: phasesRuns, command, phases_ms: ph }) + '\n');
      return;
    }
    log(`runs=${runs} per runtime (+${warmup} warm-up), ${command}, memory ${MEM >> 20} MiB + pids ${PIDS}, interleaved in rounds, ${spacedMs > 0 ? `each launch ${spacedMs} ms after the previous one's end` : 'back to back'}, ${mountCount()} mounts in the namespace runtimes start from`);
    const seq = { i: 0 };
    const runners: Runner[] = [
      { name: 'host', block: async (n) => cli([path.join(rootfs, command)], n) },
      { name: 'sbx', block: (n) => sbxBlock(rootfs, parent, n, seq) },
      // the same launcher without pooled setups (LaunchOptions.pool false): every launch does it all
      { name: 'sbx_direct', block: (n) => sbxBlock(rootfs, parent, n, seq, false) },
    ];
    if (!onlySbx) {
      ociBundle('crun', path.join(tmp, 'crun'), rootfs);
      // crun 1.8 refuses hybrid cgroups while /sys/fs/cgroup/unified has a controller: hide it in
      // a private mount namespace (measurement-notes.md).
      const cmd = ['crun', 'run', '--bundle', path.join(tmp, 'crun'), `sbx-bench-crun-${process.pid}`];
      const prefix = ['unshare', '-m', '--propagation', 'private', '--', 'sh', '-c', 'umount /sys/fs/cgroup/unified 2>/dev/null; exec "$@"', 'sh'];
      runners.push({ name: 'crun', block: async (n) => cli(cmd, n, prefix) });
    }
    if (!onlySbx) {
      ociBundle('runc', path.join(tmp, 'runc'), rootfs);
      const cmd = ['runc', 'run', '--bundle', path.join(tmp, 'runc'), `sbx-bench-runc-${process.pid}`];
      runners.push({ name: 'runc', block: async (n) => cli(cmd, n) });
    }
    if (!onlySbx) {
      const cmd = ['bwrap', '--unshare-pid', '--unshare-net', '--unshare-ipc', '--unshare-uts', '--ro-bind', rootfs, '/',
        '--proc', '/proc', '--dev', '/dev', command];
      runners.push({ name: 'bwrap', block: async (n) => cli(cmd, n) });
    }
    results = await runAll(runners, Math.max(1, Math.min(10, Math.floor(runs / 20))));
    for (const [k, v] of Object.entries(results)) log(`${k.padEnd(5)} ${JSON.stringify(v)}`);
    for (const [k, v] of Object.entries(toExited)) log(`${k} to exited (after teardown): ${JSON.stringify(stats(v.slice(0, runs), 0))}`);
    if (throughputRuns > 0) {
      // pooled and direct in alternating halves, so load from elsewhere hits both alike
      const half = Math.ceil(throughputRuns / 2);
      const acc = { pooled: [] as Throughput[], direct: [] as Throughput[] };
      await sbxThroughput(rootfs, parent, Math.min(100, half), concurrency, seq);  // warm-up
      for (const round of [0, 1]) {
        for (const pool of round === 0 ? [true, false] : [false, true]) {
          acc[pool ? 'pooled' : 'direct'].push(await sbxThroughput(rootfs, parent, Math.ceil(half / 2), concurrency, seq, pool));
        }
      }
      const merge = (xs: Throughput[]): Throughput => {
        const launches = xs.reduce((a, x) => a + x.launches, 0);
        const seconds = xs.reduce((a, x) => a + x.seconds, 0);
        const failures = xs.reduce((a, x) => a + x.failures, 0);
        const lastError = xs.map((x) => x.lastError).find(Boolean);
        return { concurrency, launches, seconds: Math.round(seconds * 1000) / 1000, launches_per_s: Math.round(launches / seconds), failures, ...(lastError ? { lastError } : {}) };
      };
      throughput = merge(acc.pooled);
      throughputDirect = merge(acc.direct);
      log(`sbx throughput at concurrency ${concurrency}: ${throughput.launches_per_s} launches/s pooled, ${throughputDirect.launches_per_s} direct (${throughput.launches}+${throughputDirect.launches} launches, ${throughput.failures + throughputDirect.failures} failures)`);
    }
  } finally {
    closePool(); // the pooled setups' groups are inside the parent: removed first
    for (const c of ['memory', 'pids', 'cpu', 'cpuacct', 'freezer', 'devices']) {
      try { fs.rmdirSync(`/sys/fs/cgroup/${c}/${parent}`); } catch { /* absent */ }
    }
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  const failed = (onlySbx ? ['host', 'sbx', 'sbx_direct'] : ['host', 'sbx', 'sbx_direct', 'crun', 'runc', 'bwrap']).filter((k) => !results[k]);
  if (failed.length) throw new Error(`every run failed for: ${failed.join(', ')} (no ratio without both sides)`);
  for (const t of [throughput, throughputDirect]) {
    if (t?.failures) throw new Error(`throughput: ${t.failures} of ${t.launches} launches failed (last: ${t.lastError})`);
  }
  const pick = (s: Stat | null | undefined) => ({ median_ms: s!.median_ms, p90_ms: s!.p90_ms, failures: s!.failures });
  const exitedStat = (k: string) => { const st = stats(toExited[k]!.slice(0, runs), 0); return { median_ms: st.median_ms, p90_ms: st.p90_ms }; };
  if (onlySbx) {
    process.stdout.write(JSON.stringify({ runs, command, spaced_ms: spacedMs, mounts: mountCount(), measured_to: 'ended', sbx: pick(results.sbx), sbx_direct: pick(results.sbx_direct), sbx_to_exited: exitedStat('sbx'), sbx_direct_to_exited: exitedStat('sbx_direct'), host_fork_exec: pick(results.host), throughput, throughput_direct: throughputDirect }) + '\n');
    return;
  }
  const ratio = (k: string) => Math.round((results.sbx!.median_ms / results[k]!.median_ms) * 1000) / 1000;
  const directRatio = (k: string) => Math.round((results.sbx_direct!.median_ms / results[k]!.median_ms) * 1000) / 1000;
  const exitedRatio = (k: string) => Math.round((exitedStat('sbx').median_ms / results[k]!.median_ms) * 1000) / 1000;
  log(`ratios (sbx median to the outcome / other median): crun ${ratio('crun')}, runc ${ratio('runc')}, bwrap ${ratio('bwrap')}; without pooled setups: crun ${directRatio('crun')}, bwrap ${directRatio('bwrap')}; sbx to exited (after teardown): crun ${exitedRatio('crun')}, bwrap ${exitedRatio('bwrap')}`);
  process.stdout.write(JSON.stringify({
    runs, command, spaced_ms: spacedMs, mounts: mountCount(), measured_to: 'ended', sbx: pick(results.sbx), sbx_to_exited: exitedStat('sbx'), sbx_exited_ratio_vs_crun: exitedRatio('crun'), sbx_exited_ratio_vs_bwrap: exitedRatio('bwrap'), crun: pick(results.crun), runc: pick(results.runc), bwrap: pick(results.bwrap),
    host_fork_exec: pick(results.host), ratio_vs_crun: ratio('crun'), ratio_vs_runc: ratio('runc'), ratio_vs_bwrap: ratio('bwrap'),
    sbx_direct: pick(results.sbx_direct), direct_ratio_vs_crun: directRatio('crun'), direct_ratio_vs_bwrap: directRatio('bwrap'),
    throughput, throughput_direct: throughputDirect,
  }) + '\n');
}

main().catch((e: unknown) => {
  process.stderr.write(`bench:launcher: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
