/**
 * Where benchmarks keep what they make once and use again: tools they build and then run (umoci for
 * the pull bench, the issue-day launcher the throughput bench loads), data they read back (the zstd
 * bench's input). The benches run as root. A fixed path in a directory every user may write
 * (/var/tmp/sbx-bench-tools, as it was) could be made first by any local user, with a binary in it
 * the bench would then run as root. So such a directory must be this user's and no one else's
 * (`ownDir`), and the tools' default is in this checkout: `.tools/bench`, beside kubeconform's
 * `.tools/bin` (infra/README.md).
 */
import { lstatSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

const REPO_ROOT = resolve(dirname(new URL(import.meta.url).pathname), '../..');

export class UnsafeBenchDirError extends Error {
  readonly code = 'bench_dir_unsafe';
}

/**
 * `dir`, made if missing (0755), once it is a directory, not a symlink, owned by this user and not
 * writable by its group or others, inside a parent that is this user's or root's and that others
 * may write only if it is sticky (/tmp, /var/tmp: no one else can move `dir` away there).
 */
export function ownDir(dir: string): string {
  const abs = resolve(dir);
  mkdirSync(abs, { recursive: true, mode: 0o755 });
  const uid = process.getuid?.() ?? 0;
  const st = lstatSync(abs);
  if (!st.isDirectory()) throw new UnsafeBenchDirError(`${abs} is not a directory (a symlink?): a benchmark would use what it points to; remove it or choose another directory`);
  if (st.uid !== uid) throw new UnsafeBenchDirError(`${abs} belongs to uid ${st.uid}, not to this user (uid ${uid}): what it holds may have been planted there; remove it or choose another directory`);
  if (st.mode & 0o022) throw new UnsafeBenchDirError(`${abs} is writable by its group or others (mode ${(st.mode & 0o7777).toString(8)}): chmod go-w it or choose another directory`);
  const parent = lstatSync(dirname(abs));
  if ((parent.uid !== uid && parent.uid !== 0) || (parent.mode & 0o022 && !(parent.mode & 0o1000))) {
    throw new UnsafeBenchDirError(`${dirname(abs)} (uid ${parent.uid}, mode ${(parent.mode & 0o7777).toString(8)}) lets others replace ${abs}: choose a directory under one that is yours`);
  }
  return abs;
}

/** $SBX_BENCH_TOOLS, else `.tools/bench` in this checkout; checked by `ownDir`. */
export function benchToolsDir(): string {
  return ownDir(process.env.SBX_BENCH_TOOLS ?? join(REPO_ROOT, '.tools', 'bench'));
}
