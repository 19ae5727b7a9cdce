/**
 * The ranges the native launcher accepts for each job limit, in one place for the API and config.
 *
 * THESE MUST AGREE WITH native/src/spec.cc (readLimits: the getNumber(min, max, integer) calls).
 * The API (core/src/job-spec.ts LimitsRequest) and the SBX_DEFAULT_* / SBX_MAX_* settings
 * (core/src/config.ts) never accept a value outside them, so a job the API accepts is never refused
 * by the launcher as invalid_spec; core/src/launch-bounds.test.ts launches every boundary to check.
 */

import { readFileSync } from 'node:fs';

const MiB = 1024 * 1024;
/** spec.cc kMax: the largest integer a double holds exactly. */
const MAX_EXACT = Number.MAX_SAFE_INTEGER;

export interface LimitBound {
  min: number;
  max: number;
  integer: boolean;
}

export const LAUNCH_BOUNDS = {
  memoryBytes: { min: 4 * MiB, max: MAX_EXACT, integer: true },
  /** pids.max of 1 would forbid the command itself next to the job's init: at least 2. */
  pids: { min: 2, max: 4_194_304, integer: true },
  /** CPU quota in CPUs (cfs_quota / period); 0.01 = 1 ms per 100 ms. */
  cpus: { min: 0.01, max: 1024, integer: false },
  /** The launcher's wall-clock timer is a setTimeout: at most 2^31 - 1 ms. */
  timeoutMs: { min: 1, max: 2_147_483_647, integer: true },
  diskBytes: { min: 1 * MiB, max: MAX_EXACT, integer: true },
  cpuTimeMs: { min: 1, max: MAX_EXACT, integer: true },
  /**
   * RLIMIT_NOFILE. spec.cc's maximum is the worker process's own hard RLIMIT_NOFILE (see
   * openFilesLimit below): the worker raises it to SBX_MAX_OPEN_FILES at start or refuses to start
   * (worker/src/open-files-limit.ts). This maximum is the kernel's default fs.nr_open.
   */
  openFiles: { min: 8, max: 1_048_576, integer: true },
} as const satisfies Record<string, LimitBound>;

/**
 * The most layers an image may have: spec.cc takes at most 128 lowerDirs (getStringArray), and the
 * overlay mount fits them in one page of options (native/src/mnt.cc). The worker refuses an image
 * with more when it reads its manifest, before downloading any layer.
 */
export const MAX_IMAGE_LAYERS = 128;

/**
 * A job's user namespace maps container uids and gids 0..65535 (native/src/userns.h kRange): a
 * numeric `user` or group must be under this.
 */
export const JOB_ID_RANGE = 65_536;

/**
 * What execve(2) takes, which the launcher passes to sbx-init and sbx-init to the command: each
 * argument and each environment string (`NAME=value`) at most MAX_ARG_STRLEN (32 pages) counting its
 * terminating NUL, all of them together (strings, NULs and one pointer each) at most a quarter of
 * RLIMIT_STACK (the launcher's 8 MiB: 2 MiB). A request's own command, entrypoint and env may use
 * half of that, so the image's environment and entrypoint have the other half.
 */
export const EXEC_BOUNDS = {
  /** Bytes of one argument or one `NAME=value`, without its NUL. */
  stringBytes: 131_071,
  /** Bytes of a request's command, entrypoint and env together, each string counted with its NUL and an 8-byte pointer. */
  totalBytes: 1024 * 1024,
} as const;

/** One string's share of EXEC_BOUNDS.totalBytes: its UTF-8 bytes, its NUL, its pointer. */
export const execBytes = (s: string): number => Buffer.byteLength(s, 'utf8') + 1 + 8;

/**
 * Interactive jobs' idle limit (not the launcher's: the worker's timer, a setTimeout): at least a
 * second, at most 2^31 - 1 ms.
 */
export const IDLE_TIMEOUT_BOUND: LimitBound = { min: 1000, max: 2_147_483_647, integer: true };

/** Not the launcher's (the worker caps a job's stream): any size a JS number counts exactly. */
export const OUTPUT_BYTES_BOUND: LimitBound = { min: 0, max: MAX_EXACT, integer: true };

/** limits.stopGraceMs: how long a job may run on past a limit, after its stop signal (docker stop -t; Kubernetes' default grace is 30 s). */
export const STOP_GRACE_BOUND: LimitBound = { min: 0, max: 60_000, integer: true };
/** stopSignal: what the command may be asked to stop with (docker --stop-signal); SIGKILL needs no grace. */
export const STOP_SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'] as const;
export type StopSignal = (typeof STOP_SIGNALS)[number];
export const isStopSignal = (s: string): s is StopSignal => (STOP_SIGNALS as readonly string[]).includes(s);

export type LaunchLimitName = keyof typeof LAUNCH_BOUNDS;

/** This process's RLIMIT_NOFILE (/proc/self/limits; Infinity = unlimited). */
export function openFilesLimit(): { soft: number; hard: number } {
  const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
  if (!m) throw new Error('no "Max open files" line in /proc/self/limits');
  const n = (v: string) => (v === 'unlimited' ? Infinity : Number(v));
  return { soft: n(m[1]!), hard: n(m[2]!) };
}

/**
 * Default SBX_MAX_OPEN_FILES: 65536, or less when this host's hard RLIMIT_NOFILE is lower (a
 * worker without CAP_SYS_RESOURCE cannot raise it, and the launcher refuses more than it has).
 */
export function defaultMaxOpenFiles(): number {
  let hard: number = LAUNCH_BOUNDS.openFiles.max;
  try {
    hard = openFilesLimit().hard;
  } catch {
    // not Linux: the launcher does not run here anyway
  }
  return Math.max(LAUNCH_BOUNDS.openFiles.min, Math.min(65_536, hard));
}
