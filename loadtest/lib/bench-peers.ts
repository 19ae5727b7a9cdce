/**
 * The tools a benchmark compares against (its peers) or needs to run, installed from Debian's
 * package repositories when missing. A benchmark calls `ensureTools` before measuring: it either
 * has every peer afterwards or throws naming what is missing, so no bench reports a `null` ratio.
 */
import { spawnSync } from 'node:child_process';

export class MissingPeerError extends Error {
  readonly code = 'bench_peer_missing';
  constructor(readonly missing: string[]) {
    super(`missing benchmark peers (install with apt-get or infra/scripts/install-deps.sh --bench): ${missing.join(', ')}`);
  }
}

export function haveTool(bin: string): boolean {
  return spawnSync('sh', ['-c', `command -v '${bin}'`], { stdio: 'ignore' }).status === 0;
}

function aptInstall(packages: string[], update: boolean): boolean {
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  if (update) spawnSync('apt-get', ['update', '-qq'], { stdio: 'ignore', env });
  return spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...packages], { stdio: ['ignore', 'ignore', 'inherit'], env }).status === 0;
}

/** `tools`: binary name → Debian package providing it. Installs what is missing (needs root). */
export function ensureTools(tools: Record<string, string>, log: (line: string) => void = (l) => process.stderr.write(`${l}\n`)): void {
  const missing = () => Object.keys(tools).filter((bin) => !haveTool(bin));
  const before = missing();
  if (before.length === 0) return;
  const packages = [...new Set(before.map((b) => tools[b]!))];
  log(`installing benchmark peers (apt): ${packages.join(' ')}`);
  if (!aptInstall(packages, false)) aptInstall(packages, true);
  const after = missing();
  if (after.length) throw new MissingPeerError(after.map((b) => `${b} (Debian package ${tools[b]})`));
}
