/**
 * The worker's own cgroup subtree (<SBX_CGROUP_PARENT>/<worker>) outlives each job's group; on a
 * clean shutdown the worker removes it, and the shared parent too once no other worker uses it.
 * rmdir only ever removes an empty cgroup, so this can never disturb another worker's jobs.
 */
import { existsSync, readdirSync, readFileSync, realpathSync, rmdirSync, type Dirent } from 'node:fs';
import { join } from 'node:path';

const CGROUP_ROOT = '/sys/fs/cgroup';

/** Every hierarchy mounted under `root`: the v2 root, or each v1 controller directory (deduplicated; a hybrid's unified one too). */
export function hierarchies(root = CGROUP_ROOT): string[] {
  let entries: string[];
  try {
    entries = readdirSync(root);
  } catch {
    return [];
  }
  if (entries.includes('cgroup.controllers')) return [root];
  const roots = new Set<string>();
  for (const e of entries) {
    try {
      roots.add(realpathSync(join(root, e)));
    } catch {
      // a dangling link: nothing mounted there
    }
  }
  return [...roots];
}

/** rmdir `relPath` and its ancestors up to and including the first component, while empty. */
export function removeEmptyCgroupPath(relPath: string): number {
  const parts = relPath.split('/').filter(Boolean);
  let removed = 0;
  for (const root of hierarchies()) {
    for (let depth = parts.length; depth > 0; depth--) {
      try {
        rmdirSync(join(root, ...parts.slice(0, depth)));
        removed++;
      } catch {
        break; // ENOENT (not in this hierarchy), EBUSY/ENOTEMPTY (still used): leave it and above
      }
    }
  }
  return removed;
}

/**
 * Remove `relPath` and every cgroup below it, deepest first, in every hierarchy. Only empty groups
 * can be removed (the kernel refuses one with processes), so live jobs are never touched.
 */
export function removeCgroupTree(relPath: string): void {
  for (const root of hierarchies()) removeCgroupDir(join(root, relPath));
}

/** The groups directly below `dir` (none if it cannot be read). */
export function cgroupChildren(dir: string): string[] {
  let children: Dirent[];
  try {
    children = readdirSync(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  return children.filter((c) => c.isDirectory()).map((c) => c.name);
}

/** rmdir the group `dir` (absolute) and every group below it, deepest first; false if any is still there. */
export function removeCgroupDir(dir: string): boolean {
  let ok = true;
  for (const c of cgroupChildren(dir)) ok = removeCgroupDir(join(dir, c)) && ok;
  try {
    rmdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') ok = false; // busy: a process in it
  }
  return ok;
}

/**
 * cgroup v2 lets a group other than the root hand its controllers (memory, pids, cpu) to groups
 * below it only while it holds no process itself ("no internal processes", cgroup-v2.rst): the
 * launcher enables them in every group from the mount's top down to <SBX_CGROUP_PARENT>/<worker>,
 * so one such group with a process in it makes every job's group fail: typically the worker's own,
 * SBX_CGROUP_PARENT set to its systemd unit's group, or a container's private cgroup namespace,
 * whose top (/sys/fs/cgroup there) is the container's group. One line per such group that exists
 * (from the top), naming the processes; none on v1, which has no such rule. `root`: where the
 * cgroup filesystem is mounted.
 */
export function v2ParentProblems(relPath: string, root = CGROUP_ROOT): string[] {
  if (hierarchies(root)[0] !== root) return []; // v1 (or nothing mounted)
  const parts = relPath.split('/').filter(Boolean);
  // The top is the kernel's root group (exempt) unless it shows cgroup.type, which the root has not.
  const groups = existsSync(join(root, 'cgroup.type')) ? [''] : [];
  for (let depth = 1; depth <= parts.length; depth++) groups.push(parts.slice(0, depth).join('/'));
  const problems: string[] = [];
  for (const group of groups) {
    const pids = processesIn(join(root, group));
    if (!pids.length) continue;
    const own = pids.includes(process.pid) ? ', this worker among them' : '';
    const shown = pids.slice(0, 5).join(' ') + (pids.length > 5 ? ` … (${pids.length})` : '');
    const name = group ? `the cgroup ${group}` : `the top of ${root}, not the host's root group (a private cgroup namespace: a container's group),`;
    problems.push(`${name} holds processes (pid ${shown}${own}), and cgroup v2 gives no memory, pids or cpu limits below a group that holds processes: every job would fail to start. ${group ? 'Set SBX_CGROUP_PARENT to a group that holds none (the default `sbx`, or with systemd\'s Delegate=yes a group below the unit\'s, the worker itself in another one)' : 'Run the worker in the host\'s cgroup namespace (Docker: cgroup: host / --cgroupns=host)'}`);
  }
  return problems;
}

/** The pids in the group `dir` (none if it does not exist). */
function processesIn(dir: string): number[] {
  try {
    return readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}
