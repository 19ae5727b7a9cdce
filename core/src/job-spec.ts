/**
 * The job contract of ../shared/design/api.md as zod schemas: what a client may send (JobRequest),
 * what sbx stores and the worker trusts (JobSpec: the request with every default resolved), and
 * what clients read back (JobDocument). Types are inferred from the schemas.
 */
// z from @hono/zod-openapi: zod with .openapi(), which zod v4 gives only to schemas made after it is
// loaded; importing it here makes the schemas below describable whatever imports them first.
import { z } from '@hono/zod-openapi';
import { EXEC_BOUNDS, IDLE_TIMEOUT_BOUND, JOB_ID_RANGE, LAUNCH_BOUNDS, OUTPUT_BYTES_BOUND, STOP_GRACE_BOUND, STOP_SIGNALS, type LimitBound } from './launch-bounds.ts';
import { posix } from 'node:path';
import { isUnknownIssue, unknownIn } from './schema-unknowns.ts';

export const MIN_MEMORY_BYTES = LAUNCH_BOUNDS.memoryBytes.min;
export const MIN_DISK_BYTES = LAUNCH_BOUNDS.diskBytes.min;

const noNul = (what: string) => z.string().refine((s) => !s.includes('\0'), `${what} must not contain NUL bytes`);
/** A UTF-16 surrogate without its pair: a string holding one has no UTF-8 form. */
export const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
/** The longest path a job's strings may name: PATH_MAX (4096) with its NUL. */
export const PATH_MAX_BYTES = 4095;
/** A path with a component named proc: no job starts there (the launcher refuses it too: native/src/spec.cc). */
/** Whether `path` is /proc or below it once its `.` and `..` are resolved (a component named proc elsewhere is not). */
export const isInsideProc = (path: string): boolean => {
  const resolved = posix.normalize(`/${path}`);
  return resolved === '/proc' || resolved.startsWith('/proc/');
};
/** A lone surrogate has no UTF-8 form: stored or passed on, it would become U+FFFD, so two such values would read alike. */
const wellFormed = (schema: z.ZodString, what?: string) => schema.refine((s) => !LONE_SURROGATE.test(s), `${what ? `${what} ` : ''}must be well-formed Unicode (no lone surrogate such as \\ud800)`);
/**
 * A string the job receives byte for byte (argument, environment, workdir): no NUL, and well-formed
 * Unicode, as a lone surrogate (\ud800) has no UTF-8 form and would reach the job as U+FFFD.
 */
const execString = (what: string) => wellFormed(noNul(what), what);

/** A time as api.md gives every time: an RFC 3339 string in UTC (`toISOString()`); the OpenAPI document says so. */
export const Rfc3339 = (): z.ZodString => z.string().openapi({ format: 'date-time', example: '2026-12-01T12:00:00.000Z' });

export const JobStatus = z.enum(['queued', 'pulling', 'running', 'succeeded', 'failed', 'timeout', 'oom', 'cancelled', 'error']);
export type JobStatus = z.infer<typeof JobStatus>;
export const FINISHED_STATUSES: readonly JobStatus[] = ['succeeded', 'failed', 'timeout', 'oom', 'cancelled', 'error'];
export const isFinished = (s: JobStatus): boolean => FINISHED_STATUSES.includes(s);

/** limits.outputTailBytes: held in the worker's memory per stream until the job ends, so bounded whatever outputBytes allows. */
export const OUTPUT_TAIL_BOUND: LimitBound = { min: 0, max: 1024 * 1024, integer: true };

/**
 * One requested limit: the launcher's range (core/src/launch-bounds.ts, which mirrors
 * native/src/spec.cc), so a job accepted here is never refused by the launcher. The server's
 * SBX_MAX_* maxima (at most the same bounds) are checked after defaults (api/src/job-submission.ts).
 */
function limit(b: LimitBound) {
  const n = b.integer ? z.number().int('must be a whole number') : z.number();
  return n.min(b.min, `must be >= ${b.min}`).max(b.max, `must be <= ${b.max}`).optional();
}

export const LimitsRequest = z.strictObject({
  memoryBytes: limit(LAUNCH_BOUNDS.memoryBytes)
    .describe('Memory of all the job\'s processes together, including the files it writes (its writable layer and /dev/shm are in memory); exceeding it ends the job oom.'),
  cpus: limit(LAUNCH_BOUNDS.cpus),
  pids: limit(LAUNCH_BOUNDS.pids),
  timeoutMs: limit(LAUNCH_BOUNDS.timeoutMs),
  outputBytes: limit(OUTPUT_BYTES_BOUND),
  outputTailBytes: limit(OUTPUT_TAIL_BOUND)
    .describe('Of each stream\'s outputBytes, how many are kept from the end of the output (default 0: all from its start). The first outputBytes - outputTailBytes bytes are streamed live; past them the last outputTailBytes are held by the worker and sent when the job ends, so an output longer than outputBytes keeps its start and its end (where the error usually is), and `outputDroppedBytes` says how much was left out between them. At most outputBytes, and at most 1 MiB (the worker holds it in memory until the job ends).'),
  diskBytes: limit(LAUNCH_BOUNDS.diskBytes)
    .describe('Size of the job\'s writable layer (all it writes outside /dev/shm); past it writes fail with ENOSPC. It is also each file\'s largest size (RLIMIT_FSIZE): a process that writes one file past it gets SIGXFSZ, which ends it unless it handles the signal (then the write fails with EFBIG). These bytes are memory, so they also count against memoryBytes.'),
  /** CPU time of the whole job (all its processes); reaching it ends the job `timeout`. */
  cpuTimeMs: limit(LAUNCH_BOUNDS.cpuTimeMs),
  /** RLIMIT_NOFILE of every process of the job. */
  openFiles: limit(LAUNCH_BOUNDS.openFiles),
  outputIdleTimeoutMs: limit(IDLE_TIMEOUT_BOUND)
    .describe('The job ends `timeout` (error.code output_idle_timeout) once it has written nothing to stdout or stderr (or its terminal) for this long: a hung process is stopped long before limits.timeoutMs. Counted from the start of the command; absent = no such limit.'),
  idleTimeoutMs: limit(IDLE_TIMEOUT_BOUND)
    .describe('Interactive jobs (openStdin or tty) only: the job ends `timeout` (error.code idle_timeout) once nothing has been attached to it and nothing written to its stdin for this long. Default and maximum: the server\'s SBX_DEFAULT_IDLE_TIMEOUT_MS / SBX_MAX_IDLE_TIMEOUT_MS.'),
  stopGraceMs: limit(STOP_GRACE_BOUND)
    .describe('When a limit ends the job (timeoutMs, cpuTimeMs, outputIdleTimeoutMs, idleTimeoutMs), the command first gets `stopSignal` (default SIGTERM) and this long to exit (docker stop -t): time to write a report or flush its output, which is kept, as are its outputFiles. Then every process of the job is killed. Default 0: killed at once. The job still ends `timeout`; at most 60000.'),
});

export const Limits = z.object({
  memoryBytes: z.number().int(),
  cpus: z.number(),
  pids: z.number().int(),
  timeoutMs: z.number().int(),
  outputBytes: z.number().int(),
  /** Of outputBytes, kept from the end of each stream (absent = 0): see LimitsRequest.outputTailBytes. */
  outputTailBytes: z.number().int().optional(),
  diskBytes: z.number().int(),
  cpuTimeMs: z.number().int().nullable(),
  openFiles: z.number().int(),
  /** Absent = none: see LimitsRequest.outputIdleTimeoutMs. */
  outputIdleTimeoutMs: z.number().int().optional(),
  /** Interactive jobs only (null or absent otherwise): see LimitsRequest.idleTimeoutMs. */
  idleTimeoutMs: z.number().int().nullable().optional(),
  /** Absent = 0 (killed at once): see LimitsRequest.stopGraceMs. */
  stopGraceMs: z.number().int().optional(),
});
export type Limits = z.infer<typeof Limits>;

/** A terminal's size in character cells. */
export const TtySize = z.strictObject({
  rows: z.number().int().min(1).max(65535),
  cols: z.number().int().min(1).max(65535),
});
export type TtySize = z.infer<typeof TtySize>;

const utf8Bytes = (s: string): number => Buffer.byteLength(s, 'utf8');
const argv = (what: string) => z
  .array(execString(`${what} items`).refine((s) => utf8Bytes(s) <= EXEC_BOUNDS.stringBytes, `each item must be at most ${EXEC_BOUNDS.stringBytes} bytes (UTF-8; the kernel's limit for one argument)`))
  .max(4096, `${what} may have at most 4096 items`);

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
/** The permission bits of an input file: a number (0o755 = 493) or its octal digits as text ("755", "0755"). */
const FileMode = z.union([
  z.number().int('must be a whole number').min(0).max(0o777, 'must be at most 0777 (permission bits only)'),
  z.string().regex(/^0?[0-7]{1,3}$/, 'must be octal permission bits such as "0644" or "755"'),
]);

/** At most 4095 bytes (PATH_MAX with its NUL), each component at most 255 (NAME_MAX). */
const filePath = execString('path')
  .min(1, 'is required')
  .refine((s) => utf8Bytes(s) <= PATH_MAX_BYTES, 'must be at most 4095 bytes (UTF-8)')
  .refine((s) => !s.endsWith('/'), 'must name a file (not end in /)')
  .refine((s) => s.split('/').every((c) => utf8Bytes(c) <= 255), 'each component must be at most 255 bytes (UTF-8)');

export const InputFile = z.strictObject({
  path: filePath.describe('Absolute, or relative to the job\'s working directory; missing parent directories are made (0755).'),
  content: z.string().refine((s) => !LONE_SURROGATE.test(s), 'must be well-formed Unicode (no lone surrogate such as \\ud800): send bytes that are not UTF-8 text as base64, with encoding "base64"')
    .describe('The file\'s bytes: UTF-8 text, or base64 with `encoding: "base64"`.'),
  encoding: z.enum(['utf8', 'base64']).optional().describe('How `content` holds the bytes (default utf8).'),
  mode: FileMode.optional().describe('Permission bits, as a number (493 = 0755) or octal text ("0755"); default 0644.'),
}).refine((f) => f.encoding !== 'base64' || BASE64.test(f.content), { path: ['content'], message: 'is not valid base64 (RFC 4648, padded)' });
export type InputFile = z.infer<typeof InputFile>;

/** How many bytes an input file (as stored in a JobSpec) writes. */
export function inputFileBytes(f: { content: string; encoding: 'utf8' | 'base64' }): number {
  return Buffer.byteLength(f.content, f.encoding);
}

/** The bytes an input file (as stored in a JobSpec) writes. */
export function inputFileData(f: { content: string; encoding: 'utf8' | 'base64' }): Buffer {
  return Buffer.from(f.content, f.encoding);
}

/** Most input files one job may have. */
export const MAX_INPUT_FILES = 1000;

/** Most output-file patterns one job may give (native/src/output_files.h kMaxPatterns). */
export const MAX_OUTPUT_PATTERNS = 32;

const outputPattern = execString('pattern')
  .min(1, 'is required')
  .refine((s) => utf8Bytes(s) <= PATH_MAX_BYTES, 'must be at most 4095 bytes (UTF-8)');

/** One collected output file as the job document describes it (its bytes: GET /v1/jobs/{id}/files). */
export const OutputFileInfo = z.object({
  path: z.string().describe('The matched path (relative patterns give paths relative to the workdir), or the pattern itself when it matched nothing.'),
  bytes: z.number().int().describe('The file\'s size as it was read.'),
  keptBytes: z.number().int().describe('How many of its bytes were kept: all, or with `truncated` what limits.outputBytes still allowed.'),
  truncated: z.boolean(),
  sha256: z.string().describe('SHA-256 (hex) of the kept bytes.'),
  skipped: z.string().optional().describe('Why nothing of it was collected: "no match", "not a regular file" (symbolic links are not followed), "too many files", or the errno name of the failed read.'),
});
export type OutputFileInfo = z.infer<typeof OutputFileInfo>;

/** At most this many `egressHosts`. */
export const MAX_EGRESS_HOSTS = 64;
const HOST_LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?';
/** A host name, or `*.` and a domain (its subdomains), lowercase or not, no trailing dot. */
export const EgressHostPattern = z.string().max(253, 'must be at most 253 characters')
  .regex(new RegExp(`^(?:\\*\\.)?${HOST_LABEL}(?:\\.${HOST_LABEL})*$`), 'must be a host name such as pypi.org, or *. and a domain such as *.pythonhosted.org')
  .refine((h) => !/^[0-9.]+$/.test(h), 'must be a host name, not an IP address');

export const JobRequest = z.strictObject({
  image: z.string().min(1, 'is required').max(512, 'must be at most 512 characters'),
  pull: z.enum(['missing', 'always'], { error: 'must be "missing" or "always"' }).optional()
    .describe('docker run --pull: "missing" (default) runs a tag the worker has cached as it was when cached; "always" asks the registry what the tag names now (layers already cached are not fetched again; at most once per tag every SBX_PULL_ALWAYS_FRESH_MS, 5 s, on a worker), so a tag pushed anew is run as it is now, and the cache keeps it for later jobs.'),
  command: argv('command').nullish(),
  entrypoint: argv('entrypoint')
    .refine((e) => e.length === 0 || e[0] !== '', 'must begin with the program to run, not an empty item ([] clears the image\'s entrypoint)')
    .nullish(),
  env: z
    .record(
      z.string().regex(/^[A-Za-z_][A-Za-z0-9_.-]{0,255}$/, 'names must match [A-Za-z_][A-Za-z0-9_.-]* (no "=")'),
      execString('env values'),
    )
    .refine((e) => Object.keys(e).length <= 1024, 'at most 1024 variables')
    .refine((e) => Object.entries(e).every(([k, v]) => utf8Bytes(k) + 1 + utf8Bytes(v) <= EXEC_BOUNDS.stringBytes), `each NAME=value must be at most ${EXEC_BOUNDS.stringBytes} bytes (UTF-8; the kernel's limit for one environment string)`)
    .optional(),
  workdir: execString('workdir')
    .startsWith('/', 'must be an absolute path')
    .max(4096)
    .refine((s) => utf8Bytes(s) <= PATH_MAX_BYTES, 'must be at most 4095 bytes (UTF-8; PATH_MAX with its NUL)')
    .refine((s) => !isInsideProc(s), 'must not be inside /proc')
    .optional()
    .describe('The command\'s working directory (default: the image\'s WorkingDir, else /). One the image lacks is made, as docker run -w makes it, here by the job\'s user (0755): a non-root user needs a place it may write, such as under /tmp; else the job ends error / invalid_request saying so.'),
  user: z.string().regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,63})?$/, 'must be user, uid, user:group or uid:gid')
    .refine((u) => u.split(':').every((part) => !/^\d+$/.test(part) || Number(part) < JOB_ID_RANGE), `a numeric uid or gid must be at most ${JOB_ID_RANGE - 1} (a job's user namespace maps 0-${JOB_ID_RANGE - 1})`)
    .optional(),
  stdin: execString('stdin').optional(),
  openStdin: z.boolean().optional()
    .describe('Docker\'s -i: the job\'s stdin stays open and is streamed through GET /v1/jobs/{id}/attach (a WebSocket) until a client closes it; `stdin`, if given, comes first.'),
  tty: z.boolean().optional()
    .describe('Docker\'s -t: the command runs on a pseudo-terminal of the job\'s own (controlling terminal, fds 0-2); its output is one stream (`stdout`), with the terminal\'s CR LF line ends.'),
  ttySize: TtySize.optional().describe('Initial size of the tty (default 24x80); attach clients resize it.'),
  outputFiles: z.array(outputPattern).max(MAX_OUTPUT_PATTERNS, `at most ${MAX_OUTPUT_PATTERNS} patterns`).optional()
    .describe('Files to collect once the command has ended: paths or glob(3) patterns (`*`, `?`, `[...]`), absolute or relative to the working directory. Read by the job itself, as its user (symbolic links are not followed; FIFOs and devices are not read), at most 1,000 files and limits.outputBytes of their bytes in all. The job document lists them (`outputFiles`); GET /v1/jobs/{id}/files returns their bytes. When a limit ends the job (timeoutMs, cpuTimeMs, outputIdleTimeoutMs, idleTimeoutMs) its other processes are killed first and the files are still collected, within 2 s; also after DELETE with graceMs, not after a plain cancel.'),
  files: z.array(InputFile).max(MAX_INPUT_FILES, `at most ${MAX_INPUT_FILES} files`).optional()
    .describe('Files written into the job before its command starts, in order (a later one for the same path wins), by the job itself: as its user, inside its root file system, with its limits (their bytes count against limits.diskBytes). A file its user may not write there fails the job with error.code invalid_request naming the file. Bounded by the request body limit.'),
  limits: LimitsRequest.optional(),
  stopSignal: z.enum(STOP_SIGNALS, { error: `must be one of ${STOP_SIGNALS.join(', ')}` }).optional()
    .describe('The signal the command gets when a limit ends the job and limits.stopGraceMs gives it time to exit (docker --stop-signal; default SIGTERM). SIGINT suits programs that clean up on Ctrl-C, such as pytest writing its report.'),
  network: z.enum(['none', 'egress'], { error: 'must be "none" (loopback only) or "egress" (public addresses, through the worker\'s HTTP proxy)' }).optional()
    .describe('"none" (default): loopback only. "egress": the job may reach public addresses over HTTP and HTTPS through a proxy the worker serves inside the job\'s own network namespace, at 127.0.0.1:3128 (HTTP_PROXY, HTTPS_PROXY and NO_PROXY are set; curl, wget, pip, npm, git, apt and most HTTP libraries use them). Loopback, private, link-local (cloud metadata) and other special-purpose addresses are refused, checked on the address actually connected to after DNS, as are ports outside the server\'s SBX_JOB_EGRESS_PORTS (80 and 443 by default). There is no other route out: no DNS, no raw TCP or UDP. The job document\'s `egress` counts connections, bytes and refusals.'),
  egressHosts: z.array(EgressHostPattern).min(1, 'must name at least one host (omit it to allow every public host)').max(MAX_EGRESS_HOSTS, `at most ${MAX_EGRESS_HOSTS} hosts`).optional()
    .describe('With network "egress": the only hosts the job may reach, by name as the job asks for them: "pypi.org" (that host), "*.pythonhosted.org" (its subdomains). Other names and IP literals are refused. Each still has to resolve to a public address.'),
  labels: z
    .record(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$/, 'keys must be 1-63 of A-Z a-z 0-9 . _ / -'), wellFormed(z.string().max(256, 'values must be at most 256 characters')))
    .refine((l) => Object.keys(l).length <= 32, 'at most 32 labels')
    .optional(),
  idempotencyKey: wellFormed(z.string().min(1).max(128)).optional(),
  /**
   * Credentials for the image's registry, for this job only. Kept with the job record while it
   * exists, never returned; an image pulled with them is not handed from the cache to jobs without them.
   */
  registryAuth: z.strictObject({ username: z.string().min(1).max(256), password: z.string().min(1).max(4096) }).optional(),
  /**
   * Webhook: POSTed the finished job document (signed, retried; core/src/webhooks) when the job
   * reaches any final status. https, or http only to a host the server's SBX_EGRESS_ALLOW names.
   */
  callbackUrl: z
    .string()
    .max(2048, 'must be at most 2048 characters')
    .refine((s) => URL.canParse(s), 'must be an absolute URL')
    .refine((s) => /^https?:\/\//i.test(s), 'must be an https:// URL (http:// only for hosts the server allow-lists)')
    .refine((s) => !URL.canParse(s) || (new URL(s).username === '' && new URL(s).password === ''), 'must not contain credentials')
    .optional()
    .describe('Webhook: receives a POST of the finished job document when the job reaches any final status, signed with the tenant\'s webhook secret (header sbx-signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">), retried with exponential backoff on timeouts, connection errors, 408, 429 and 5xx, never on other 4xx or 3xx (redirects are not followed). https, or http only for hosts the server\'s egress allow-list names; sent through the same egress policy as registry pulls. Each attempt is recorded in the job document\'s `callback`.'),
});
export type JobRequest = z.infer<typeof JobRequest>;

/**
 * What the worker receives: the request with defaults resolved and the image reference canonical.
 * Strict at every level: a worker checks the stored spec against it before running the job
 * (storedSpecProblems), so a field or value only a newer API knows is refused, never dropped. A
 * field added later is optional (an older API's specs lack it); one no longer used stays here,
 * optional, while older API copies may still write it.
 */
export const JobSpec = z.strictObject({
  id: z.string(),
  tenant: z.string(),
  image: z.string(),
  /** JobRequest.pull; absent = "missing". */
  pull: z.enum(['missing', 'always']).optional(),
  command: z.array(z.string()).nullable(),
  entrypoint: z.array(z.string()).nullable(),
  env: z.record(z.string(), z.string()),
  workdir: z.string().nullable(),
  user: z.string().nullable(),
  stdin: z.string().nullable(),
  /** Interactive: stdin streamed (openStdin), a pseudo-terminal (tty). Absent = false. */
  openStdin: z.boolean().optional(),
  tty: z.boolean().optional(),
  ttySize: TtySize.nullable().optional(),
  /** Output-file patterns (JobRequest.outputFiles); absent = none. */
  outputFiles: z.array(z.string()).optional(),
  /** Input files (JobRequest.files) with the mode resolved; absent = none. */
  files: z.array(z.strictObject({ path: z.string(), content: z.string(), encoding: z.enum(['utf8', 'base64']), mode: z.number().int() })).optional(),
  limits: z.strictObject(Limits.shape),
  /** JobRequest.stopSignal; absent = SIGTERM. */
  stopSignal: z.enum(STOP_SIGNALS).optional(),
  network: z.enum(['none', 'egress']),
  egressHosts: z.array(z.string()).optional(),
  labels: z.record(z.string(), z.string()),
  registryAuth: z.strictObject({ username: z.string(), password: z.string() }).nullable(),
  /** The webhook (JobRequest.callbackUrl); absent or null = none. */
  callbackUrl: z.string().nullable().optional(),
  /** The tenant's quota storedBytesPerHour when it was submitted; absent or null = none. */
  tenantStoredBytesPerHour: z.number().nullable().optional(),
  createdAt: z.string(),
});
export type JobSpec = z.infer<typeof JobSpec>;

/**
 * What keeps a stored spec from being run as it is by this version: `unknown`, the fields and
 * values it does not know (written by a newer API: run without them, what they ask for would be
 * silently dropped), and `invalid`, anything else that does not match JobSpec. Both empty: run it.
 */
export function storedSpecProblems(spec: unknown): { unknown: string[]; invalid: string[] } {
  const parsed = JobSpec.safeParse(spec);
  const issues = parsed.success ? [] : parsed.error.issues;
  return {
    unknown: unknownIn(issues, spec),
    invalid: issues.filter((i) => !isUnknownIssue(i)).map((i) => `${i.path.map(String).join('.') || 'the spec'}: ${i.message}`),
  };
}

export const JobError = z.object({ code: z.string(), message: z.string() });
export type JobError = z.infer<typeof JobError>;

export const Usage = z.object({
  cpuMs: z.number(),
  /** How long the job's limits.cpus held it back (cgroup cpu.stat throttled time; absent on jobs recorded before it was). */
  cpuThrottledMs: z.number().optional()
    .describe('Milliseconds the job was held back by its limits.cpus (the kernel\'s CFS quota, cgroup cpu.stat): a job slower than expected with a large value needs more cpus.'),
  memoryPeakBytes: z.number(),
  wallMs: z.number(),
  /** The kernel's OOM killer killed a process of the job (memory limit). */
  oomKilled: z.boolean(),
  /** A fork failed at the pids limit. */
  pidsLimitHit: z.boolean(),
});
export type Usage = z.infer<typeof Usage>;

export const LiveUsage = z.object({
  at: Rfc3339().describe('When the worker read it.'),
  cpuMs: z.number(),
  memoryBytes: z.number().describe('Memory charged to the job then, the pages of the files it wrote included (what limits.memoryBytes bounds).'),
  memoryPeakBytes: z.number(),
  pids: z.number().int().describe('Its processes then.'),
});
export type LiveUsage = z.infer<typeof LiveUsage>;

export const Timings = z.object({
  createdAt: Rfc3339(),
  startedAt: Rfc3339().nullable(),
  finishedAt: Rfc3339().nullable(),
  queueMs: z.number().nullable(),
  pullMs: z.number().nullable(),
  startMs: z.number().nullable(),
  /** From startedAt to the job's first byte of output (absent: it wrote none, or it has not ended). */
  firstOutputMs: z.number().optional()
    .describe('Milliseconds from startedAt to when the worker read the first byte the job wrote to stdout or stderr (or its terminal), on the same clock as startedAt and finishedAt (at most their difference; usage.wallMs, the launcher\'s own clock from the exec to the exit, can be less); absent when it wrote nothing. Set when the job ends.'),
});
export type Timings = z.infer<typeof Timings>;

/** One POST of the webhook: when, how long, and the answer's status or why there was none. */
export const CallbackAttempt = z.object({
  at: Rfc3339(),
  ms: z.number(),
  /** The receiver's HTTP status; null when there was no answer (see error). */
  status: z.number().int().nullable(),
  /** Why there was no (2xx) answer: egress_refused, timeout, connection_failed, http_error, … */
  error: z.object({ code: z.string(), message: z.string() }).nullable(),
});
export type CallbackAttempt = z.infer<typeof CallbackAttempt>;

/** The webhook of a job (only when it has a callbackUrl): delivered yet, each attempt, the next one planned. */
export const CallbackState = z.object({
  url: z.string(),
  delivered: z.boolean(),
  attempts: z.array(CallbackAttempt),
  /** When the next attempt is due; null when none is planned (delivered, given up, or not finished yet). */
  nextAttemptAt: Rfc3339().nullable(),
});
export type CallbackState = z.infer<typeof CallbackState>;

/** What a network "egress" job did through its proxy (worker/src/egress). */
export const EgressUsage = z.object({
  connections: z.number().int().describe('Connections the proxy made for the job (CONNECT tunnels and plain-HTTP requests).'),
  refused: z.number().int().describe('Requests the proxy refused (destination not allowed, too many at once, not a proxy request).'),
  bytesSent: z.number().int().describe('Bytes the job sent to the destinations: everything through a CONNECT tunnel, the bodies of plain-HTTP requests (not their headers).'),
  bytesReceived: z.number().int().describe('Bytes the destinations sent back: everything through a CONNECT tunnel, the bodies of plain-HTTP answers (not their headers).'),
  refusals: z.array(z.object({ host: z.string(), port: z.number().int().nullable(), reason: z.string() }))
    .describe('The first refusals (at most 20): what the job asked for and why it was refused.'),
  refusalsLimitReached: z.boolean().optional().describe('True when the proxy refused more than the server\'s SBX_JOB_EGRESS_REFUSALS requests of the job: it stopped listening, its connections were cut, and later ones were refused by the job\'s own network namespace (connection refused).'),
  limitReached: z.boolean().optional().describe('True when the job moved more than the server\'s SBX_JOB_EGRESS_BYTES through its proxy: its connections were cut there and new ones refused.'),
});
export type EgressUsage = z.infer<typeof EgressUsage>;

/** An earlier attempt of a job: the worker that took it and was lost before the command started. */
export const JobAttempt = z.object({
  attempt: z.number().int().min(1),
  worker: z.string(),
  /** The status the job had when its worker was found lost (`pulling`: image pull or waiting to start). */
  status: JobStatus,
  endedAt: Rfc3339(),
  error: JobError,
});
export type JobAttempt = z.infer<typeof JobAttempt>;

export const JobOutput = z.object({ stdout: z.string(), stderr: z.string() });
export type JobOutput = z.infer<typeof JobOutput>;

/** Where a job was placed: whether its host already held the image, and the hand-off between hosts (at most one). */
export const JobPlacement = z.object({
  /** The image was in the cache of the worker that ran it when that worker took the job. */
  imageCached: z.boolean(),
  /** 1 when another worker handed the job to this one (never more), else 0. */
  hops: z.number().int(),
  /** The worker that handed it on, and why: `image` (this one holds the image), `capacity` (it had no room). */
  handedFrom: z.object({ worker: z.string(), reason: z.enum(['image', 'capacity']) }).nullable(),
  /** The API put the job straight on this worker's queue when it was submitted: this worker held its image and had room. */
  placedAtSubmit: z.boolean().optional(),
});
export type JobPlacement = z.infer<typeof JobPlacement>;

/** A signed execution receipt (core/src/receipts/job-receipt.ts). */
export const JobReceipt = z.object({
  payload: z.string().describe('The signed JSON text: job id, tenant, image and its digest, command, entrypoint, workdir, user, limits, status, exit code, signal, error, labels, worker, kernel, start and end, usage, for network "egress" jobs their egressHosts and proxy counts (`network`; absent: loopback only), the path, mode, size and SHA-256 of each input file and of each output file collected (`files`, `outputFiles`), for interactive jobs their mode and signal count, and the size and SHA-256 of the job\'s stdin and of everything it wrote to stdout and stderr (kept or not). The document\'s other fields (placement, most timings, ...) are not signed (nor are labels and error in receipts from before 2026-12-07).'),
  signature: z.string().describe('Ed25519 signature of the UTF-8 bytes of payload, base64'),
  algorithm: z.literal('ed25519'),
  keyId: z.string().describe('The signing key: GET /v1/receipt-keys'),
});
export type JobReceipt = z.infer<typeof JobReceipt>;

export const JobDocument = z.object({
  id: z.string(),
  status: JobStatus,
  image: z.string(),
  imageDigest: z.string().nullable(),
  command: z.array(z.string()).nullable(),
  entrypoint: z.array(z.string()).nullable(),
  exitCode: z.number().int().nullable(),
  signal: z.string().nullable(),
  error: JobError.nullable(),
  usage: Usage.nullable(),
  /** While running: the usage its worker read last (docker stats). */
  liveUsage: LiveUsage.optional()
    .describe('While the job runs: its usage as its worker last read it from the job\'s cgroup, every SBX_LIVE_USAGE_MS (2 s; absent during the first interval); `usage` has the final figures once it ends.'),
  timings: Timings,
  worker: z.string().nullable(),
  outputTruncated: z.boolean(),
  /** Bytes of each stream the cap left out (limits.outputTailBytes: between the start and the end kept). */
  outputDroppedBytes: z.object({ stdout: z.number().int(), stderr: z.number().int() }).optional()
    .describe('When limits.outputBytes cut the output: how many bytes of each stream were left out. With limits.outputTailBytes they are the bytes between the start kept (outputBytes - outputTailBytes) and the end kept; without, the bytes after the first outputBytes. Absent when the tenant\'s storage budget for the hour cut it.'),
  limits: Limits,
  network: z.enum(['none', 'egress']).optional().describe('As requested (absent on jobs from before this field: "none").'),
  egressHosts: z.array(z.string()).optional().describe('As requested, with network "egress".'),
  labels: z.record(z.string(), z.string()),
  output: JobOutput.optional(),
  /** What the job's outputFiles patterns collected (present on jobs that asked, once they ended). */
  outputFiles: z.array(OutputFileInfo).optional()
    .describe('The files the request\'s outputFiles collected, in pattern order, once the command ended or a limit ended the job (absent after a cancel without graceMs, when the collection did not finish within its 2 s, or when none were asked for); their bytes: GET /v1/jobs/{id}/files.'),
  outputFilesDropped: z.boolean().optional()
    .describe('True when the tenant\'s storage budget for the hour was used up: the files are listed but their bytes were not kept.'),
  /** Network "egress" jobs, once ended: what went through the proxy. */
  egress: EgressUsage.optional()
    .describe('Jobs with network "egress", once they ended: the connections, bytes and refusals of their proxy.'),
  /** The webhook's delivery (present only when the job has a callbackUrl). */
  callback: CallbackState.optional(),
  /** While queued: 1 = the next job a worker takes (computed on read); null otherwise. */
  queuePosition: z.number().int().nullable().optional(),
  /** Interactive jobs only: how to attach (GET /v1/jobs/{id}/attach). */
  interactive: z.object({ openStdin: z.boolean(), tty: z.boolean() }).optional(),
  /** How a worker came to run it (worker/src/placement), set when a worker takes it. */
  placement: JobPlacement.optional(),
  /** How many times a worker took the job; absent = 1. Above 1 only after a worker was lost before the command started. */
  attempts: z.number().int().min(1).optional()
    .describe('How many times a worker took this job (absent = 1). A job whose worker was lost before its command started is queued again, at most SBX_LOST_JOB_REQUEUES times; one whose command had started ends error/worker_lost and is never run twice.'),
  /** Present on jobs that ran when the server signs receipts (SBX_RECEIPT_KEY_FILE). */
  receipt: JobReceipt.optional()
    .describe('A signed execution receipt, on jobs whose command ran, when the server has a receipt key (SBX_RECEIPT_KEY_FILE): verify `signature` over `payload` with the public key GET /v1/receipt-keys lists under `keyId`.'),
  /** Earlier attempts, oldest first (present only when attempts > 1). */
  history: z.array(JobAttempt).optional()
    .describe('Earlier attempts of the job, oldest first: which worker lost it, in which status, when, and why.'),
});
export type JobDocument = z.infer<typeof JobDocument>;

/** The first document of a job, written when it is accepted. */
export function newJobDocument(spec: JobSpec): JobDocument {
  return {
    id: spec.id,
    status: 'queued',
    image: spec.image,
    imageDigest: null,
    command: spec.command,
    entrypoint: spec.entrypoint,
    exitCode: null,
    signal: null,
    error: null,
    usage: null,
    timings: { createdAt: spec.createdAt, startedAt: null, finishedAt: null, queueMs: null, pullMs: null, startMs: null },
    worker: null,
    outputTruncated: false,
    limits: spec.limits,
    network: spec.network,
    ...(spec.egressHosts ? { egressHosts: spec.egressHosts } : {}),
    labels: spec.labels,
    ...(spec.openStdin || spec.tty ? { interactive: { openStdin: !!spec.openStdin, tty: !!spec.tty } } : {}),
    ...(spec.callbackUrl ? { callback: { url: spec.callbackUrl, delivered: false, attempts: [], nextAttemptAt: null } } : {}),
  };
}

/** Events of a job's stream, as sent over SSE (`event:` = type). */
export type JobEventType = 'status' | 'stdout' | 'stderr' | 'exit';
/** SSE-only events, not in the job's stream (no `id:`): `queue` = {position} while queued. */
export type JobLiveEventType = 'queue';
