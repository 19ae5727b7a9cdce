/**
 * The worker's own cgroup subtree (<SBX_CGROUP_PARENT>/<worker>) outlives each job's group; on a
 * clean shutdown the worker removes it, and the shared parent too once no other worker uses it.
 * rmdir only ever removes an empty cgroup, so this can never disturb another worker's jobs.
 */
import { readdirSync, realpathSync, rmdirSync, type Dirent } from 'node:fs';
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
