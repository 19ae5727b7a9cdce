/**
 * The launcher as it was the day issue 13 was filed (f102ba7, 2026-12-02, before the pooled setups),
 * built from this repository's history, so that "launches per second at concurrency 8 at least 3×
 * today's" is measured side by side on the machine at hand (throughput-bench.ts) rather than against
 * a figure taken on another machine under other load.
 *
 * Built once into $SBX_BENCH_TOOLS (default .tools/bench in this checkout, shared with the pull
 * bench's umoci; loadtest/lib/bench-tools-dir.ts): `git archive` of that commit's native/ and node-gyp with Node's own headers (nodedir=/usr,
 * offline). Needs a clone with history and a C++ toolchain; fails naming what is missing.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { ensureTools } from '../../loadtest/lib/bench-peers.ts';
import { benchToolsDir } from '../../loadtest/lib/bench-tools-dir.ts';

export const ISSUE_DAY_COMMIT = 'f102ba70dfda8a0d119e0bbec3efb0d1b996863b';

const repoRoot = resolve(dirname(new URL(import.meta.url).pathname), '../..');

export class IssueDayLauncherError extends Error {
  readonly code = 'bench_baseline_unavailable';
}

function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): { ok: boolean; out: string } {
  const r = spawnSync(cmd, args, { cwd: opts.cwd, env: opts.env, encoding: 'utf8', maxBuffer: 64 << 20 });
  return { ok: r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}` };
}

/** The issue-day launcher's `native/index.ts`, built here if it is not built yet. */
export function issueDayLauncher(log: (line: string) => void): string {
  const tools = benchToolsDir();
  const dir = join(tools, `launcher-${ISSUE_DAY_COMMIT.slice(0, 7)}`);
  const index = join(dir, 'native', 'index.ts');
  const built = () => existsSync(join(dir, 'native/build/Release/sbx_native.node')) && existsSync(join(dir, 'native/build/Release/sbx-init'));
  if (built()) return index;
  ensureTools({ git: 'git', 'g++': 'g++', make: 'make', python3: 'python3' }, log);
  if (!run('git', ['-C', repoRoot, 'cat-file', '-e', `${ISSUE_DAY_COMMIT}^{commit}`]).ok) {
    throw new IssueDayLauncherError(`the issue-day launcher (commit ${ISSUE_DAY_COMMIT}) is not in ${repoRoot}'s git history: run the bench from a clone with history`);
  }
  log(`building the issue-day launcher (${ISSUE_DAY_COMMIT.slice(0, 7)}) into ${dir} (once)`);
  const tmp = mkdtempSync(join(tools, '.launcher-build-'));
  try {
    const archive = run('sh', ['-c', `git -C '${repoRoot}' archive --format=tar ${ISSUE_DAY_COMMIT} native | tar -x -C '${tmp}'`]);
    if (!archive.ok) throw new IssueDayLauncherError(`git archive of ${ISSUE_DAY_COMMIT} failed: ${archive.out.trim()}`);
    // binding.gyp asks Node for node-addon-api's headers: this tree's node_modules serves them.
    symlinkSync(join(repoRoot, 'node_modules'), join(tmp, 'node_modules'));
    const gyp = join(repoRoot, 'node_modules/node-gyp/bin/node-gyp.js');
    // Node's headers are in /usr/include/node: node-gyp must never download them (no internet).
    const build = run(process.execPath, [gyp, 'rebuild', '--nodedir=/usr'], { cwd: join(tmp, 'native'), env: { ...process.env, npm_config_nodedir: '/usr' } });
    if (!build.ok) throw new IssueDayLauncherError(`building the issue-day launcher failed:\n${build.out.trim().split('\n').slice(-20).join('\n')}`);
    rmSync(dir, { recursive: true, force: true });
    renameSync(tmp, dir);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  if (!built()) throw new IssueDayLauncherError(`the issue-day launcher's build left no sbx_native.node and sbx-init in ${dir}/native/build/Release`);
  return index;
}
