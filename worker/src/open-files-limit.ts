/**
 * The launcher refuses a job's openFiles above the worker's own hard RLIMIT_NOFILE (it cannot give
 * a job more than it has), while the API accepts up to SBX_MAX_OPEN_FILES. So the worker raises
 * its hard limit to SBX_MAX_OPEN_FILES at start (root with CAP_SYS_RESOURCE may, up to fs.nr_open)
 * and refuses to start when it cannot: a job the API accepted never ends `error` for it. (The
 * default SBX_MAX_OPEN_FILES is already at most the host's hard limit: core/src/launch-bounds.ts.)
 */
import { execFileSync } from 'node:child_process';
import { openFilesLimit } from '../../core/src/launch-bounds.ts';

/**
 * Make the hard RLIMIT_NOFILE at least `wanted` (the soft limit is left alone); returns the hard
 * limit now in place. Throws with what to do when it cannot be raised.
 */
export function ensureOpenFilesLimit(wanted: number): number {
  const { soft, hard } = openFilesLimit();
  if (hard >= wanted) return hard;
  let why = '';
  try {
    // Node has no setrlimit; util-linux prlimit(1) sets it on this process (prlimit(2) by pid).
    execFileSync('prlimit', [`--pid=${process.pid}`, `--nofile=${Math.min(soft, wanted)}:${wanted}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    why = ((e as { stderr?: Buffer }).stderr?.toString().trim() || (e as Error).message).split('\n')[0]!;
  }
  const now = openFilesLimit().hard;
  if (now >= wanted) return now;
  throw new Error(`SBX_MAX_OPEN_FILES=${wanted} is above this worker's hard RLIMIT_NOFILE (${hard}) and raising it failed${why ? ` (${why})` : ''}; lower SBX_MAX_OPEN_FILES or start the worker with a higher limit (LimitNOFILE=, ulimit -Hn, fs.nr_open)`);
}
