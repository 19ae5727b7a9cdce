// Typed wrapper around the native launcher (the only importer of the .node file).
import fs from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { openJobTty, type JobTty } from './tty-io.js';
import { errnoName } from './errno-name.js';
import { parseOutputFiles, type OutputFile } from './output-files.js';

export type { JobTty } from './tty-io.js';

export interface HostProbe {
  cgroup: 'v1' | 'v2' | 'none';
  ok: boolean;
  missing: string[];
  features: Record<string, boolean>;
}

export interface LaunchLimits {
  memoryBytes: number;
  pids: number;
  cpus: number;
  timeoutMs: number;
  diskBytes: number;
  cpuTimeMs?: number;
  openFiles?: number;
  /**
   * When a limit (`timeoutMs`, `cpuTimeMs`) or `stop()` ends the job: the command first gets
   * `stopSignal` (default SIGTERM) and this long to exit, then the rest of the job is killed
   * (docker stop -t). Absent or 0: at once.
   */
  stopGraceMs?: number;
  stopSignal?: NodeJS.Signals;
}

export interface LaunchSpec {
  id: string;
  slot: number;
  lowerDirs: string[];
  argv: string[];
  env: string[];
  cwd: string;
  uid: number;
  gid: number;
  groups?: number[];
  hostname: string;
  stdin: string | null;
  /**
   * Keep stdin open (`docker run -i`): `Launched.stdin` is the pipe (fed as bytes arrive, ended by
   * the caller) instead of `stdin` written whole and closed. Ignored with `tty`.
   */
  openStdin?: boolean;
  /** A pseudo-terminal of the job's own devpts as the command's fds 0-2 and controlling terminal (`-t`). */
  tty?: { rows: number; cols: number } | null;
  /**
   * Files written inside the job before its command starts, in order, by its sbx-init as the job's
   * user under its seccomp filter (P55): `path` absolute or relative to `cwd` (missing parent
   * directories are made 0755), `mode` the permission bits (at most 0o777). At most 10,000 files
   * and 64 MiB in all; a file that cannot be written fails the launch with `invalid_spec` (stage
   * `files`, `path` the file or directory).
   */
  files?: LaunchFile[] | null;
  /**
   * Files collected once the command has ended (`ExitInfo.outputFiles`), by the job's sbx-init as the
   * job's user under its seccomp filter: glob(3) patterns (at most 32), absolute or relative to
   * `cwd`; at most `maxBytes` of file data in all and 1,000 files. Symlinks are not followed. Also
   * when a limit ends the job (or `stop()`): its other processes are killed first; not after `kill()`.
   */
  outputFiles?: { patterns: string[]; maxBytes: number } | null;
  /**
   * A TCP socket listening on 127.0.0.1:listenPort inside the job's network namespace, made before
   * the command starts: only the job's processes can connect to it. `Launched.listenFd` is it.
   */
  listenPort?: number;
  limits: LaunchLimits;
}

export type { OutputFile };
export { errnoName };

export interface LaunchFile {
  path: string;
  mode: number;
  data: Uint8Array;
}

export interface Usage {
  cpuMs: number;
  /** How long the job's `cpus` limit held it back (cgroup cpu.stat throttled time). */
  cpuThrottledMs: number;
  memoryPeakBytes: number;
  wallMs: number;
}

export interface ExitInfo {
  exitCode: number | null;
  signal: string | null;
  reason: 'exited' | 'signaled' | 'timeout' | 'oom' | 'killed';
  oomKilled: boolean;
  pidsLimitHit: boolean;
  usage: Usage;
  /**
   * Processes still in the job's cgroup after its pid 1 exited (normally 0: the kernel kills the
   * pid namespace with its init; one that joined the cgroup from outside is not in it). The
   * launcher killed them before removing the group.
   */
  leftoverProcesses: number;
  /** Removing the job's cgroup failed (e.g. EBUSY: a child group inside it); the group is left behind for sweep(). */
  cleanupError: LaunchError | null;
  /**
   * With `LaunchOptions.trace`: when each launch phase happened, in ms since the native launch
   * started (names and meaning in native/src/trace.h).
   */
  phases?: Record<string, number>;
  /**
   * With `LaunchSpec.outputFiles`, when sbx-init collected them: after the command ended, or after a
   * limit or `stop()` ended the job within `LaunchOptions.outputFilesGraceMs`; not after `kill()`.
   */
  outputFiles?: OutputFile[];
}

/** `Launched.ended`: the exit as known before the teardown. */
export type EndInfo = Omit<ExitInfo, 'cleanupError'>;

export interface Launched {
  pid: number;
  /**
   * The job's cgroup directories (v1: one per hierarchy; v2: one). `<cgroupParent>/<spec.id>`, except
   * on cgroup v2 for a job started in a pooled setup: a v2 group cannot be renamed, so the job keeps
   * the setup's, `<cgroupParent>/pool-<launcher pid>-<n>`. Removed with the job (`exited`).
   */
  cgroups: string[];
  /** With `tty` these two end empty: the terminal (`tty.output`) carries all output. */
  stdout: Readable;
  stderr: Readable;
  /** `openStdin` without `tty`: the job's stdin pipe, open until the caller ends it. */
  stdin?: Writable;
  /** `tty` jobs: the terminal's master side. */
  tty?: JobTty;
  /**
   * `listenPort` jobs: the listening socket's fd, owned by the caller from here on (e.g.
   * `net.Server.listen({ fd })`); it keeps the job's network namespace alive until it is closed.
   */
  listenFd?: number;
  /**
   * Resolves after teardown: pid 1 reaped AND the job's cgroups removed (`cleanupError` says if that
   * failed). Keep the job's slot until it resolves; "nothing left" checks await it.
   */
  exited: Promise<ExitInfo>;
  /**
   * Resolves as soon as the outcome is known: sbx-init reported the command's status (the launcher
   * then SIGKILLs pid 1, so nothing of the job runs on) and usage was read from the cgroup; or, if
   * pid 1 ended without reporting (timeout, kill), once it is reaped. Comes before the teardown
   * (pid 1's exit through the namespace teardown, cgroup removal) that `exited` waits for: report
   * the result from it, then await `exited` before giving the slot back. Same values as `exited`
   * except `cleanupError` (not known yet) and `leftoverProcesses` (counted at `exited`; 0 here when
   * the status came first). Never rejects; for a launch that rejects it is not returned.
   */
  ended: Promise<EndInfo>;
  /** Send a signal to the job's command (through its pid 1, as `docker kill -s`); false once it has ended. */
  signal(sig: NodeJS.Signals | number): boolean;
  /**
   * The job's CPU weight among the host's other jobs, in cgroup v1 `cpu.shares` units (1024: the
   * default every job starts with; 2..262144; on v2 `cpu.weight` scaled alike, 100 for 1024). False
   * once it has ended, or when the host refused the write.
   */
  setCpuShares(shares: number): boolean;
  /** Kills the whole job (every process in its pid namespace and cgroup). */
  kill(): void;
  /**
   * Ends the job as its limits do: the stop signal and `limits.stopGraceMs` first if given (or
   * `how`'s, as docker stop -t/-s); then, with `outputFiles`, every process but its pid 1 is killed
   * and the files are collected (within `LaunchOptions.outputFilesGraceMs`); without, as kill().
   */
  stop(how?: StopRequest): void;
  /** The job's usage now, from its cgroup (docker stats); null once it has ended. */
  usage(): LiveUsage | null;
}

/** Launched.usage(): a running job's usage as its cgroup counts it now. */
export interface LiveUsage {
  cpuMs: number;
  /** Memory charged to the job now, the pages of the files it wrote included. */
  memoryBytes: number;
  memoryPeakBytes: number;
  /** Processes (tasks) in the job now. */
  pids: number;
}

/** How to stop a job (Launched.stop): its command gets `signal`, then has `graceMs` to exit. */
export interface StopRequest {
  graceMs: number;
  signal: NodeJS.Signals;
}

export interface LaunchOptions {
  /** Cgroup parent, relative to each hierarchy root. Default "sbx". */
  cgroupParent?: string;
  /** Where the launcher keeps its mount point and init layer. Default "/var/lib/sbx". */
  stateDir?: string;
  /** Diagnostics/tests only: run without the seccomp filter. Default true. */
  seccomp?: boolean;
  /**
   * Tests on hybrid hosts only: use the cgroup v2 code path on this cgroup2 mount (e.g.
   * /sys/fs/cgroup/unified). Controllers bound to v1 there are skipped: their limits do not apply.
   */
  cgroupV2Root?: string;
  /**
   * P9: run the job in its slot's user namespace (default true): container ids 0..65535 map to
   * host ids uidBase + slot * 65536 + id; the image layers are idmapped so image ownership is kept.
   */
  userns?: boolean;
  /** Host uid/gid of container id 0 for slot 0. Default 100000. */
  uidBase?: number;
  /**
   * P30: 'deny' makes flock(2) and fcntl F_SETLK/F_SETLKW/F_OFD_SETLK/F_OFD_SETLKW fail with EPERM
   * in the job (seccomp), closing the lock channel between concurrent jobs through shared
   * read-only inodes (the /dev template's device nodes). Default 'allow': many programs (sqlite,
   * package managers, git) need locks on their own files and fail without them.
   */
  fileLocks?: 'allow' | 'deny';
  /**
   * P30: give each job a core-scheduling cookie of its own (sbx-init does
   * `prctl(PR_SCHED_CORE, PR_SCHED_CORE_CREATE, 0, PR_SCHED_CORE_SCOPE_THREAD_GROUP)` before forking
   * the command; every process of the job inherits it), so its tasks never share an SMT core with
   * another job's or the host's (nsjail `--use_core_scheduling`). Default true. On a kernel without
   * it (no CONFIG_SCHED_CORE, or no SMT) jobs run without a cookie: `probeHost().features.coreScheduling`.
   */
  coreScheduling?: boolean;
  /**
   * P29: aggregate limits on the parent group (`cgroupParent`) itself — all jobs under it together
   * cannot exceed them (v1 memory.limit_in_bytes (+ memsw) / pids.max; v2 memory.max / pids.max).
   * Written when first given or changed; omitting it later leaves the last values in place.
   */
  parentLimits?: { memoryBytes?: number; pids?: number };
  /**
   * Tests only (paired controls): `false` skips the P17 device allow-list (v1 devices cgroup,
   * v2 BPF device program). Default true; do not expose.
   */
  devicesCgroup?: boolean;
  /** Diagnostics (`npm run bench:launcher -- --phases`): `ExitInfo.phases` gets the launch's phase times. */
  trace?: boolean;
  /**
   * Pooled setups (default true): after a launch on a slot, the next jobs' setups
   * for that slot are made ahead for that launch's image (lowerDirs, diskBytes) and limits: cgroups
   * with the limits written, pid/mount/uts/ipc/net/cgroup namespaces, the whole mount program up to
   * pivot_root, sbx-init waiting. Each is used by one job only, never reused; a job of another image
   * (or whose layer directories changed) discards them and does all of it itself. Costs two idle
   * sbx-init processes (and their namespaces, mounts and cgroups) per slot in use;
   * closePool() or the process's exit removes them, sweep() removes a crashed process's. On cgroup v1
   * a job's groups are renamed to its id when it takes a setup; a v2 group cannot be renamed, so
   * there the job runs in the setup's group (`Launched.cgroups`). false: every launch does all of it
   * itself.
   */
  pool?: boolean;
  /**
   * With pooled setups: make them only while the CPUs this process may run on were at least this
   * share (0..1) idle over the last quarter second (/proc/stat). On a host with no CPU to spare a
   * setup made ahead only adds work (a pooled launch costs the machine more than a direct one), so
   * the slot's next launch goes direct instead. Default 0: always made.
   */
  poolMinIdle?: number;
  /**
   * Jobs with `outputFiles` that reach a limit (`timeoutMs`, `cpuTimeMs`) or are `stop()`ped: how long
   * their sbx-init may take to kill the rest of the job and collect the files before the job is
   * killed without them. Default 2000.
   */
  outputFilesGraceMs?: number;
}

/**
 * Error thrown by launch(): `code` is invalid_spec | command_not_found | host_unsupported | an errno
 * name | launch_failed. worker/src/launch-errors.ts maps it to the SbxError classes. A launch that
 * failed after the job's cgroup existed carries the `exit` of that attempt (its cleanup result).
 * A job that a limit ended before its command started did not fail to launch: launch() resolves,
 * with empty (already ended) streams and an exit whose reason is `timeout`.
 */
export class LaunchError extends Error {
  readonly code: string;
  readonly errno?: number;
  readonly syscall?: string;
  readonly path?: string;
  readonly stage?: string;
  exit?: ExitInfo;
  constructor(message: string, props: { code: string; errno?: number; syscall?: string; path?: string; stage?: string }) {
    super(message);
    this.name = 'LaunchError';
    this.code = props.code;
    if (props.errno !== undefined) this.errno = props.errno;
    if (props.syscall) this.syscall = props.syscall;
    if (props.path) this.path = props.path;
    if (props.stage) this.stage = props.stage;
  }
}

// ---- native binding ----

interface NativeError { errno: number; kind: number; stage: string; syscall: string; path: string }
export interface NativeExit {
  exitCode: number | null;
  signal: string | null;
  commandStatusKnown: boolean;
  cpuNs: number;
  memoryPeakBytes: number;
  oomKills: number;
  pidsMaxEvents: number;
  cpuThrottledNs: number;
  wallNs: number;
  leftoverProcesses: number;
  cleanupError?: NativeError;
  phases?: Record<string, number>;
  outputFiles?: Buffer;
}
interface NativeLaunched { handle: number; pid: number; stdoutFd: number; stderrFd: number; stdinFd: number; listenFd: number; cgroups: string[] }
interface Native {
  init(initPath: string): void;
  probe(): { cgroup: 'v1' | 'v2' | 'none'; ok: boolean; missing: string[]; features: Record<string, boolean> };
  /**
   * onEvent(kind, payload): 'exec' {pid} | 'error' NativeError | 'ended' NativeExit (outcome known,
   * before teardown) | 'exit' NativeExit (after teardown), on the JS thread.
   */
  launch(spec: LaunchSpec, opts: LaunchOptions, onEvent: (kind: string, payload: unknown) => void): NativeLaunched;
  kill(handle: number): boolean;
  /** cgroup::writeCpuShares on a running job's group; false: no such job, or the write failed. */
  setCpuShares(handle: number, shares: number): boolean;
  /** pipe_drop.h: drops what arrives on the pipe `fd` (duplicated) in the kernel; onEnd(bytes, errno, agoMs) once at its end. A handle. */
  dropPipe(fd: number, onEnd: (bytes: number, errno: number, agoMs: number) => void): number;
  /** Stops a drop: its bytes so far (-1: it had ended). */
  stopDrop(handle: number): number;
  /** A running drop's bytes so far (-1: it has ended). */
  droppedSoFar(handle: number): number;
  /** Milliseconds since a running drop last dropped bytes (-1: none yet, or it has ended). */
  droppedAgoMs(handle: number): number;
  stop(handle: number): boolean;
  signal(handle: number, sig: number): boolean;
  ttyResize(fd: number, rows: number, cols: number): void;
  live(handle: number): { cpuNs: number; memoryBytes: number; memoryPeakBytes: number; pids: number } | null;
  sweep(opts: LaunchOptions): SweepResult;
  liveJobs(): number;
  closePool(): number;
  poolSize(): number;
  pooledSetups(): PooledSetups;
}

const buildDir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'build', 'Release');
let binding: Native | undefined;

function native(): Native {
  if (!binding) {
    const require = createRequire(import.meta.url);
    const b = require(path.join(buildDir, 'sbx_native.node')) as Native;
    b.init(path.join(buildDir, 'sbx-init'));
    binding = b;
    // No pooled setup (LaunchOptions.pool) outlives the process: on process.exit() and the normal
    // end (the addon's environment cleanup hook covers worker threads). A killed process leaves
    // their cgroups to the next sweep() (the setups themselves die with it: PR_SET_PDEATHSIG).
    process.once('exit', () => { b.closePool(); });
  }
  return binding;
}

const CPU_POLL_MS = 50;
const OUTPUT_FILES_GRACE_MS = 2000;

const kindCodes: Record<number, string> = { 1: 'invalid_spec', 2: 'command_not_found', 3: 'host_unsupported' };

function fromNative(e: NativeError): LaunchError {
  const code = kindCodes[e.kind] ?? errnoName(e.errno) ?? 'EUNKNOWN';
  const where = [e.syscall, e.path ? `\`${e.path}\`` : ''].filter(Boolean).join(' ');
  return new LaunchError(`${e.stage}${where ? `: ${where}` : ''}: ${errnoName(e.errno)}`, {
    code, errno: e.errno, syscall: e.syscall, path: e.path, stage: e.stage,
  });
}

function fromThrown(e: unknown): LaunchError {
  const x = e as Partial<LaunchError> & { message?: string };
  if (x && typeof x.code === 'string') {
    return new LaunchError(x.message ?? 'launch failed', {
      code: x.code, errno: x.errno, syscall: x.syscall, path: x.path, stage: x.stage,
    });
  }
  return new LaunchError(String((e as Error)?.message ?? e), { code: 'launch_failed' });
}

// ---- public API ----

let probed: HostProbe | undefined;

export function probeHost(_opts?: { cgroupParent?: string }): HostProbe {
  if (!probed) {
    const p = native().probe();
    probed = { cgroup: p.cgroup, ok: p.ok, missing: [...p.missing], features: { ...p.features } };
  }
  return probed;
}

/**
 * P29: lower the calling process's OOM score (oom_score_adj, -1000..1000) so that under global
 * memory pressure the kernel kills jobs (+1000) long before the worker. The worker calls it once at
 * start. Returns false if the process may not lower its score (needs CAP_SYS_RESOURCE).
 */
export function protectSelf(score = -500): boolean {
  if (!Number.isInteger(score) || score < -1000 || score > 1000) throw new RangeError('score must be an integer in -1000..1000');
  try {
    fs.writeFileSync('/proc/self/oom_score_adj', String(score));
    return true;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM') return false;
    throw e;
  }
}

/**
 * Kill and remove every pooled setup of this process (LaunchOptions.pool): call at shutdown (the
 * process's normal exit does it too). Returns how many there were. Launches afterwards make new ones.
 */
export function closePool(): number {
  return native().closePool();
}

/** Number of pooled setups this process holds (for leak tests). */
export function poolSize(): number {
  return native().poolSize();
}

/**
 * This process's pooled setups, for leak tests. `groupDirs`: their cgroup directories (made ahead
 * and idle, being made, or being discarded); not those of jobs that started in one
 * (`Launched.cgroups`). `made`: how many setups were begun when the list was read; the setups are
 * numbered in order (`pool-<pid>-<n>`), so one above `made` was begun after the list was read.
 */
export interface PooledSetups {
  groupDirs: string[];
  made: number;
}

export function pooledSetups(): PooledSetups {
  return native().pooledSetups();
}

/** The cgroup directories of this process's pooled setups (pooledSetups().groupDirs). */
export function pooledGroupDirs(): string[] {
  return native().pooledSetups().groupDirs;
}

/** Number of jobs the native side still tracks (for leak tests). */
export function liveJobs(): number {
  return native().liveJobs();
}

export interface SweepResult {
  /** Groups removed. */
  cgroups: number;
  /** Processes killed in them. */
  processes: number;
  /** Groups that could not be removed (still there; a later sweep tries again). */
  left: number;
}

/**
 * Kill and remove every job group under `opts.cgroupParent` except those of the jobs this process
 * still runs (launched and not yet exited): the worker's start-up janitor, and the retry for a
 * group whose removal failed at a job's exit. Runs synchronously on the JS thread, as launch()
 * and the exit handling do, so no job can start or end during it.
 */
export async function sweep(opts: LaunchOptions = {}): Promise<SweepResult> {
  return native().sweep(opts);
}

/** The rest of one output stream of a job, dropped in the kernel (dropRestInKernel). */
export interface KernelDrop {
  /** The bytes dropped (what the stream held unread, and what the pipe got after), once the pipe has ended or stop() was called. */
  ended: Promise<number>;
  /** The bytes dropped so far. */
  soFar(): number;
  /** Date.now() when the drop last dropped bytes (the job's latest output on this stream), also once it has ended; null: none dropped. */
  lastDropAt(): number | null;
  /** Stops dropping (the pipe is closed): `ended` settles with what was dropped until now. */
  stop(): void;
}

/**
 * Takes a job's stdout or stderr (from launch()) away from Node and drops the rest of it in the
 * kernel (native/src/pipe_drop.h: splice to /dev/null), for output no one will keep: the stream is
 * destroyed, the pipe read to its end without a byte reaching JavaScript. Null when `stream` is not
 * such a pipe (a tty, an ended stream): read it as before.
 */
export function dropRestInKernel(stream: Readable): KernelDrop | null {
  const fd = (stream as { _handle?: { fd?: unknown } })._handle?.fd;
  if (!(stream instanceof net.Socket) || stream.destroyed || typeof fd !== 'number' || fd < 0) return null;
  const n = native();
  const unread = stream.readableLength;
  let settle!: (bytes: number) => void;
  const ended = new Promise<number>((ok) => { settle = ok; });
  let handle: number;
  /** lastDropAt() as it was when the drop ended (its handle no longer answers). */
  let endedLastAt: number | null | undefined;
  const at = (agoMs: number) => (agoMs < 0 ? null : Date.now() - agoMs);
  try {
    handle = n.dropPipe(fd, (bytes, _errno, agoMs) => {
      endedLastAt = at(agoMs);
      settle(unread + bytes);
    });
  } catch {
    return null;
  }
  // Paused first: destroy() leaves what the stream holds buffered, and a flowing stream goes on
  // emitting it as 'data' (taken from inside a 'data' handler, the next held chunk follows), so
  // those bytes were read and counted in `unread` too.
  stream.pause();
  stream.destroy();
  return {
    ended,
    soFar: () => unread + Math.max(0, n.droppedSoFar(handle)),
    lastDropAt: () => (endedLastAt !== undefined ? endedLastAt : at(n.droppedAgoMs(handle))),
    stop() {
      const agoMs = n.droppedAgoMs(handle);
      const bytes = n.stopDrop(handle);
      if (bytes < 0) return;
      endedLastAt = at(agoMs);
      settle(unread + bytes);
    },
  };
}

export async function launch(spec: LaunchSpec, opts: LaunchOptions = {}): Promise<Launched> {
  const n = native();
  let endedBy: 'timeout' | 'killed' | null = null;
  let started = false;
  let failure: LaunchError | null = null;
  let resolveStart!: () => void;
  let rejectStart!: (e: LaunchError) => void;
  let resolveExit!: (x: ExitInfo) => void;
  let resolveEnded!: (x: EndInfo) => void;
  const ended = new Promise<EndInfo>((res) => { resolveEnded = res; });
  let isOver = false; // the outcome is known: signal() answers false from here on
  const startP = new Promise<void>((res, rej) => { resolveStart = res; rejectStart = rej; });
  const exited = new Promise<ExitInfo>((res) => { resolveExit = res; });
  let timer: NodeJS.Timeout | undefined;
  let stopTimer: NodeJS.Timeout | undefined;
  let graceTimer: NodeJS.Timeout | undefined;
  let stopping = false;
  /** The command was sent the stop signal (limits.stopGraceMs): an exit of its own after that is the limit's doing. */
  let stopSignalled = false;
  let ttyFds: { ttyFd: number; ttyWriteFd: number } | undefined;

  let collected: OutputFile[] | undefined;
  /** The job has ended: no limit or grace timer may act on it any more, and signal() answers false. */
  const outcomeKnown = (): void => {
    clearTimeout(timer);
    clearTimeout(graceTimer);
    clearTimeout(stopTimer);
    isOver = true;
  };
  const onEvent = (kind: string, payload: unknown): void => {
    if (kind === 'exec') {
      const p = payload as { ttyFd?: number; ttyWriteFd?: number };
      if (typeof p.ttyFd === 'number' && typeof p.ttyWriteFd === 'number') ttyFds = { ttyFd: p.ttyFd, ttyWriteFd: p.ttyWriteFd };
      started = true;
      resolveStart();
    } else if (kind === 'error') {
      failure = fromNative(payload as NativeError);
      rejectStart(failure);
    } else if (kind === 'ended') {
      outcomeKnown();
      const { cleanupError: _, ...end } = toExitInfo(payload as NativeExit, endedBy, stopSignalled);
      collected = end.outputFiles;
      resolveEnded(end);
    } else if (kind === 'exit') {
      outcomeKnown();
      const x = payload as NativeExit;
      if (!started) {
        // A limit that ended the job before its command started (limits.timeoutMs counts from the
        // launch) gives it an outcome, timeout; only a job that ended on its own failed to start.
        if (failure === null && endedBy !== null) {
          started = true;
          resolveStart();
        } else {
          rejectStart(failure ?? new LaunchError('the job ended before its command started', { code: 'launch_failed' }));
        }
      }
      const info = toExitInfo(x, endedBy, stopSignalled);
      if (collected) info.outputFiles = collected; // read once, with 'ended'
      const { cleanupError: _, ...end } = info;
      resolveEnded(end); // no-op after 'ended'
      resolveExit(info);
    }
  };

  let h: NativeLaunched;
  try {
    const pipeIn = spec.openStdin && !spec.tty && spec.stdin === null;
    h = n.launch(pipeIn ? { ...spec, stdin: '' } : spec, opts, onEvent);
  } catch (e) {
    throw fromThrown(e);
  }
  // A job that asked for output files gets them after a limit too (sbx-init kills the rest of the
  // job and collects), within the grace; any other is killed at once.
  const killCollecting = (): void => {
    if (graceTimer || isOver) return;
    if (started && n.stop(h.handle)) graceTimer = setTimeout(() => n.kill(h.handle), opts.outputFilesGraceMs ?? OUTPUT_FILES_GRACE_MS);
    else n.kill(h.handle);
  };
  // A limit ends the job: with limits.stopGraceMs the command is asked to stop first (sbx-init
  // forwards the signal to it) and given that long; the job ends sooner if it exits.
  const asSpecified: StopRequest = { graceMs: spec.limits.stopGraceMs ?? 0, signal: spec.limits.stopSignal ?? 'SIGTERM' };
  const stop = (how = asSpecified): void => {
    if (stopping || isOver) return;
    stopping = true;
    const sig = os.constants.signals[how.signal];
    if (how.graceMs > 0 && started && n.signal(h.handle, sig)) {
      stopSignalled = true;
      stopTimer = setTimeout(killCollecting, how.graceMs);
    }
    else killCollecting();
  };
  timer = setTimeout(() => {
    endedBy ??= 'timeout';
    stop();
  }, spec.limits.timeoutMs);
  // CPU time of the whole job, from its cgroup (RLIMIT_CPU in the job only bounds each process).
  const cpuLimitNs = (spec.limits.cpuTimeMs ?? 0) * 1e6;
  const cpuTimer = cpuLimitNs > 0
    ? setInterval(() => {
      const u = n.live(h.handle);
      if (u && u.cpuNs >= cpuLimitNs) {
        endedBy ??= 'timeout';
        stop();
      }
    }, CPU_POLL_MS)
    : undefined;
  void ended.then(() => clearInterval(cpuTimer));
  const stdout = new net.Socket({ fd: h.stdoutFd, readable: true, writable: false });
  const stderr = new net.Socket({ fd: h.stderrFd, readable: true, writable: false });
  let stdin: Writable | undefined;
  if (h.stdinFd >= 0) {
    const s = new net.Socket({ fd: h.stdinFd, readable: false, writable: true });
    s.on('error', () => {}); // EPIPE when the job does not read its input: not our failure
    if (spec.openStdin && !spec.tty) {
      if (spec.stdin) s.write(spec.stdin);
    } else {
      s.end(spec.stdin ?? '');
    }
    stdin = s;
  }
  try {
    await startP;
  } catch (e) {
    stdout.destroy();
    stderr.destroy();
    stdin?.destroy();
    if (h.listenFd >= 0) fs.closeSync(h.listenFd);
    (e as LaunchError).exit = await exited; // the native side has reaped and removed the cgroup by then
    throw e;
  }
  const jobTty = ttyFds ? openJobTty(ttyFds.ttyFd, ttyFds.ttyWriteFd, (fd, r, c) => n.ttyResize(fd, r, c)) : undefined;
  if (jobTty && spec.stdin) void jobTty.write(spec.stdin);
  return {
    pid: h.pid,
    cgroups: h.cgroups,
    stdout,
    stderr,
    ...(spec.openStdin && !spec.tty && stdin ? { stdin } : {}),
    ...(jobTty ? { tty: jobTty } : {}),
    ...(h.listenFd >= 0 ? { listenFd: h.listenFd } : {}),
    exited,
    ended,
    signal(sig: NodeJS.Signals | number): boolean {
      const num = typeof sig === 'number' ? sig : os.constants.signals[sig];
      if (isOver || !Number.isInteger(num) || num < 1 || num > 64) return false;
      return n.signal(h.handle, num);
    },
    setCpuShares(shares: number): boolean {
      return !isOver && n.setCpuShares(h.handle, Math.round(shares));
    },
    kill(): void {
      endedBy ??= 'killed';
      n.kill(h.handle);
    },
    stop(how?: StopRequest): void {
      endedBy ??= 'killed';
      stop(how);
    },
    usage(): LiveUsage | null {
      const l = isOver ? null : n.live(h.handle);
      return l && { cpuMs: l.cpuNs / 1e6, memoryBytes: l.memoryBytes, memoryPeakBytes: l.memoryPeakBytes, pids: l.pids };
    },
  };
}

/**
 * The exit's reason. A limit's timer, or a kill() or stop() (a cancel), that came as the command was
 * exiting by itself (its exit code, no signal, and no stop signal asked it to) leaves the command's
 * own outcome: it stopped nothing (a SIGKILL that ends the job shows as the command's signal, or
 * as pid 1's when sbx-init had not reported the command yet). `oom` when the memory limit's OOM kills ended the command (a signal): on cgroup v1 the
 * kernel may kill another process of the job and the command run on to its own exit.
 */
export function toExitInfo(x: NativeExit, endedBy: 'timeout' | 'killed' | null, stopSignalled = false): ExitInfo {
  const oomKilled = x.oomKills > 0;
  const exitedByItself = x.signal === null && x.exitCode !== null && !stopSignalled;
  const limit = exitedByItself ? null : endedBy;
  const reason: ExitInfo['reason'] = limit ?? (oomKilled && x.signal ? 'oom' : x.signal ? 'signaled' : 'exited');
  return {
    exitCode: x.exitCode,
    signal: x.signal,
    reason,
    oomKilled,
    pidsLimitHit: x.pidsMaxEvents > 0,
    usage: { cpuMs: x.cpuNs / 1e6, cpuThrottledMs: x.cpuThrottledNs / 1e6, memoryPeakBytes: x.memoryPeakBytes, wallMs: x.wallNs / 1e6 },
    leftoverProcesses: x.leftoverProcesses,
    cleanupError: x.cleanupError ? fromNative(x.cleanupError) : null,
    ...(x.phases ? { phases: x.phases } : {}),
    ...(x.outputFiles ? collectedFiles(x.outputFiles) : {}),
  };
}

/** The collected files, or none when sbx-init's records do not parse (it runs inside the job). */
function collectedFiles(buf: Buffer): Pick<ExitInfo, 'outputFiles'> {
  try {
    return { outputFiles: parseOutputFiles(buf) };
  } catch {
    return {};
  }
}
