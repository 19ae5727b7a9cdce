/**
 * The cgroup subtrees of workers gone for good. Each worker writes only below
 * <SBX_CGROUP_PARENT>/<its id> and, at start, sweeps that subtree (native sweep(): what a crashed
 * predecessor with the same id left). A worker SIGKILLed that never comes back under its id left its
 * subtree (its jobs' groups, emptied as their processes died with it) for good: nobody swept it.
 * Here any worker of the host removes the sibling subtrees under the same parent whose worker is not
 * live (no heartbeat key in Redis) and that hold no process: at start and at each janitor pass.
 *
 * Never a live worker's: the live set is read before looking and again just before removing, a
 * subtree made in the last two minutes is left (its worker may not have heartbeated yet), a
 * subtree with any process in any of its groups is left whole, and the kernel removes only empty
 * groups (rmdir). Nor a group that is not sbx's: a subtree whose groups are not named as job groups
 * (`j_…`, `pool-<pid>-<n>`), or that has none, is left alone. Worker ids map to subtree names as in
 * worker/src/main.ts.
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { RedisClient } from '../../core/src/redis.ts';
import { cgroupChildren, hierarchies, removeCgroupDir } from './cgroup-parent.ts';
import type { RedisKeys } from '../../core/src/redis-keys.ts';

/** A worker's subtree name below SBX_CGROUP_PARENT (worker/src/main.ts). */
export function workerCgroupName(workerId: string): string {
  return workerId.replace(/[^A-Za-z0-9._-]/g, '_');
}

/**
 * A subtree made this recently is left: its worker may be starting, its first heartbeat not landed
 * yet (a cgroup directory's mtime is when it was made; groups made in it do not change it).
 */
const MIN_AGE_MS = 120_000;

function youngerThan(dir: string, ms: number): boolean {
  // No age asked: not young, even made this millisecond (Date.now() is whole milliseconds, an mtime
  // is not, so a group made in the current one reads as made in the future).
  if (ms <= 0) return false;
  try {
    return Date.now() - statSync(dir).mtimeMs < ms;
  } catch {
    return false; // gone meanwhile
  }
}

/** The groups a worker makes directly below its subtree: a job's (its id) or a pooled setup's. */
const JOB_GROUP = /^(j_[0-9A-Za-z]+|pool-\d+-\d+)$/;

export interface GoneWorkerCgroups {
  /** Subtree names removed (in every hierarchy where they were). */
  removed: string[];
  /** Subtree names of workers not live that were left: a process in them, a foreign group, or a removal refused. */
  left: string[];
}

/** Whether any group in `dir`'s subtree (it included) has a process. */
function holdsProcesses(dir: string): boolean {
  try {
    if (readFileSync(join(dir, 'cgroup.procs'), 'utf8').trim() !== '') return true;
  } catch {
    // gone meanwhile, or not a cgroup directory: nothing to hold
  }
  return cgroupChildren(dir).some((c) => holdsProcesses(join(dir, c)));
}

/** The subtree names of the live workers (heartbeat key present) in the index. One ZRANGE and one pipeline. */
export async function liveWorkerCgroupNames(redis: RedisClient, keys: RedisKeys): Promise<Set<string>> {
  const ids = await redis.zrange(keys.workers(), 0, -1);
  const live = new Set<string>();
  if (!ids.length) return live;
  const pipe = redis.pipeline();
  for (const id of ids) pipe.exists(keys.worker(id));
  const rows = (await pipe.exec()) ?? [];
  rows.forEach(([err, n], i) => {
    // A failed look counts as live: never remove on a guess.
    if (err || n === 1) live.add(workerCgroupName(ids[i]!));
  });
  return live;
}

/**
 * Remove the subtrees below `parent` (SBX_CGROUP_PARENT) of workers that are not live, except
 * `self`'s (the caller's own subtree name: swept by the native sweep()). `live` reads the live
 * workers' subtree names (liveWorkerCgroupNames); it is read only when there is a sibling subtree,
 * and once more before removing. `root`: where the hierarchies are mounted.
 */
export async function removeGoneWorkerCgroups(parent: string, self: string, live: () => Promise<Set<string>>, root = '/sys/fs/cgroup', minAgeMs = MIN_AGE_MS): Promise<GoneWorkerCgroups> {
  const mounts = hierarchies(root);
  const names = new Set<string>();
  for (const m of mounts) for (const n of cgroupChildren(join(m, parent))) if (n !== self) names.add(n);
  const result: GoneWorkerCgroups = { removed: [], left: [] };
  if (!names.size) return result;
  const liveBefore = await live();
  const candidates: string[] = [];
  for (const name of names) {
    if (liveBefore.has(name)) continue;
    const dirs = mounts.map((m) => join(m, parent, name));
    if (dirs.some((d) => youngerThan(d, minAgeMs))) continue; // a worker starting: not heartbeating yet
    // sbx's: groups only of jobs and pooled setups, and at least one (an empty group under a parent
    // shared with other software, SBX_CGROUP_PARENT=system.slice, could be anyone's).
    const children = dirs.map(cgroupChildren);
    const ours = children.every((names) => names.every((c) => JOB_GROUP.test(c))) && children.some((names) => names.length > 0);
    if (!ours || dirs.some(holdsProcesses)) result.left.push(name);
    else candidates.push(name);
  }
  if (!candidates.length) return result;
  const liveNow = await live(); // a worker that came up meanwhile keeps its subtree
  for (const name of candidates) {
    if (liveNow.has(name)) continue;
    let ok = true;
    for (const m of mounts) ok = removeCgroupDir(join(m, parent, name)) && ok;
    (ok ? result.removed : result.left).push(name);
  }
  return result;
}
