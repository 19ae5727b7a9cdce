/**
 * Launches per second of the kernel floor (kernel-floor.c): the kernel objects every sbx job gets
 * (six v1 cgroups or one v2 group with limits, pid/mount/uts/ipc/net/cgroup namespaces with lo up, the
 * job's mounts and pivot_root, an exec) made and removed by the least code that can, with no launcher,
 * no init, no seccomp and no user namespace. Measured as launch-throughput.ts measures a launcher (same
 * rootfs, command, limits, warm-up and /proc/stat CPU), and printed as the same one JSON line, so that
 * throughput-bench.ts can put it beside the launchers: no launcher keeping this isolation can go past it.
 *
 *   tsx native/bench/kernel-floor.ts [--launches 800] [--concurrency 8] [--warm-up 200] [--command true|nop]
 *     [--without net,cgroups,mounts]   (leaves those out: what each costs; kernel-floor.c)
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { flagValue, positiveFlag } from './bench-flags.ts';
import { benchCommandPath, buildBusyboxRootfs, installBenchCommand } from './busybox-rootfs.ts';

const here = path.dirname(new URL(import.meta.url).pathname);

/** rmdir, retried while the kernel still counts the group's last task (EBUSY) for up to 2 s. */
function removeGroup(dir: string): void {
  for (let attempt = 0; ; attempt++) {
    try {
      return fs.rmdirSync(dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EBUSY' || attempt >= 50) throw e;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 40);
    }
  }
}

/** Its cgroups, wherever a failed run left them: the groups of the parent, then the parent. */
function removeParentGroups(parent: string): void {
  for (const controller of ['memory', 'pids', 'cpu', 'cpuacct', 'freezer', 'devices', '']) {
    const dir = path.join('/sys/fs/cgroup', controller, parent);
    if (!fs.existsSync(dir)) continue;
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) if (entry.isDirectory()) removeGroup(path.join(dir, entry.name));
    removeGroup(dir);
  }
}

const args = process.argv.slice(2);
const launches = positiveFlag(args, '--launches', 800);
const concurrency = positiveFlag(args, '--concurrency', 8);
const warmUp = positiveFlag(args, '--warm-up', 200);
const command = benchCommandPath(flagValue(args, '--command', 'true'));
const withoutParts = flagValue(args, '--without');
const without = withoutParts === undefined ? [] : ['--without', withoutParts];

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sbx-kernel-floor-'));
const parent = `sbx-kernel-floor-${process.pid}`;
try {
  const rootfs = path.join(tmp, 'rootfs');
  const state = path.join(tmp, 'state');
  const binary = path.join(tmp, 'kernel-floor');
  buildBusyboxRootfs(rootfs);
  installBenchCommand(rootfs, command);
  fs.mkdirSync(state);
  execFileSync('gcc', ['-O2', '-pthread', '-o', binary, path.join(here, 'kernel-floor.c')]);
  const out = execFileSync(binary, ['--rootfs', rootfs, '--state', state, '--parent', parent, '--command', command,
    '--launches', String(launches), '--concurrency', String(concurrency), '--warm-up', String(warmUp), ...without], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  process.stdout.write(out.trim().split('\n').pop()! + '\n');
} finally {
  removeParentGroups(parent);
  fs.rmSync(tmp, { recursive: true, force: true });
}
