/**
 * Runs a snippet of module code as this user but without CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH
 * (dropped from the bounding set before exec), so that root too is refused files and directories
 * its mode bits forbid: how tests of "unreadable" paths run under root (CI) instead of being skipped.
 */
import { spawnSync } from 'node:child_process';

const ROOT = new URL('../../', import.meta.url).pathname;

/** `code` is an ES module (it may import the project's .ts files by absolute path); its output is returned. */
export function runWithoutDacOverride(code: string): { status: number | null; stdout: string; stderr: string } {
  const argv = [process.execPath, '--import', 'tsx', '--input-type=module', '-e', code];
  const cmd = process.getuid?.() === 0 ? ['setpriv', '--bounding-set', '-dac_override,-dac_read_search', ...argv] : argv;
  const r = spawnSync(cmd[0]!, cmd.slice(1), { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}
