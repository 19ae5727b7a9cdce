/**
 * `npm run bench`: every benchmark in sequence, each side by side with its peers (installed by the
 * bench itself, or it fails naming what is missing), at a modest default size; prints ONE JSON
 * summary on stdout (per bench: its own JSON result with medians, peers' medians and ratios; the
 * machine; the date; `targets`: issue 13's targets as this run met them, loadtest/lib/issue-13-targets.ts)
 * and exits non-zero if any bench failed. Progress goes to stderr.
 * The end-to-end benches (e2e, attach, python, output) start a stack of their own and stop it after.
 * Before each bench it writes dirty pages back and waits (up to 20 s) for the CPUs to go quiet
 * (lib/settle.ts), so that no bench measures the kernel's leftovers of the one before; each bench's
 * `settled` in the summary says how long that took and how busy the machine still was.
 *
 * Flags:
 *   --only a,b        run only these benches (launcher, launcher-spaced, launcher-mounts, launcher-nop, throughput, pull, pull-small, zstd, disk, e2e, attach, python, output, egress)
 *   --skip a,b        run all but these
 *   --<bench>-args "…" replace that bench's default flags, e.g. --launcher-args "--runs 1000"
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, resolve } from 'node:path';
import { formatTargets, readTargets } from './lib/issue-13-targets.ts';
import { settle, type Settled } from './lib/settle.ts';
import { WORKER_NODE_FLAGS } from '../worker/src/node-flags.ts';

interface Bench { name: string; cmd: string[]; args: string[] }

const root = resolve(dirname(new URL(import.meta.url).pathname), '..');
const tsx = resolve(root, 'node_modules/.bin/tsx');

/** node started as the worker is (its V8 flags), for a bench whose pulls run in its own process. */
const inWorkerNode = (script: string): string[] => [process.execPath, ...WORKER_NODE_FLAGS, '--import', 'tsx', script];

const BENCHES: Bench[] = [
  { name: 'launcher', cmd: [tsx, 'native/bench/launcher-bench.ts'], args: ['--runs', '200', '--json'] },
  // the same, each launch 1 ms after the previous one's end (a job arriving at an idle slot)
  { name: 'launcher-spaced', cmd: [tsx, 'native/bench/launcher-bench.ts'], args: ['--runs', '200', '--spaced', '1', '--throughput-runs', '0', '--json'] },
  // the same, started from a mount namespace with 500 more mounts (a busy container host's table)
  { name: 'launcher-mounts', cmd: [tsx, 'native/bench/launcher-bench.ts'], args: ['--runs', '200', '--host-mounts', '500', '--throughput-runs', '0', '--json'] },
  // the same with a command that runs no C library start-up (nop.c): each runtime's own work, without
  // the CPUID probing of busybox's static glibc (a VM exit each on a virtual machine). Informational:
  // issue 13's targets are read from `launcher`, /bin/true.
  { name: 'launcher-nop', cmd: [tsx, 'native/bench/launcher-bench.ts'], args: ['--runs', '200', '--command', 'nop', '--json'] },
  // launches/s at concurrency 8 against the launcher of issue 13's day, built from history, side by side
  { name: 'throughput', cmd: [tsx, 'native/bench/throughput-bench.ts'], args: ['--rounds', '4', '--json'] },
  // outputs on a new ext4 per run: on this machines' journal-less ext4 a run after many deletions
  // pays for them (worker/bench/BENCHMARKS.md), whichever tool comes next. The bench image (250 MB,
  // issue 13's), then a small one.
  { name: 'pull', cmd: inWorkerNode('worker/bench/pull-bench.ts'), args: ['--runs', '3', '--fresh-fs', '--json'] },
  { name: 'pull-small', cmd: inWorkerNode('worker/bench/pull-bench.ts'), args: ['--runs', '3', '--small', '--fresh-fs', '--json'] },
  { name: 'zstd', cmd: [tsx, 'worker/bench/zstd-bench.ts'], args: ['--runs', '3', '--mb', '50', '--json'] },
  { name: 'disk', cmd: ['bash', 'native/bench/disk-budget-bench.sh'], args: ['50', '3'] },
  // jobs/s over 15 s of load (was 5): the same stack at 16:xx on 2026-12-07 read 297.5 jobs/s over 5 s
  // (6.44 ms of machine CPU per job) and 309.4 over 20 s (5.95 ms): the API's and the worker's CPU
  // per job fall for the first seconds of load after the warm-up (JIT, GC), so 5 s read a start-up.
  { name: 'e2e', cmd: [tsx, 'loadtest/bench-e2e.ts'], args: ['--own-stack', '--runs', '200', '--sse-runs', '50', '--seconds', '15', '--json'] },
  { name: 'attach', cmd: [tsx, 'loadtest/bench-attach.ts'], args: ['--own-stack', '--keys', '100', '--json'] },
  { name: 'python', cmd: [tsx, 'loadtest/bench-python.ts'], args: ['--runs', '50', '--json'] },
  // a job's 1, 4 and 16 MiB of output through ?wait=true and over SSE, against the command on the host
  { name: 'output', cmd: [tsx, 'loadtest/bench-output.ts'], args: ['--runs', '10', '--json'] },
  // network "egress" jobs' proxy against tinyproxy and no proxy: throughput, CPU per GB, per-connection latency
  { name: 'egress', cmd: [tsx, 'worker/bench/egress-bench.ts'], args: ['--mb', '256', '--runs', '5', '--requests', '200', '--json'] },
];

function parseFlags(argv: string[]): { only?: Set<string>; skip: Set<string>; args: Map<string, string[]> } {
  const list = (v: string | undefined) => new Set((v ?? '').split(',').map((s) => s.trim()).filter(Boolean));
  const out = { only: undefined as Set<string> | undefined, skip: new Set<string>(), args: new Map<string, string[]>() };
  const names = new Set(BENCHES.map((b) => b.name));
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const value = argv[i + 1];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    if (flag === '--only') out.only = list(value);
    else if (flag === '--skip') out.skip = list(value);
    else if (/^--[a-z0-9-]+-args$/.test(flag) && names.has(flag.slice(2, -5))) out.args.set(flag.slice(2, -5), value.split(/\s+/).filter(Boolean));
    else throw new Error(`unknown flag ${flag} (benches: ${[...names].join(', ')})`);
    i++;
  }
  for (const n of [...(out.only ?? []), ...out.skip]) if (!names.has(n)) throw new Error(`unknown bench ${n}`);
  return out;
}

function cgroupMode(): string {
  if (existsSync('/sys/fs/cgroup/cgroup.controllers')) return 'v2 (unified)';
  if (existsSync('/sys/fs/cgroup/unified')) return 'v1 (hybrid: v1 controllers + v2 unified mount)';
  return 'v1 (legacy)';
}

function machine(): Record<string, unknown> {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  return {
    cpu: /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? os.cpus()[0]?.model ?? 'unknown',
    cores: os.availableParallelism(),
    memoryBytes: os.totalmem(),
    kernel: os.release(),
    cgroup: cgroupMode(),
    node: process.version,
    hostname: os.hostname(),
  };
}

interface Outcome { ok: boolean; exitCode: number | null; seconds: number; args: string[]; settled?: Settled; result?: unknown; error?: string }

/** Runs one bench; its stderr and non-JSON stdout lines are passed to our stderr; its last JSON line is its result. */
function runBench(b: Bench, args: string[]): Promise<Outcome> {
  const t0 = performance.now();
  process.stderr.write(`\n=== bench ${b.name}: ${[...b.cmd, ...args].join(' ')}\n`);
  return new Promise((done) => {
    const child = spawn(b.cmd[0]!, [...b.cmd.slice(1), ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let errTail = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      process.stderr.write(d);
    });
    child.stderr.on('data', (d: Buffer) => {
      errTail = (errTail + d.toString()).slice(-2000);
      process.stderr.write(d);
    });
    const finish = (exitCode: number | null, spawnError?: Error) => {
      const seconds = Math.round((performance.now() - t0) / 100) / 10;
      const lines = stdout.trim().split('\n').reverse();
      let result: unknown;
      for (const l of lines) {
        try {
          result = JSON.parse(l);
          break;
        } catch { /* not the JSON line */ }
      }
      const ok = exitCode === 0 && result !== undefined && !spawnError;
      const error = ok ? undefined : spawnError?.message ?? (result === undefined && exitCode === 0 ? 'no JSON result on stdout' : errTail.trim().split('\n').slice(-3).join(' | ') || `exit ${exitCode}`);
      done({ ok, exitCode, seconds, args, ...(result !== undefined ? { result } : {}), ...(error ? { error } : {}) });
    };
    child.on('error', (e) => finish(null, e));
    child.on('close', (code) => finish(code));
  });
}

async function main(): Promise<void> {
  const flags = parseFlags(process.argv.slice(2));
  const started = new Date();
  const benches: Record<string, Outcome> = {};
  for (const b of BENCHES) {
    if ((flags.only && !flags.only.has(b.name)) || flags.skip.has(b.name)) continue;
    // Each bench starts on a machine as quiet as it gets: not in the wake of the one before.
    const settled = await settle();
    process.stderr.write(`\n=== bench ${b.name}: ${settled.quiet ? 'machine quiet' : 'machine still busy, running anyway'} after ${settled.seconds} s (CPUs ${Math.round(settled.busy * 100)} % busy)`);
    benches[b.name] = { ...(await runBench(b, flags.args.get(b.name) ?? b.args)), settled };
    process.stderr.write(`=== bench ${b.name}: ${benches[b.name]!.ok ? 'ok' : `FAILED (${benches[b.name]!.error})`} in ${benches[b.name]!.seconds} s\n`);
  }
  const failed = Object.entries(benches).filter(([, o]) => !o.ok).map(([n]) => n);
  const targets = readTargets(benches);
  process.stderr.write(`\n=== issue 13's targets in this run\n${formatTargets(targets)}\n`);
  process.stdout.write(`${JSON.stringify({ date: started.toISOString(), machine: machine(), ok: failed.length === 0, failed, targets, benches }, null, 2)}\n`);
  if (failed.length) process.exitCode = 1;
}

main().catch((e: unknown) => {
  process.stderr.write(`bench: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(2);
});
