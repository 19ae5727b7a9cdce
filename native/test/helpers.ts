// Shared test helpers: a busybox rootfs, a base spec, run-to-completion, leak checks.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { launch, type ExitInfo, type LaunchOptions, type LaunchSpec } from '../index.ts';

export const CONTROLLERS = ['memory', 'pids', 'cpu', 'cpuacct', 'freezer', 'devices'];

export function uniqueParent(tag: string): string {
  return `sbx-test-${tag}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
}

/** A one-layer image: static busybox with its applets as symlinks, /etc/passwd, /tmp. */
export function buildBusyboxRootfs(dir: string): string {
  const bin = path.join(dir, 'bin');
  fs.mkdirSync(bin, { recursive: true });
  fs.copyFileSync('/bin/busybox', path.join(bin, 'busybox'));
  fs.chmodSync(path.join(bin, 'busybox'), 0o755);
  const applets = execFileSync('/bin/busybox', ['--list'], { encoding: 'utf8' }).split('\n').filter(Boolean);
  for (const a of applets) if (a !== 'busybox') fs.symlinkSync('busybox', path.join(bin, a));
  fs.mkdirSync(path.join(dir, 'etc'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n');
  fs.writeFileSync(path.join(dir, 'etc', 'group'), 'root:x:0:\nnogroup:x:65534:\n');
  fs.mkdirSync(path.join(dir, 'tmp'), { mode: 0o1777 });
  fs.chmodSync(path.join(dir, 'tmp'), 0o1777);
  fs.mkdirSync(path.join(dir, 'root'), { mode: 0o700 });
  return dir;
}

/** Compile a probe from native/test/probes/<name>.c statically into <layer>/probes/<name>. */
export function compileProbe(name: string, layerDir: string): string {
  const src = path.join(path.dirname(new URL(import.meta.url).pathname), 'probes', `${name}.c`);
  const outDir = path.join(layerDir, 'probes');
  fs.mkdirSync(outDir, { recursive: true });
  const out = path.join(outDir, name);
  execFileSync('gcc', ['-static', '-O2', '-o', out, src]);
  return `/probes/${name}`;
}

/**
 * P17 tests: a launcher state dir (on a file system that allows devices) whose /dev template also
 * holds the kmsg device (c 1:11, mode 0666): a node outside the allow-list, reachable in the job.
 * A first job makes the template; the extra node is added after it.
 */
export async function stateDirWithKmsg(dir: string, rootfs: string, opts: LaunchOptions): Promise<string> {
  await run(baseSpec([rootfs]), { ...opts, stateDir: dir });
  execFileSync('mknod', ['-m', '666', path.join(dir, 'dev', 'kmsg'), 'c', '1', '11']);
  return dir;
}

/** Collect a stream's text until `re` matches (or fail after `ms`). */
export function waitFor(stream: NodeJS.ReadableStream, re: RegExp, ms = 5000): Promise<string> {
  return new Promise((res, rej) => {
    let text = '';
    const timer = setTimeout(() => rej(new Error(`timed out waiting for ${re} (got ${JSON.stringify(text)})`)), ms);
    stream.on('data', (d: Buffer | string) => {
      text += d.toString();
      if (re.test(text)) { clearTimeout(timer); res(text); }
    });
  });
}

export function makeTempDir(tag: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `sbx-${tag}-`));
}

export function baseSpec(lowerDirs: string[], over: Partial<LaunchSpec> = {}): LaunchSpec {
  return {
    id: `job-${Math.random().toString(36).slice(2, 10)}`,
    slot: 0,
    lowerDirs,
    argv: ['true'],
    env: ['PATH=/bin', 'HOME=/root'],
    cwd: '/',
    uid: 0,
    gid: 0,
    hostname: 'sbx-job',
    stdin: null,
    limits: { memoryBytes: 128 << 20, pids: 64, cpus: 1, timeoutMs: 10_000, diskBytes: 32 << 20 },
    ...over,
  };
}

export interface RunResult { stdout: string; stderr: string; exit: ExitInfo; pid: number }

export async function run(spec: LaunchSpec, opts: LaunchOptions): Promise<RunResult> {
  const j = await launch(spec, opts);
  let stdout = '';
  let stderr = '';
  j.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
  j.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
  const ended = (s: NodeJS.ReadableStream) => new Promise<void>((res) => { s.on('end', res); s.on('close', res); });
  const [exit] = await Promise.all([j.exited, ended(j.stdout), ended(j.stderr)]);
  return { stdout, stderr, exit, pid: j.pid };
}

export function cgroupDirs(parent: string, id?: string): string[] {
  return CONTROLLERS.map((c) => path.join('/sys/fs/cgroup', c, parent, ...(id ? [id] : [])));
}

/** Every host process whose cgroup path mentions `parent`. */
export function processesIn(parent: string): number[] {
  const pids: number[] = [];
  for (const p of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      if (fs.readFileSync(`/proc/${p}/cgroup`, 'utf8').includes(`/${parent}/`)) pids.push(Number(p));
    } catch { /* exited */ }
  }
  return pids;
}

export function mountCount(): number {
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(Boolean).length;
}

/**
 * Sweep and remove cgroup parents left by earlier runs of these tests that were killed
 * (names sbx-test-<tag>-<pid>-<rand> whose pid is gone); other parents are never touched.
 */
export async function sweepStaleTestParents(): Promise<void> {
  const { sweep } = await import('../index.ts');
  const names = new Set<string>();
  for (const c of CONTROLLERS) {
    try {
      for (const n of fs.readdirSync(path.join('/sys/fs/cgroup', c))) names.add(n);
    } catch { /* controller not mounted */ }
  }
  for (const n of names) {
    const m = /^sbx-test-[a-z0-9]+-(\d+)-[a-z0-9]+$/.exec(n);
    if (!m || fs.existsSync(`/proc/${m[1]}`)) continue;
    await sweep({ cgroupParent: n });
    removeParent(n);
  }
}

/** Remove the test's cgroup parent in every hierarchy (must be empty by then). */
export function removeParent(parent: string): void {
  for (const d of cgroupDirs(parent)) {
    try { fs.rmdirSync(d); } catch (e) { if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e; }
  }
}
