/**
 * Launches per second of one launcher build: C slots each launching `/bin/true` (static busybox
 * rootfs, 64 MiB memory + 64 pids limits, every isolation property on) back to back until N launches
 * are done, after a warm-up. One process per measurement, so that two builds of the launcher (this
 * tree's and the issue-day one, issue-day-launcher.ts) are measured the same way, never in one
 * process. Used by throughput-bench.ts; prints one JSON line: launches/s and the machine's busy CPU time
 * per launch (/proc/stat, every process and the kernel's threads: the job's teardown included).
 *
 *   tsx native/bench/launch-throughput.ts --native <path to native/index.ts> [--launches 800] [--concurrency 8] [--warm-up 200]
 *     [--command true|nop]   (nop: /bin/nop, no C library start-up: busybox-rootfs.ts benchCommandPath())
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DEFAULT_POOL_MIN_IDLE_PERCENT } from '../../core/src/config.ts';
import { inLanes } from '../../loadtest/lib/lanes.ts';
import { machineCpu } from '../../loadtest/lib/machine-cpu.ts';
import { flagValue, positiveFlag } from './bench-flags.ts';
import { benchCommandPath, buildBusyboxRootfs, installBenchCommand } from './busybox-rootfs.ts';

interface Launcher {
  launch(spec: Record<string, unknown>, opts: Record<string, unknown>): Promise<{
    stdout: NodeJS.ReadableStream;
    stderr: NodeJS.ReadableStream;
    exited: Promise<{ exitCode: number | null }>;
  }>;
  closePool?: () => void;
}

const args = process.argv.slice(2);
const nativeFlag = flagValue(args, '--native');
if (!nativeFlag) throw new Error('--native is required');
const nativeIndex = path.resolve(nativeFlag);
const launches = positiveFlag(args, '--launches', 800);
const concurrency = positiveFlag(args, '--concurrency', 8);
const warmUp = positiveFlag(args, '--warm-up', 200);
const command = benchCommandPath(flagValue(args, '--command', 'true'));

async function measure(launcher: Launcher, rootfs: string, parent: string, n: number, seq: { i: number }): Promise<{ perSecond: number; cpuMsPerLaunch: number }> {
  const busy0 = machineCpu()!.busy;
  const t0 = performance.now();
  await inLanes(concurrency, n, async (slot) => {
    const spec = {
      id: `tput-${seq.i++}`, slot, lowerDirs: [rootfs], argv: [command], env: ['PATH=/bin'], cwd: '/', uid: 0, gid: 0,
      hostname: 'bench', stdin: null, limits: { memoryBytes: 64 << 20, pids: 64, cpus: 1, timeoutMs: 10_000, diskBytes: 64 << 20 },
    };
    // As a worker with the default SBX_POOL_MIN_IDLE_PERCENT launches (a launcher without the option ignores it).
    const job = await launcher.launch(spec, { cgroupParent: parent, poolMinIdle: DEFAULT_POOL_MIN_IDLE_PERCENT / 100 });
    job.stdout.resume();
    job.stderr.resume();
    const exit = await job.exited;
    if (exit.exitCode !== 0) throw new Error(`launch ${spec.id} exited with ${exit.exitCode}`);
  });
  const seconds = (performance.now() - t0) / 1000;
  return { perSecond: n / seconds, cpuMsPerLaunch: (machineCpu()!.busy - busy0) / n };
}

/** The parent group in every hierarchy (v1) or the unified one (v2); a group still emptying is retried. */
async function removeCgroupParent(name: string): Promise<void> {
  for (const dir of ['memory', 'pids', 'cpu', 'cpuacct', 'freezer', 'devices', ''].map((c) => path.join('/sys/fs/cgroup', c, name))) {
    for (let attempt = 0; ; attempt++) {
      try {
        fs.rmdirSync(dir);
        break;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' || code === 'ENOTDIR') break;
        if (attempt >= 50) throw new Error(`could not remove the bench's cgroup ${dir}: ${String(e)}`);
        await new Promise((r) => setTimeout(r, 40));
      }
    }
  }
}

const launcher = (await import(nativeIndex)) as Launcher;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sbx-throughput-'));
const parent = `sbx-throughput-${process.pid}`;
try {
  const rootfs = path.join(tmp, 'rootfs');
  buildBusyboxRootfs(rootfs);
  installBenchCommand(rootfs, command);
  const seq = { i: 0 };
  await measure(launcher, rootfs, parent, warmUp, seq);
  const { perSecond, cpuMsPerLaunch } = await measure(launcher, rootfs, parent, launches, seq);
  process.stdout.write(`${JSON.stringify({ native: nativeIndex, command, launches, concurrency, launches_per_s: Math.round(perSecond), machine_cpu_ms_per_launch: Math.round(cpuMsPerLaunch * 100) / 100 })}\n`);
} finally {
  launcher.closePool?.(); // the pooled setups' groups are inside the parent: removed first
  await removeCgroupParent(parent);
  fs.rmSync(tmp, { recursive: true, force: true });
}
process.exit(0);
