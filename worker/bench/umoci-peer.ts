/**
 * The umoci the pull bench compares against. Debian 12's umoci (0.4.7) cannot unpack zstd layers,
 * so the bench builds umoci v0.6.0 from the Go module proxy (its source module; `go install pkg@v`
 * refuses it because its go.mod has a replace directive) into $SBX_BENCH_TOOLS (default
 * .tools/bench in this checkout: loadtest/lib/bench-tools-dir.ts) once, and uses it for every image so that one peer serves all rows.
 * SBX_BENCH_UMOCI=/path/to/umoci uses another binary instead.
 */
import { execFile } from 'node:child_process';
import { access, cp, chmod, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { benchToolsDir } from '../../loadtest/lib/bench-tools-dir.ts';

const run = promisify(execFile);

export const UMOCI_MODULE = 'github.com/opencontainers/umoci';
export const UMOCI_VERSION = 'v0.6.0';

export interface UmociPeer {
  path: string;
  version: string;
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

async function versionOf(path: string): Promise<string> {
  return (await run(path, ['--version'])).stdout.trim();
}

export async function ensureUmoci(log: (line: string) => void): Promise<UmociPeer> {
  const given = process.env.SBX_BENCH_UMOCI;
  if (given) return { path: given, version: await versionOf(given) };
  const toolsDir = benchToolsDir();
  const path = join(toolsDir, `umoci-${UMOCI_VERSION}`);
  if (!(await exists(path))) {
    log(`building umoci ${UMOCI_VERSION} from the Go module proxy (Debian's 0.4.7 cannot unpack zstd layers) …`);
    // A Go new enough for it: the one on the PATH, else Debian's plus the toolchain module (ensure-go.sh).
    const go = (await run('bash', [new URL('../../infra/scripts/ensure-go.sh', import.meta.url).pathname])).stdout.trim();
    const env = { ...process.env, GOFLAGS: '-buildvcs=false', GOTOOLCHAIN: 'auto' };
    const { stdout } = await run(go, ['mod', 'download', '-json', `${UMOCI_MODULE}@${UMOCI_VERSION}`], { maxBuffer: 1 << 22, cwd: '/', env });
    const moduleDir = (JSON.parse(stdout) as { Dir: string }).Dir;
    const src = join(toolsDir, `umoci-src-${UMOCI_VERSION}`);
    await rm(src, { recursive: true, force: true });
    await cp(moduleDir, src, { recursive: true });
    await run('chmod', ['-R', 'u+w', src]);
    await run(go, ['build', '-o', path + '.tmp', './cmd/umoci'], { cwd: src, maxBuffer: 1 << 24, env });
    await chmod(path + '.tmp', 0o755);
    await run('mv', [path + '.tmp', path]);
  }
  return { path, version: (await versionOf(path)).split('\n')[0]! };
}
