// Shared test helpers: a busybox rootfs, a base spec, run-to-completion, leak checks (cgroups,
// processes, mounts under the launcher's own paths).
import { finished } from 'node:stream/promises';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before } from 'node:test';
import { claimUidRange, type UidClaim } from '../../worker/src/uid-ranges.ts';
import { closePool, launch, pooledGroupDirs, pooledSetups, poolSize, type ExitInfo, type Launched, type LaunchOptions, type LaunchSpec } from '../index.ts';

/** The controllers the launcher uses (cgroup.cc: required memory pids cpu cpuacct freezer; optional devices). */
export const CONTROLLERS = ['memory', 'pids', 'cpu', 'cpuacct', 'freezer', 'devices'] as const;
export type Controller = (typeof CONTROLLERS)[number];

/**
 * The host's cgroup layout, read from /proc/self/mountinfo (independently of the launcher's own
 * detection, so a test can tell when that is wrong): 'v2' when /sys/fs/cgroup is a cgroup2 mount,
 * else 'v1' with the mount point of each controller's hierarchy (cpu and cpuacct may share one).
 */
export interface CgroupLayout {
  mode: 'v1' | 'v2';
  /** v2: the cgroup2 mount the launcher uses (/sys/fs/cgroup; a test's cgroupV2Root on hybrid hosts). */
  v2Root: string;
  /** v1: controller -> hierarchy mount point (only the controllers of CONTROLLERS that are mounted). */
  v1: Map<Controller, string>;
  /** The cgroup2 mount of a hybrid host (/sys/fs/cgroup/unified), '' if none. */
  hybridV2Root: string;
}

/** mountinfo writes space, tab, newline and backslash in paths as octal escapes (\040...). */
function unescapeMountField(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

function mounts(): { point: string; fstype: string; source: string; superOpts: string }[] {
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(Boolean).map((l) => {
    const [pre, post] = l.split(' - ') as [string, string];
    const [fstype = '', source = '', superOpts = ''] = post.split(' ');
    return { point: unescapeMountField(pre.split(' ')[4]!), fstype, source: unescapeMountField(source), superOpts };
  });
}

let layout: CgroupLayout | undefined;
export function cgroupLayout(): CgroupLayout {
  if (layout) return layout;
  const ms = mounts();
  const v1 = new Map<Controller, string>();
  for (const m of ms) {
    if (m.fstype !== 'cgroup') continue;
    for (const opt of m.superOpts.split(',')) {
      const c = CONTROLLERS.find((x) => x === opt);
      if (c && !v1.has(c)) v1.set(c, m.point);
    }
  }
  const cg2 = (p: string) => ms.some((m) => m.point === p && m.fstype === 'cgroup2');
  const v2 = cg2('/sys/fs/cgroup');
  if (!v2 && v1.size === 0) throw new Error('no cgroup file system at /sys/fs/cgroup');
  layout = {
    mode: v2 ? 'v2' : 'v1',
    v2Root: v2 ? '/sys/fs/cgroup' : '',
    v1: v2 ? new Map() : v1,
    hybridV2Root: !v2 && cg2('/sys/fs/cgroup/unified') ? '/sys/fs/cgroup/unified' : '',
  };
  return layout;
}

/** The cgroup mode a launch with these options uses: v2 on a v2 host or with cgroupV2Root. */
export function cgroupMode(o: LaunchOptions = {}): 'v1' | 'v2' {
  return o.cgroupV2Root ? 'v2' : cgroupLayout().mode;
}

function v2Root(o: LaunchOptions): string {
  return o.cgroupV2Root ?? cgroupLayout().v2Root;
}

/** Unique v1 hierarchy mount points the launcher makes groups in (with or without devices). */
function v1Hierarchies(devices = true): string[] {
  const l = cgroupLayout();
  const out: string[] = [];
  const devMnt = l.v1.get('devices');
  for (const [c, m] of l.v1) {
    if (out.includes(m)) continue;
    // devices alone in its hierarchy is skipped by a job launched with devicesCgroup: false
    const sharedDev = c === 'devices' && [...l.v1].some(([o, om]) => o !== 'devices' && om === devMnt);
    if (c === 'devices' && !devices && !sharedDev) continue;
    out.push(m);
  }
  return out;
}

/**
 * Every directory the launcher makes for the group `parent[/id]`: one per v1 hierarchy (memory,
 * pids, cpu, cpuacct, freezer, devices; shared mounts once), or the one v2 directory.
 * `o.devicesCgroup === false`: without the v1 devices hierarchy (a job launched so does not join it).
 */
export function cgroupDirs(parent: string, id?: string, o: LaunchOptions = {}): string[] {
  const rel = [parent, ...(id ? [id] : [])];
  if (cgroupMode(o) === 'v2') return [path.join(v2Root(o), ...rel)];
  return v1Hierarchies(o.devicesCgroup !== false).map((m) => path.join(m, ...rel));
}

/** The directory holding `controller`'s files for `parent[/id]` (v2: the one directory). */
export function controllerDir(controller: Controller, parent: string, id?: string, o: LaunchOptions = {}): string {
  const rel = [parent, ...(id ? [id] : [])];
  if (cgroupMode(o) === 'v2') return path.join(v2Root(o), ...rel);
  const m = cgroupLayout().v1.get(controller);
  if (!m) throw new Error(`v1 ${controller} hierarchy not mounted`);
  return path.join(m, ...rel);
}

/** Same knob, per-mode file names: the v2 name when it differs. */
const V1_NAMES: Record<string, [Controller, string]> = {
  'memory.max': ['memory', 'memory.limit_in_bytes'],
  'pids.max': ['pids', 'pids.max'],
};

/** Path of a control file of `parent[/id]`, named as on v2 (memory.max is memory.limit_in_bytes on v1). */
export function cgroupFile(file: keyof typeof V1_NAMES, parent: string, id?: string, o: LaunchOptions = {}): string {
  const [controller, v1Name] = V1_NAMES[file]!;
  if (cgroupMode(o) === 'v2') return path.join(controllerDir(controller, parent, id, o), file);
  return path.join(controllerDir(controller, parent, id, o), v1Name);
}

/**
 * The host directories of the groups a live process is in, for the launcher's controllers, read
 * from /proc/<pid>/cgroup (v1: one per hierarchy of CONTROLLERS; v2: the 0:: line).
 */
export function cgroupDirsOf(pid: number, o: LaunchOptions = {}): string[] {
  const lines = fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n').filter(Boolean);
  if (cgroupMode(o) === 'v2') {
    const l = lines.find((x) => x.startsWith('0::'));
    return l ? [path.join(v2Root(o), l.slice(3))] : [];
  }
  const joined = v1Hierarchies(o.devicesCgroup !== false);
  const out = new Set<string>();
  for (const l of lines) {
    const [, ctrls = '', p = ''] = l.split(':');
    for (const c of ctrls.split(',')) {
      const m = cgroupLayout().v1.get(c as Controller);
      if (m && joined.includes(m)) out.add(path.join(m, p));
    }
  }
  return [...out];
}

/**
 * The group each job of these tests ran in when it is not <parent>/<id>: on cgroup v2 a job started
 * in a pooled setup keeps the setup's group, <parent>/pool-<launcher pid>-<n> (Launched.cgroups),
 * because a v2 group cannot be renamed. Noted by run() and assertJobCgroups(); read by the checks below.
 */
const pooledJobGroups = new Map<string, string[]>();

/** A pooled setup's group of this process under `parent` (v2), by its path. */
function isOwnPoolGroup(dir: string, parent: string, o: LaunchOptions): boolean {
  return cgroupMode(o) === 'v2' && new RegExp(`^${escapeRegExp(path.join(v2Root(o), parent))}/pool-${process.pid}-\\d+$`).test(dir);
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Notes where a launched job's groups are (run() does it; so do tests that launch() themselves). */
export function noteJobGroups(id: string, j: Pick<Launched, 'cgroups'>): void {
  if (j.cgroups.length === 1 && /\/pool-\d+-\d+$/.test(j.cgroups[0]!)) pooledJobGroups.set(id, [...j.cgroups]);
}

/** The job's group directories: <parent>/<id> (cgroupDirs), or the pooled setup's group it kept (v2). */
export function jobCgroupDirs(parent: string, id: string, o: LaunchOptions = {}): string[] {
  return pooledJobGroups.get(id) ?? cgroupDirs(parent, id, o);
}

/**
 * While the job runs: its groups are exactly its own (<parent>/<id>; on v2, or the pooled setup's
 * group of this process it started in, which no other job and no idle setup has), so leftover checks
 * look where the launcher really works; each exists and lists `pid`. Returns the directories.
 */
export function assertJobCgroups(pid: number, parent: string, id: string, o: LaunchOptions = {}): string[] {
  // On v1 the job's pid 1 (or its pooled setup, if still being made) joins its groups itself, before
  // sbx-init reads the job's config and so before anything of the job runs, but possibly just after
  // launch() resolved: wait for that, a bounded time (synchronously: callers are sync callbacks).
  const named = [...cgroupDirs(parent, id, o)].sort();
  const accepted = (dirs: string[]): boolean => {
    const s = [...dirs].sort();
    if (JSON.stringify(s) === JSON.stringify(named)) return true;
    const noted = pooledJobGroups.get(id);
    if (noted) return JSON.stringify(s) === JSON.stringify([...noted].sort());
    // v2, a pooled start: one group, a pool group of this process that no idle setup holds any more.
    return s.length === 1 && isOwnPoolGroup(s[0]!, parent, o) && !pooledGroupDirs().includes(s[0]!) &&
      ![...pooledJobGroups.values()].some((d) => d[0] === s[0]);
  };
  const sleeper = new Int32Array(new SharedArrayBuffer(4));
  for (const deadline = Date.now() + 2000; Date.now() < deadline; Atomics.wait(sleeper, 0, 0, 5)) {
    if (accepted(cgroupDirsOf(pid, o))) break;
  }
  const actual = cgroupDirsOf(pid, o).sort();
  assert.ok(accepted(actual), `groups of pid ${pid}: ${JSON.stringify(actual)}, expected ${JSON.stringify(pooledJobGroups.get(id) ?? named)}${cgroupMode(o) === 'v2' ? ` or a pool-${process.pid}-<n> group of a pooled start` : ''}`);
  if (JSON.stringify(actual) !== JSON.stringify(named)) pooledJobGroups.set(id, actual);
  for (const d of actual) {
    assert.ok(fs.existsSync(d), `${d} missing while the job runs`);
    assert.ok(fs.readFileSync(path.join(d, 'cgroup.procs'), 'utf8').split('\n').includes(String(pid)), `${pid} not in ${d}`);
  }
  return actual;
}

/**
 * After a job: none of its group directories is left (<parent>/<id>, and the pooled setup's group it
 * kept on v2), in parent directories that do exist (so the check cannot pass because it looks in the
 * wrong place).
 */
export function assertCgroupsGone(parent: string, id: string, o: LaunchOptions = {}): void {
  for (const d of cgroupDirs(parent, undefined, o)) assert.ok(fs.existsSync(d), `cgroup parent ${d} does not exist`);
  for (const d of [...cgroupDirs(parent, id, o), ...(pooledJobGroups.get(id) ?? [])]) assert.equal(fs.existsSync(d), false, `cgroup ${d} left behind`);
}

/** Slots a test process may launch on with testUidBase()'s range: 0..31 (the tests use 0..16). */
export const TEST_SLOTS = 32;

let uidClaim: Promise<UidClaim> | undefined;

/**
 * The host uids this process's jobs run as (LaunchOptions.uidBase), claimed as a worker claims its
 * own (worker/src/uid-ranges.ts: SBX_UID_BASE=auto in the host-wide /run/sbx/uid-ranges) for
 * TEST_SLOTS slots, once per process, and released when it exits (a claim of a process killed
 * before that is stale, and dropped by the next claimer). Without it every launcher test ran its
 * jobs as the launcher's default, 100000 + slot·65536, the range an end-to-end test's worker
 * claims first, and every other launcher test file's too: jobs of two test files running at once
 * ran as the same host users, sharing what the kernel counts per user (RLIMIT_NPROC, inotify
 * instances and watches, key quotas).
 */
export function testUidBase(): Promise<number> {
  uidClaim ??= claimUidRange({ base: 'auto', slots: TEST_SLOTS, workerId: `test ${path.relative(process.cwd(), process.argv[1] ?? '?')}` }).then((c) => {
    process.once('exit', () => c.release());
    return c;
  });
  return uidClaim.then((c) => c.base);
}

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

/** A launcher state dir on a tmpfs of its own; `close()` unmounts and removes it (idempotent). */
export interface StateDir { path: string; close(): void }

/**
 * P17 tests: a launcher state dir that allows devices, whose /dev template also holds the kmsg
 * device (c 1:11, mode 0666): a node outside the allow-list, reachable in the job.
 * The dir is a private tmpfs mounted without nodev, so the result does not depend on the host's
 * /tmp (nodev on many systemd hosts, where the launcher would rightly build /dev per job instead).
 * A first job makes the template; the extra node is added after it. Call close() in a finally or
 * an after() hook; a run killed before that is cleaned up by sweepStaleTestParents().
 */
export async function stateDirWithKmsg(dir: string, rootfs: string, opts: LaunchOptions): Promise<StateDir> {
  fs.mkdirSync(dir, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'mode=0711', `sbx-test-state-${process.pid}`, dir]);
  let closed = false;
  const sd: StateDir = { path: dir, close: () => { if (!closed) { closed = true; unmountStateDir(dir); } } };
  try {
    const r = await run(baseSpec([rootfs], { argv: ['sh', '-c', 'ls -ln /dev/null | cut -c1'] }), { ...opts, stateDir: dir });
    assert.equal(r.stdout, 'c\n', `first job in ${dir}: ${r.stderr}`);
    // The launcher made its template here (not a per-job /dev): that is where the extra node goes.
    assert.ok(fs.statSync(path.join(dir, 'dev', 'null')).isCharacterDevice(), `no /dev template in ${dir}`);
    execFileSync('mknod', ['-m', '666', path.join(dir, 'dev', 'kmsg'), 'c', '1', '11']);
  } catch (e) {
    sd.close();
    throw e;
  }
  return sd;
}

/** Unmount a state dir's tmpfs (lazily if a mount is still busy) and remove the directory. */
function unmountStateDir(dir: string): void {
  try {
    execFileSync('umount', [dir], { stdio: 'pipe' });
  } catch {
    try { execFileSync('umount', ['-l', dir], { stdio: 'pipe' }); } catch { /* not mounted */ }
  }
  try { fs.rmSync(dir, { recursive: true, force: true }); } catch { /* best effort */ }
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

/** Run to completion. `started` (if given) is called once the command runs, before its output is read. */
export async function run(spec: LaunchSpec, opts: LaunchOptions, started?: (j: Launched) => void): Promise<RunResult> {
  const j = await launch(spec, opts);
  noteJobGroups(spec.id, j);
  if (started) {
    try {
      started(j);
    } catch (e) {
      j.kill();
      j.stdout.destroy();
      j.stderr.destroy();
      await j.exited;
      throw e;
    }
  }
  let stdout = '';
  let stderr = '';
  j.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
  j.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
  // finished(), not 'end'/'close' listeners: a job that a limit ended before its command started is
  // returned with its (empty) streams already ended, and those events may have fired already.
  const ended = (s: NodeJS.ReadableStream) => finished(s).catch(() => {});
  const [exit] = await Promise.all([j.exited, ended(j.stdout), ended(j.stderr)]);
  return { stdout, stderr, exit, pid: j.pid };
}

/** The cgroup lines processesIn() last read, per pid: what describeProcesses() shows of one gone since. */
const scannedGroups = new Map<number, string>();

/**
 * Every host process whose cgroup path mentions `parent`. The launcher's pooled setups
 * (LaunchOptions.pool) wait in <parent>/pool-<pid>-<n>: made ahead for the next job, not left by
 * one. `pooled: true` counts only those; by default they are not counted. A job that started in a
 * pooled setup on cgroup v2 keeps that group's name (Launched.cgroups) and counts as a job.
 */
export function processesIn(parent: string, o: { pooled?: boolean } = {}): number[] {
  const pids: number[] = [];
  // This process's setups as the launcher lists them; another process's (a fixture's) by their name.
  // The launcher's maker thread adds and removes setups while /proc is read: a setup listed before
  // or after the scan is one (it is listed from before its group exists until its process is reaped),
  // and so is one numbered above what the first list counted. That one was begun during the scan,
  // when no job could take it (launches run on this thread), and may have failed and been reaped
  // before the second list: a setup child that fails at once, before the maker sends its config, is
  // reaped by the maker at that send (seen in the cgroup v2 VM, whose one vCPU runs them in turn).
  const own = `pool-${process.pid}-`;
  const first = pooledSetups();
  const idleOwn = new Set(first.groupDirs.map((d) => path.basename(d)));
  const jobs = new Set([...pooledJobGroups.values()].map((d) => path.basename(d[0]!)));
  const seen: Array<{ pid: number; pools: Array<string | null> }> = [];
  scannedGroups.clear();
  for (const p of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const lines = fs.readFileSync(`/proc/${p}/cgroup`, 'utf8').split('\n').filter((l) => l.includes(`/${parent}/`));
      if (lines.length === 0) continue;
      seen.push({ pid: Number(p), pools: lines.map((l) => new RegExp(`/${escapeRegExp(parent)}/(pool-\\d+-\\d+)$`).exec(l)?.[1] ?? null) });
      scannedGroups.set(Number(p), lines.join(' '));
    } catch { /* exited */ }
  }
  for (const d of pooledGroupDirs()) idleOwn.add(path.basename(d));
  const begunDuringScan = (name: string): boolean => name.startsWith(own) && Number(name.slice(own.length)) > first.made;
  const idleSetup = (name: string | null): boolean =>
    name !== null && !jobs.has(name) && (!name.startsWith(own) || idleOwn.has(name) || begunDuringScan(name));
  for (const { pid, pools } of seen) if (pools.every(idleSetup) === !!o.pooled) pids.push(pid);
  return pids;
}

/** What a leftover-check failure should show of `pids`: each one's comm, cgroup lines, and this process's idle setups' groups. */
export function describeProcesses(pids: number[], parent: string): string {
  const one = (pid: number): string => {
    try {
      const comm = fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
      const groups = fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n').filter((l) => l.includes(`/${parent}/`));
      return `${pid} ${comm} in ${groups.join(' ')}`;
    } catch {
      return `${pid} (gone; was in ${scannedGroups.get(pid) ?? '?'})`;
    }
  };
  return `${pids.map(one).join('; ')}; idle setups: ${pooledGroupDirs().map((d) => path.basename(d)).join(' ') || 'none'}`;
}

/**
 * Names of the pooled setups' groups (`pool-<pid>-<n>`) under `parent`, in any hierarchy; not those
 * that jobs started in on cgroup v2 (noted by run() and assertJobCgroups()).
 */
export function pooledGroups(parent: string, o: LaunchOptions = {}): string[] {
  const names = new Set<string>();
  const jobs = new Set([...pooledJobGroups.values()].map((d) => path.basename(d[0]!)));
  for (const d of cgroupDirs(parent, undefined, o)) {
    try {
      for (const n of fs.readdirSync(d)) if (/^pool-\d+-\d+$/.test(n) && !jobs.has(n)) names.add(n);
    } catch { /* no such hierarchy dir */ }
  }
  return [...names].sort();
}

/**
 * The mounts of this (the host's) mount namespace at or below any of `roots`, as
 * "<mount point> <fstype> <source>", sorted. The launcher makes every job mount inside the job's
 * own mount namespace, below <stateDir>/mnt (and reads the image layers): a mount it leaks onto
 * the host can only appear under its state dir or the layers, so leak checks look there (the
 * test's own directories) and not at the whole table, where any other program on the machine that
 * mounts (another test file running in parallel) would show up too.
 */
export function mountsUnder(roots: string[]): string[] {
  const dirs = roots.map((r) => fs.realpathSync(r).replace(/\/+$/, ''));
  return mounts()
    .filter((m) => dirs.some((d) => m.point === d || m.point.startsWith(`${d}/`)))
    .map((m) => `${m.point} ${m.fstype} ${m.source}`)
    .sort();
}

/** Mount a tmpfs at `dir` named like the tests' state dirs (sweepStaleTestParents unmounts it if the run dies). */
export function mountTestTmpfs(dir: string): void {
  fs.mkdirSync(dir, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', `sbx-test-state-${process.pid}`, dir]);
}

/** Unmount a tmpfs from mountTestTmpfs (lazily if busy) and remove the directory; idempotent. */
export function unmountTestTmpfs(dir: string): void {
  unmountStateDir(dir);
}

/** Where parents of these tests can be: every hierarchy (v1) or the v2 root, and a hybrid host's cgroup2 mount. */
function testRoots(): { dir: string; o: LaunchOptions }[] {
  const l = cgroupLayout();
  const roots = l.mode === 'v2' ? [{ dir: l.v2Root, o: {} }] : v1Hierarchies().map((dir) => ({ dir, o: {} }));
  if (l.hybridV2Root) roots.push({ dir: l.hybridV2Root, o: { cgroupV2Root: l.hybridV2Root } });
  return roots;
}

/**
 * Sweep and remove cgroup parents left by earlier runs of these tests that were killed
 * (names sbx-test-<tag>-<pid>-<rand> whose pid is gone); other parents are never touched.
 * Also unmounts the state-dir tmpfs such a run left (stateDirWithKmsg).
 */
export async function sweepStaleTestParents(): Promise<void> {
  const { sweep } = await import('../index.ts');
  for (const { dir, o } of testRoots()) {
    let names: string[] = [];
    try { names = fs.readdirSync(dir); } catch { continue; }
    for (const n of names) {
      const m = /^sbx-test-[a-z0-9]+-(\d+)-[a-z0-9]+$/.exec(n);
      if (!m || fs.existsSync(`/proc/${m[1]}`)) continue;
      await sweep({ ...o, cgroupParent: n });
      removeParent(n, o);
    }
  }
  for (const m of mounts()) {
    const s = /^sbx-test-state-(\d+)$/.exec(m.source);
    if (s && m.fstype === 'tmpfs' && !fs.existsSync(`/proc/${s[1]}`)) unmountStateDir(m.point);
  }
}

/**
 * Remove the test's cgroup parent in every hierarchy (must be empty by then, apart from this
 * process's pooled setups, which closePool() removes first).
 */
export function removeParent(parent: string, o: LaunchOptions = {}): void {
  closePool();
  for (const d of cgroupDirs(parent, undefined, o)) {
    try { fs.rmdirSync(d); } catch (e) { if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e; }
  }
}

/**
 * A slot's next pooled setups are made by the launcher's maker thread once a job's outcome is
 * known, not by launch() itself: wait (bounded) until poolSize() reaches `n`, and return it. The
 * bound is long: the maker thread runs five nice steps down (src/background.h), so on a machine
 * busy with other test files its setups can take seconds (3 s was once not enough in CI); every
 * caller waits for setups that will come, so a quick machine never waits long.
 */
export async function poolReaches(n: number, withinMs = 30_000): Promise<number> {
  const until = Date.now() + withinMs;
  while (poolSize() < n && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
  return poolSize();
}

/** Wait (bounded) until none of `pids` exists: setups that a launch discarded are reaped by the maker thread. */
export async function processesGone(pids: number[]): Promise<number[]> {
  const alive = () => pids.filter((p) => fs.existsSync(`/proc/${p}`));
  for (let i = 0; i < 300 && alive().length > 0; i++) await new Promise((r) => setTimeout(r, 10));
  return alive();
}

/**
 * Runs `make()` once with `pool: false` (its own setup) and then from a pooled setup (first one
 * run that makes the slot's setups for that image and config): the traces check which path each
 * took (`opts` must set `trace`). Returns [direct, the run that made the setups, pooled].
 */
export async function directThenPooled(make: () => LaunchSpec, opts: LaunchOptions): Promise<RunResult[]> {
  const d = await run(make(), { ...opts, pool: false });
  assert.equal(d.exit.phases?.initJobMounted, undefined, 'the direct launch made its own setup');
  closePool();
  const first = await run(make(), opts);
  assert.ok((await poolReaches(1)) >= 1, 'a setup is made ahead');
  const p = await run(make(), opts);
  assert.ok(p.exit.phases?.initJobMounted !== undefined, `the last launch took a pooled setup: ${JSON.stringify(p.exit.phases)}`);
  return [d, first, p];
}

/**
 * A launcher test file's usual fixture, as hooks of the enclosing describe(): before its tests,
 * stale parents of killed runs swept, a temp dir holding a busybox rootfs and the launcher's state
 * dir (set on `opts`, with this process's host uids: testUidBase); after them, the pool closed,
 * `parent` and the temp dir removed. The paths are filled in once before() has run.
 */
export function useBusyboxFixture(name: string, parent: string, opts: LaunchOptions): { tmp: string; rootfs: string } {
  const dirs = { tmp: '', rootfs: '' };
  before(async () => {
    await sweepStaleTestParents();
    dirs.tmp = makeTempDir(name);
    dirs.rootfs = buildBusyboxRootfs(path.join(dirs.tmp, 'rootfs'));
    opts.stateDir = path.join(dirs.tmp, 'state');
    opts.uidBase = await testUidBase();
  });
  after(() => {
    closePool();
    removeParent(parent);
    fs.rmSync(dirs.tmp, { recursive: true, force: true });
  });
  return dirs;
}
