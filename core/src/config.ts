/**
 * Configuration comes from environment variables only, validated once at start by zod.
 * Every bad value produces one line naming the variable and what to use instead; the process then
 * refuses to start (ConfigError), instead of running with a half-understood setting.
 */
import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import os from 'node:os';
import { z } from 'zod';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

const int = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z.coerce.number({ error: 'must be a number' }).int('must be a whole number').min(min, `must be >= ${min}`).max(max, `must be <= ${max}`);
const num = (min: number, max: number) =>
  z.coerce.number({ error: 'must be a number' }).min(min, `must be >= ${min}`).max(max, `must be <= ${max}`);
const bool = z.enum(['true', 'false', '1', '0', 'yes', 'no'], { error: 'must be true or false' }).transform((v) => v === 'true' || v === '1' || v === 'yes');
const csv = z.string().transform((s) => s.split(',').map((x) => x.trim()).filter(Boolean));

const redisUrl = z.string().regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL');

/** All jobs of a worker together may use the RAM less max(512 MiB, 10 %). */
export function defaultJobsMemoryBytes(total = os.totalmem()): number {
  return Math.max(64 * MiB, total - Math.max(512 * MiB, Math.floor(total / 10)));
}

/** What the kernel allows on this host: min(pid_max, threads-max), or null where /proc cannot say. */
function hostPidCeiling(): number | null {
  const read = (f: string) => {
    try {
      const n = Number(readFileSync(f, 'utf8').trim());
      return Number.isSafeInteger(n) && n > 0 ? n : null;
    } catch {
      return null;
    }
  };
  const values = [read('/proc/sys/kernel/pid_max'), read('/proc/sys/kernel/threads-max')].filter((n): n is number => n !== null);
  return values.length ? Math.min(...values) : null;
}

/**
 * All jobs of a worker together may have half of the host's processes (pid_max / threads-max), so
 * that jobs together can never exhaust the pids the host, the worker and Redis need (P29).
 */
export function defaultJobsPids(ceiling = hostPidCeiling()): number {
  return Math.max(16, Math.floor((ceiling ?? 32_768) / 2));
}

export const DEFAULT_REGISTRY_CERTS_DIR = '/etc/sbx/certs.d';

/** What is wrong with `path` as a directory to read, or null. */
function readableDirProblem(path: string): string | null {
  if (!path.startsWith('/')) return 'must be an absolute path';
  try {
    if (!statSync(path).isDirectory()) return 'is not a directory';
    accessSync(path, constants.R_OK | constants.X_OK);
    return null;
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === 'ENOENT') return 'does not exist; create it or leave the variable unset';
    if (code === 'EACCES') return 'is not readable by this process';
    return `cannot be read (${code ?? (e as Error).message})`;
  }
}

/** An existing, readable directory (a default, applied without this check, may be missing). */
const readableDir = z.string().superRefine((path, ctx) => {
  const problem = readableDirProblem(path);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

export const envSchema = z.object({
  SBX_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], { error: 'must be one of fatal, error, warn, info, debug, trace, silent' }).default('info'),

  // Redis: a URL for standalone; sentinels or cluster nodes (host:port,host:port) select those modes.
  SBX_REDIS_URL: redisUrl.default('redis://127.0.0.1:6379'),
  SBX_REDIS_SENTINELS: csv.optional(),
  SBX_REDIS_SENTINEL_NAME: z.string().min(1).default('mymaster'),
  SBX_REDIS_CLUSTER_NODES: csv.optional(),
  SBX_REDIS_PREFIX: z.string().regex(/^[a-z0-9_-]{1,32}$/, 'must be 1-32 of a-z 0-9 _ -').default('sbx'),

  // API
  SBX_API_HOST: z.string().min(1).default('127.0.0.1'),
  SBX_API_PORT: int(0, 65535).default(8080),
  SBX_API_KEYS: z.string().default('').transform((s, ctx) => parseApiKeys(s, ctx)),
  SBX_WAIT_CAP_MS: int(0, 600_000).default(60_000),
  SBX_BODY_LIMIT_BYTES: int(1024, 64 * MiB).default(1 * MiB),

  // Job limits: defaults applied when a request omits a field, maxima that reject larger values.
  SBX_DEFAULT_MEMORY_BYTES: int(4 * MiB).default(256 * MiB),
  SBX_MAX_MEMORY_BYTES: int(4 * MiB).default(4 * GiB),
  SBX_DEFAULT_CPUS: num(0.01, 1024).default(1),
  SBX_MAX_CPUS: num(0.01, 1024).default(Math.max(1, os.availableParallelism())),
  SBX_DEFAULT_PIDS: int(1).default(128),
  SBX_MAX_PIDS: int(1).default(4096),
  SBX_DEFAULT_TIMEOUT_MS: int(1).default(30_000),
  SBX_MAX_TIMEOUT_MS: int(1).default(600_000),
  SBX_DEFAULT_OUTPUT_BYTES: int(0).default(1 * MiB),
  SBX_MAX_OUTPUT_BYTES: int(0).default(16 * MiB),
  SBX_DEFAULT_DISK_BYTES: int(1 * MiB).default(64 * MiB),
  SBX_MAX_DISK_BYTES: int(1 * MiB).default(4 * GiB),
  SBX_DEFAULT_OPEN_FILES: int(16, 1_048_576).default(1024),
  SBX_MAX_OPEN_FILES: int(16, 1_048_576).default(65_536),
  SBX_MAX_CPU_TIME_MS: int(1).default(3_600_000),
  SBX_JOB_TTL_SECONDS: int(60, 30 * 86400).default(86_400),

  // Worker
  SBX_WORKER_ID: z.string().regex(/^[A-Za-z0-9._:/-]{1,100}$/, 'must be 1-100 of A-Z a-z 0-9 . _ : / -').optional(),
  SBX_WORKER_SLOTS: int(1, 1024).optional(),
  SBX_STATE_DIR: z.string().startsWith('/', 'must be an absolute path').default('/var/lib/sbx'),
  SBX_CGROUP_PARENT: z.string().regex(/^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/, 'must be a relative cgroup path like sbx or system.slice/sbx').default('sbx'),
  SBX_INSECURE_REGISTRIES: csv.default([]),
  // Docker-style certs.d: <dir>/<host[:port]>/*.crt = extra CAs, <name>.cert + <name>.key = client
  // certificate; a host with an entry is reached over https (read by worker/src/images/registry-certs.ts).
  SBX_REGISTRY_CERTS_DIR: readableDir.default(DEFAULT_REGISTRY_CERTS_DIR),
  // Registry mirrors: registry=mirror[;mirror…][,registry=…], e.g. docker.io=10.0.0.5:5000
  SBX_REGISTRY_MIRRORS: z.string().default('').transform((s, ctx) => parseMirrors(s, ctx)),
  // Image cache disk budget (LRU, never evicting what a running job uses); unset = unbounded.
  // Only for one worker process per SBX_STATE_DIR.
  SBX_IMAGE_CACHE_BYTES: int(16 * MiB).optional(),
  // Registry credentials in Docker's config.json format (auths → base64 user:password).
  SBX_DOCKER_CONFIG: z.string().startsWith('/', 'must be an absolute path').optional(),
  // Registry credentials per tenant: <dir>/<tenant>.json in config.json format, re-read when changed.
  SBX_TENANT_DOCKER_CONFIG_DIR: readableDir.optional(),
  // Each job slot s runs as host uids SBX_UID_BASE + s*65536 … + 65535 (container root is not host root).
  SBX_UID_BASE: int(1, 4_000_000_000).default(100_000),
  SBX_WORKER_METRICS_PORT: int(0, 65535).optional(),
  // P29: aggregate limits on all jobs of one worker together (its cgroup parent). Memory defaults to
  // the host's RAM less a reserve for the worker, Redis and the kernel; pids to half of what the
  // host's kernel allows (defaultJobsPids).
  SBX_JOBS_MEMORY_BYTES: int(64 * MiB).default(defaultJobsMemoryBytes()),
  SBX_JOBS_PIDS: int(16, 4_194_304).default(defaultJobsPids()),
  // P30: 'deny' makes flock and fcntl record locks fail in jobs (closes the lock channel between
  // concurrent jobs through shared read-only inodes; breaks sqlite, git, package managers).
  SBX_JOB_FILE_LOCKS: z.enum(['allow', 'deny'], { error: 'must be allow or deny' }).default('allow'),
  // P30: each job gets its own core-scheduling cookie (no SMT sibling shared with another job) where
  // the kernel has it (CONFIG_SCHED_CORE and SMT).
  SBX_CORE_SCHEDULING: bool.default(true),
  SBX_HEARTBEAT_MS: int(200, 60_000).default(2_000),
});

export type Env = z.infer<typeof envSchema>;

function parseMirrors(raw: string, ctx: z.RefinementCtx): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  const host = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$/;
  for (const entry of raw.split(',').map((e) => e.trim()).filter(Boolean)) {
    const [registry, list] = entry.split('=', 2);
    const mirrors = (list ?? '').split(';').map((m) => m.trim()).filter(Boolean);
    if (!registry || !host.test(registry) || mirrors.length === 0 || !mirrors.every((m) => host.test(m))) {
      ctx.addIssue({ code: 'custom', message: 'each entry must be registry=mirror[;mirror…] with host[:port] names, e.g. docker.io=10.0.0.5:5000' });
      return {};
    }
    out[registry] = mirrors;
  }
  return out;
}

export interface ApiKey {
  key: string;
  tenant: string;
}

function parseApiKeys(raw: string, ctx: z.RefinementCtx): ApiKey[] {
  const keys: ApiKey[] = [];
  for (const part of raw.split(',').map((p) => p.trim()).filter(Boolean)) {
    const m = /^([A-Za-z0-9._~+/=-]{16,}):([a-z0-9][a-z0-9_-]{0,62})$/.exec(part);
    if (!m) {
      ctx.addIssue({ code: 'custom', message: 'each entry must be <key>:<tenant>, key >= 16 chars of [A-Za-z0-9._~+/=-], tenant of [a-z0-9_-]' });
      return [];
    }
    keys.push({ key: m[1]!, tenant: m[2]! });
  }
  return keys;
}

type LimitValues = { memoryBytes: number; cpus: number; pids: number; timeoutMs: number; outputBytes: number; diskBytes: number; openFiles: number };

export interface LimitsPolicy {
  /** cpuTimeMs has no default: without it only the wall-time limit applies. */
  defaults: LimitValues & { cpuTimeMs: null };
  maxima: LimitValues & { cpuTimeMs: number };
}

export interface Config {
  env: Env;
  limits: LimitsPolicy;
}

export class ConfigError extends Error {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/** Parse and validate the environment; throws ConfigError listing every bad variable. */
export function loadConfig(source: NodeJS.ProcessEnv = process.env): Config {
  const picked: Record<string, string> = {};
  for (const key of Object.keys(envSchema.shape)) {
    const v = source[key];
    if (v !== undefined && v !== '') picked[key] = v;
  }
  const parsed = envSchema.safeParse(picked);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((i) => `${String(i.path[0] ?? '?')}=${JSON.stringify(picked[String(i.path[0])] ?? '')}: ${i.message}`));
  }
  const env = parsed.data;
  const limits: LimitsPolicy = {
    defaults: {
      memoryBytes: env.SBX_DEFAULT_MEMORY_BYTES, cpus: env.SBX_DEFAULT_CPUS, pids: env.SBX_DEFAULT_PIDS,
      timeoutMs: env.SBX_DEFAULT_TIMEOUT_MS, outputBytes: env.SBX_DEFAULT_OUTPUT_BYTES, diskBytes: env.SBX_DEFAULT_DISK_BYTES,
      openFiles: env.SBX_DEFAULT_OPEN_FILES, cpuTimeMs: null,
    },
    maxima: {
      memoryBytes: env.SBX_MAX_MEMORY_BYTES, cpus: env.SBX_MAX_CPUS, pids: env.SBX_MAX_PIDS,
      timeoutMs: env.SBX_MAX_TIMEOUT_MS, outputBytes: env.SBX_MAX_OUTPUT_BYTES, diskBytes: env.SBX_MAX_DISK_BYTES,
      openFiles: env.SBX_MAX_OPEN_FILES, cpuTimeMs: env.SBX_MAX_CPU_TIME_MS,
    },
  };
  const problems: string[] = [];
  for (const k of Object.keys(limits.defaults) as Array<keyof LimitsPolicy['defaults']>) {
    const d = limits.defaults[k];
    if (d !== null && d > limits.maxima[k]) problems.push(`default ${k} (${limits.defaults[k]}) is above its maximum (${limits.maxima[k]}); lower the SBX_DEFAULT_* or raise the SBX_MAX_* variable`);
  }
  if (problems.length) throw new ConfigError(problems);
  return { env, limits };
}
