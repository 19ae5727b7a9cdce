/**
 * Configuration comes from environment variables only, validated once at start by zod.
 * Every bad value produces one line naming the variable and what to use instead; the process then
 * refuses to start (ConfigError), instead of running with a half-understood setting.
 */
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import os from 'node:os';
import { z } from 'zod';
import { EGRESS_ALLOW_SYNTAX, normalizeHostName, parseEgressAllow } from './egress/egress-allow.ts';
import { parseIp } from './egress/ip-address.ts';
import { parsePortSet } from './egress/port-set.ts';
import { registryName } from './image-ref.ts';
import { parseSecretsKey } from './secrets/secret-box.ts';
import { parseReceiptPublicKeys } from './receipts/public-keys.ts';
import { IDLE_TIMEOUT_BOUND, LAUNCH_BOUNDS as B, OUTPUT_BYTES_BOUND, STOP_GRACE_BOUND, defaultMaxOpenFiles, type LimitBound } from './launch-bounds.ts';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/** SBX_POOL_MIN_IDLE_PERCENT's default (the launcher benches launch as a default worker does). */
export const DEFAULT_POOL_MIN_IDLE_PERCENT = 10;

/**
 * A number as an operator writes one: decimal digits, perhaps a sign and a fraction. Not what
 * Number() also takes: hex (0x10), exponents (1e3), nor a blank (which it reads as 0, "no limit").
 */
const decimal = (v: unknown) => (typeof v === 'string' && /^\s*[+-]?\d+(\.\d+)?\s*$/.test(v) ? Number(v) : v);
const NOT_A_NUMBER = 'must be a number in decimal digits (like 1500)';
const int = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z.preprocess(decimal, z.number({ error: NOT_A_NUMBER }).int('must be a whole number').min(min, `must be >= ${min}`).max(max, `must be <= ${max}`));
const num = (min: number, max: number) =>
  z.preprocess(decimal, z.number({ error: NOT_A_NUMBER }).min(min, `must be >= ${min}`).max(max, `must be <= ${max}`));
/** A job limit setting: the launcher's range for it (whole numbers where the launcher wants them). */
const bounded = (b: LimitBound) => (b.integer ? int(b.min, b.max) : num(b.min, b.max));
const bool = z.enum(['true', 'false', '1', '0', 'yes', 'no'], { error: 'must be true or false' }).transform((v) => v === 'true' || v === '1' || v === 'yes');
const csv = z.string().transform((s) => s.split(',').map((x) => x.trim()).filter(Boolean));

const egressAllow = z.string().default('').transform((s, ctx) => {
  const parsed = parseEgressAllow(s);
  if ('entries' in parsed) return parsed.entries;
  ctx.addIssue({ code: 'custom', message: `entry ${JSON.stringify(parsed.bad)} is not ${EGRESS_ALLOW_SYNTAX}` });
  return [];
});

/** What is wrong with `text` as a Redis URL (redis[s]://[user:password@]host[:port][/db]), or null. Never quotes it (it may hold a password). */
function redisUrlProblem(text: string): string | null {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return 'must be a URL like redis://host:6379 or rediss://user:password@host:6380/0';
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') return 'must be a redis:// or rediss:// URL';
  if (!url.hostname) return 'names no host';
  if (!/^\/?(\d{1,9})?$/.test(url.pathname)) return 'its path must be a database number (like /0), or nothing';
  return null;
}

const redisUrl = z.string().superRefine((text, ctx) => {
  const problem = redisUrlProblem(text);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

/** host:port,host:port (Sentinels, cluster nodes): each a host name or address and a port 1-65535. */
const hostPorts = z.string().transform((s, ctx) => {
  const list = s.split(',').map((x) => x.trim()).filter(Boolean);
  for (const entry of list) {
    const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(entry);
    if (!m || Number(m[2]) < 1 || Number(m[2]) > 65_535) {
      ctx.addIssue({ code: 'custom', message: `entry ${JSON.stringify(entry)} is not host:port (a host name or address, [v6 address], and a port 1-65535)` });
      return [];
    }
  }
  if (!list.length) ctx.addIssue({ code: 'custom', message: 'names no host:port' });
  return list;
});

/** The database number an SBX_REDIS_URL names (its path), 0 when it names none. */
export function redisDatabaseOf(redisUrl: string): number {
  const path = new URL(redisUrl).pathname;
  return path.length > 1 ? Number(path.slice(1)) : 0;
}

type RedisModeSettings = Pick<Env, 'SBX_REDIS_URL' | 'SBX_REDIS_SENTINELS' | 'SBX_REDIS_CLUSTER_NODES' | 'SBX_REDIS_SENTINEL_USERNAME' | 'SBX_REDIS_SENTINEL_PASSWORD' | 'SBX_REDIS_SENTINEL_TLS'>;

/** Settings that each parse but do not fit together: a mode chosen twice, a mode's settings without it, a password sent in the clear. */
function redisModeProblems(env: RedisModeSettings): string[] {
  const problems: string[] = [];
  if (env.SBX_REDIS_SENTINELS && env.SBX_REDIS_CLUSTER_NODES) problems.push('SBX_REDIS_SENTINELS and SBX_REDIS_CLUSTER_NODES are both set: Redis is either behind Sentinels or a cluster; set one');
  const sentinelOnly = (['SBX_REDIS_SENTINEL_USERNAME', 'SBX_REDIS_SENTINEL_PASSWORD', 'SBX_REDIS_SENTINEL_TLS'] as const).filter((k) => env[k] !== undefined);
  if (sentinelOnly.length && !env.SBX_REDIS_SENTINELS) problems.push(`${sentinelOnly.join(', ')} set without SBX_REDIS_SENTINELS: they are how the Sentinels are reached; set SBX_REDIS_SENTINELS or unset them`);
  if (env.SBX_REDIS_SENTINEL_USERNAME && !env.SBX_REDIS_SENTINEL_PASSWORD) problems.push('SBX_REDIS_SENTINEL_USERNAME is set without SBX_REDIS_SENTINEL_PASSWORD: an ACL user signs in with both');
  // rediss:// asks that nothing sbx sends Redis travel in the clear (SECURITY.md P69); the Sentinels'
  // password would, unless they are reached over TLS or the deployment says plain TCP on purpose.
  if (env.SBX_REDIS_SENTINELS && env.SBX_REDIS_SENTINEL_PASSWORD && env.SBX_REDIS_SENTINEL_TLS === undefined && env.SBX_REDIS_URL.startsWith('rediss:')) {
    problems.push('SBX_REDIS_SENTINEL_PASSWORD would go to the Sentinels in plain TCP while SBX_REDIS_URL asks for TLS (rediss://): set SBX_REDIS_SENTINEL_TLS=true (the Sentinels\' tls-port), or =false to send it in the clear on purpose');
  }
  const db = redisDatabaseOf(env.SBX_REDIS_URL);
  if (env.SBX_REDIS_CLUSTER_NODES && db !== 0) problems.push(`SBX_REDIS_URL names database ${db}, but a Redis Cluster has database 0 only: remove the URL's path (SBX_REDIS_PREFIX keeps deployments apart)`);
  return problems;
}

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
  SBX_REDIS_SENTINELS: hostPorts.optional(),
  SBX_REDIS_SENTINEL_NAME: z.string().min(1).default('mymaster'),
  // The Sentinels' own credentials (their `requirepass` / ACL user: not the master's, which the URL
  // carries) and whether they are reached over TLS (their `tls-port`). Unset TLS: plain TCP.
  SBX_REDIS_SENTINEL_USERNAME: z.string().min(1).optional(),
  SBX_REDIS_SENTINEL_PASSWORD: z.string().min(1).optional(),
  SBX_REDIS_SENTINEL_TLS: bool.optional(),
  SBX_REDIS_CLUSTER_NODES: hostPorts.optional(),
  SBX_REDIS_PREFIX: z.string().regex(/^[a-z0-9_-]{1,32}$/, 'must be 1-32 of a-z 0-9 _ -').default('sbx'),

  // API
  SBX_API_HOST: z.string().min(1).default('127.0.0.1'),
  SBX_API_PORT: int(0, 65535).default(8080),
  // Slow clients (P46): a request's headers must be in within SBX_API_HEADERS_TIMEOUT_MS and the whole
  // request (its body too) within SBX_API_REQUEST_TIMEOUT_MS, else 408 and the connection closes.
  // Responses (event streams, ?wait=true) are not bounded by these.
  SBX_API_HEADERS_TIMEOUT_MS: int(1000, 600_000).default(10_000),
  SBX_API_REQUEST_TIMEOUT_MS: int(1000, 3_600_000).default(30_000),
  // API keys, each with a tenant and a role (tenant | admin; admin may use the fleet-wide operations:
  // pre-pull, evict, the worker list, /metrics), optionally a per-tenant quota: inline
  // `<key>:<tenant>[:<role>],…`, or a JSON array as in SBX_API_KEYS_FILE. None = anonymous mode.
  SBX_API_KEYS: z.string().default('').transform((s, ctx) => parseApiKeys(s, ctx)),
  // Without SBX_API_KEYS the API listens on loopback only; true lets it listen anywhere without keys.
  SBX_ALLOW_ANONYMOUS: bool.default(false),
  // Without SBX_API_KEYS the API answers only requests whose Host names this machine (127.0.0.1,
  // localhost, [::1], *.localhost), so a web page cannot reach it by DNS rebinding; these names
  // (host names, any port) are answered too, '*' answers any (api/src/middleware/loopback-host.ts).
  SBX_API_ALLOWED_HOSTS: z.string().default('').transform((s, ctx) => {
    const names = s.split(',').map((n) => n.trim().toLowerCase()).filter(Boolean);
    const bad = names.find((n) => n !== '*' && !/^(?=.{1,253}$)[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*\.?$/.test(n));
    if (bad !== undefined) ctx.addIssue({ code: 'custom', message: `${JSON.stringify(bad)} is not a host name; give names such as sbx.internal,api.example.com, or * for any` });
    return names.map(normalizeHostName);
  }),
  // The same JSON array in a file (keys stay out of the environment), read at start; adds to SBX_API_KEYS:
  // [{"key":"…","tenant":"team-a","role":"tenant","quota":{"activeJobs":50,"submitsPerSecond":5,
  //   "submitBurst":20,"streams":50,"requests":200,"requestsPerSecond":500,"storedBytesPerHour":268435456,"limits":{"memoryBytes":1073741824,"timeoutMs":60000}}}]
  SBX_API_KEYS_FILE: z.string().startsWith('/', 'must be an absolute path').transform((p, ctx) => readApiKeysFile(p, ctx)).optional(),
  // Quota defaults for every key whose entry does not set its own (0 = no limit): jobs queued or
  // running at once per tenant, and submissions per second (token bucket, burst 2x the rate).
  SBX_TENANT_ACTIVE_JOBS: int(0, 10_000_000).default(1000),
  SBX_TENANT_SUBMITS_PER_SECOND: num(0, 1_000_000).default(100),
  // Event streams (SSE, POST ?stream=true) and attach sockets one tenant may hold open at once on one
  // API process (0 = no limit); one more is 429 rate_limited. Each costs the process a write per event.
  SBX_TENANT_STREAMS: int(0, 1_000_000).default(100),
  // Requests of any kind one tenant may have open at once on one API process, from authentication
  // until the answer is written or the connection closes (0 = no limit); one more is 429
  // rate_limited before anything is done. An answer its client does not read holds up to about
  // 1 MiB of the process's memory (P48), so this bounds what one tenant's unread answers can hold.
  SBX_TENANT_REQUESTS: int(0, 1_000_000).default(256),
  // Requests of any kind one tenant may make per second, across the API processes together (token
  // bucket, burst 2x the rate; 0 = no limit: api/src/tenant-request-rate.ts); one more is 429
  // rate_limited with the wait in Retry-After, before anything is read from Redis. Bounds what one
  // tenant's polling takes from the others.
  SBX_TENANT_REQUESTS_PER_SECOND: num(0, 1_000_000).default(1000),
  // Bytes one tenant's jobs may make Redis store per clock hour, job records and output (0 = no
  // limit); past it the rest of their output is dropped (outputTruncated) and their new jobs are 429
  // until the hour ends. Both live SBX_JOB_TTL_SECONDS, so this bounds what one tenant can make
  // Redis hold: about 24 of these at the default TTL.
  SBX_TENANT_STORED_BYTES_PER_HOUR: int(0, 2 ** 50).default(1024 * MiB),
  // AES-256-GCM key for secrets at rest in Redis (a job's registryAuth): 32 bytes as 64 hex digits
  // or base64; the API and every worker need the same one. Unset: requests with registryAuth get 400.
  SBX_SECRETS_KEY: z.string().superRefine((v, ctx) => {
    try {
      parseSecretsKey(v);
    } catch (e) {
      ctx.addIssue({ code: 'custom', message: (e as Error).message });
    }
  }).optional(),
  SBX_WAIT_CAP_MS: int(0, 600_000).default(60_000),
  // Webhooks (a job's callbackUrl, core/src/webhooks): the HMAC-SHA256 signing secret per tenant,
  // `<tenant>:<secret>[,…]` (`*` = every tenant without its own; a key entry's `webhookSecret` in
  // SBX_API_KEYS JSON / SBX_API_KEYS_FILE also sets its tenant's); the API (a callbackUrl needs one)
  // and every worker (they sign) need the same. One attempt's deadline; retries (timeouts, connection
  // errors, 5xx) wait SBX_WEBHOOK_BACKOFF_MS, doubling up to SBX_WEBHOOK_BACKOFF_MAX_MS, for at most
  // SBX_WEBHOOK_RETRY_MS after the first attempt; deliveries at once per worker.
  SBX_WEBHOOK_SECRETS: z.string().default('').transform((s, ctx) => parseWebhookSecrets(s, ctx)),
  // Signed execution receipts (core/src/receipts): an Ed25519 private key in PEM
  // (`openssl genpkey -algorithm ed25519 -out receipt.pem`). Workers sign each job that ran with it.
  // Unset: no receipts. The API lists at GET /v1/receipt-keys the public keys of
  // SBX_RECEIPT_PUBLIC_KEYS_FILE (current and retired; it needs no private key), and that of
  // SBX_RECEIPT_KEY_FILE if it is given one.
  SBX_RECEIPT_KEY_FILE: z.string().startsWith('/', 'must be an absolute path (of the key\'s file, not the key itself)').transform((p, ctx) => readReceiptKey(p, ctx)).optional(),
  SBX_RECEIPT_PUBLIC_KEYS_FILE: z.string().startsWith('/', 'must be an absolute path').transform((p, ctx) => readReceiptPublicKeys(p, ctx)).optional(),
  SBX_WEBHOOK_TIMEOUT_MS: int(100, 300_000).default(10_000),
  SBX_WEBHOOK_RETRY_MS: int(0, 7 * 86_400_000).default(3_600_000),
  SBX_WEBHOOK_BACKOFF_MS: int(10, 3_600_000).default(1_000),
  SBX_WEBHOOK_BACKOFF_MAX_MS: int(10, 86_400_000).default(300_000),
  SBX_WEBHOOK_CONCURRENCY: int(1, 1024).default(8),
  SBX_BODY_LIMIT_BYTES: int(1024, 64 * MiB).default(1 * MiB),

  // Job limits: defaults applied when a request omits a field, maxima that reject larger values.
  // Every one within the launcher's own range (core/src/launch-bounds.ts, mirroring native/src/spec.cc).
  SBX_DEFAULT_MEMORY_BYTES: bounded(B.memoryBytes).default(256 * MiB),
  SBX_MAX_MEMORY_BYTES: bounded(B.memoryBytes).default(4 * GiB),
  SBX_DEFAULT_CPUS: bounded(B.cpus).default(1),
  SBX_MAX_CPUS: bounded(B.cpus).default(Math.min(B.cpus.max, Math.max(1, os.availableParallelism()))),
  SBX_DEFAULT_PIDS: bounded(B.pids).default(128),
  SBX_MAX_PIDS: bounded(B.pids).default(4096),
  SBX_DEFAULT_TIMEOUT_MS: bounded(B.timeoutMs).default(30_000),
  SBX_MAX_TIMEOUT_MS: bounded(B.timeoutMs).default(600_000),
  SBX_DEFAULT_OUTPUT_BYTES: bounded(OUTPUT_BYTES_BOUND).default(1 * MiB),
  SBX_MAX_OUTPUT_BYTES: bounded(OUTPUT_BYTES_BOUND).default(16 * MiB),
  SBX_DEFAULT_DISK_BYTES: bounded(B.diskBytes).default(64 * MiB),
  SBX_MAX_DISK_BYTES: bounded(B.diskBytes).default(4 * GiB),
  SBX_DEFAULT_OPEN_FILES: bounded(B.openFiles).default(Math.min(1024, defaultMaxOpenFiles())),
  // The launcher refuses more than the worker's hard RLIMIT_NOFILE: the worker raises it to this at
  // start or refuses to start; the default is 65536 or the host's hard limit when that is lower.
  SBX_MAX_OPEN_FILES: bounded(B.openFiles).default(defaultMaxOpenFiles()),
  SBX_MAX_CPU_TIME_MS: bounded(B.cpuTimeMs).default(3_600_000),
  // Interactive jobs (openStdin/tty): ended once nothing is attached and nothing written for this long.
  SBX_DEFAULT_IDLE_TIMEOUT_MS: bounded(IDLE_TIMEOUT_BOUND).default(300_000),
  SBX_MAX_IDLE_TIMEOUT_MS: bounded(IDLE_TIMEOUT_BOUND).default(3_600_000),
  // How long a job may run on past a limit after its stop signal (limits.stopGraceMs): at most this.
  SBX_MAX_STOP_GRACE_MS: bounded(STOP_GRACE_BOUND).default(STOP_GRACE_BOUND.max),
  SBX_JOB_TTL_SECONDS: int(60, 30 * 86400).default(86_400),

  // Worker
  SBX_WORKER_ID: z.string().regex(/^[A-Za-z0-9._:/-]{1,100}$/, 'must be 1-100 of A-Z a-z 0-9 . _ : / -').optional(),
  SBX_WORKER_SLOTS: int(1, 1024).optional(),
  SBX_STATE_DIR: z.string().startsWith('/', 'must be an absolute path').default('/var/lib/sbx'),
  SBX_CGROUP_PARENT: z.string().regex(/^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/, 'must be a relative cgroup path like sbx or system.slice/sbx').refine((p) => !p.split('/').some((part) => part === '.' || part === '..'), 'must not have . or .. in it: name the group itself, like sbx or system.slice/sbx').default('sbx'),
  // Registries reached over plain http (host[:port], as image references name them; loopback ones always are).
  SBX_INSECURE_REGISTRIES: csv.default([]).transform((names, ctx) => names.map((name) => registryNameOrIssue(name, ctx))),
  // Docker-style certs.d: <dir>/<host[:port]>/*.crt = extra CAs, <name>.cert + <name>.key = client
  // certificate; a host with an entry is reached over https (read by worker/src/images/registry/registry-certs.ts).
  SBX_REGISTRY_CERTS_DIR: readableDir.default(DEFAULT_REGISTRY_CERTS_DIR),
  // Registry mirrors: registry=mirror[;mirror…][,registry=…], e.g. docker.io=10.0.0.5:5000
  SBX_REGISTRY_MIRRORS: z.string().default('').transform((s, ctx) => parseMirrors(s, ctx)),
  // Egress allow-list (core/src/egress): what registries, their redirects and token servers, mirrors
  // and webhooks may reach although it is not a public address. Loopback, private (RFC 1918,
  // fc00::/7, CGNAT 100.64/10), link-local (169.254.169.254), multicast, unspecified and other
  // special-purpose addresses, and the host's own interface addresses, are refused (egress_refused)
  // unless named here, checked on the address
  // actually connected to. Comma list of host (any port), host:port, IP, IP:port, [IPv6]:port or
  // CIDR, e.g. 127.0.0.1:5000,registry.internal,10.0.0.0/8; '0.0.0.0/0,::/0' turns filtering off.
  SBX_EGRESS_ALLOW: egressAllow,
  // Jobs' network egress (`network: "egress"`, worker/src/egress): such a job's only way out is an
  // HTTP proxy the worker serves inside the job's own network namespace (127.0.0.1:3128), which
  // connects to public addresses only, on SBX_JOB_EGRESS_PORTS, checked on the address connected to.
  // SBX_JOB_EGRESS=false refuses such jobs (400 at submission, invalid_request on a worker).
  SBX_JOB_EGRESS: bool.default(true),
  // What jobs may reach although it is not public (same syntax as SBX_EGRESS_ALLOW, and separate
  // from it: a registry the service may use is not thereby open to tenants' code). Default none.
  SBX_JOB_EGRESS_ALLOW: egressAllow,
  // Destination ports jobs may connect to: a comma list of ports and ranges (80,443,8000-8999) or '*'.
  SBX_JOB_EGRESS_PORTS: z.string().default('80,443').transform((s, ctx) => {
    const ports = parsePortSet(s);
    if (ports) return ports;
    ctx.addIssue({ code: 'custom', message: `must be '*' or a comma list of ports and ranges (1-65535), e.g. 80,443,8000-8999; got ${JSON.stringify(s)}` });
    return parsePortSet('80,443')!;
  }),
  // Connections one job may have open through its proxy at once (more are answered 429).
  SBX_JOB_EGRESS_CONNECTIONS: int(1, 4096).default(64),
  // Bytes one job may move through its proxy, both ways together; past it its connections are cut
  // and new ones refused (egress.limitReached). 0: no limit.
  SBX_JOB_EGRESS_BYTES: int(0).default(GiB),
  // Requests one job's proxy refuses (a destination or port not allowed, too many connections…)
  // before it stops listening: each refusal costs the worker's event loop a connection and an
  // answer, the job next to nothing. 0: no limit.
  SBX_JOB_EGRESS_REFUSALS: int(0).default(1000),
  // Image cache disk budget (LRU, never evicting what a running job uses); unset = unbounded.
  // Only for one worker process per SBX_STATE_DIR.
  SBX_IMAGE_CACHE_BYTES: int(16 * MiB).optional(),
  // After each pull, least recently used images nobody holds are also evicted while the cache's file
  // system has less than this percentage free (0 = off). Whatever the budgets, a pull that finds the
  // disk full evicts every image nobody holds and is tried once more.
  SBX_IMAGE_CACHE_MIN_FREE_PERCENT: int(0, 90).default(10),
  // After each pull, least recently used image references (tags, digests) nobody holds are forgotten
  // past this many: another tag of a cached image costs no disk, so only this bounds how many a
  // worker lists in each heartbeat. 0 = no limit.
  SBX_IMAGE_CACHE_REFERENCES: int(0, 1_000_000).default(1000),
  // Pull bounds (issue 9): image pulls at once per worker (beside the run slots: a pulling job holds
  // no slot; the worker takes up to slots + this many jobs from the queue); the deadline of a whole
  // pull; a download receiving fewer than SBX_PULL_STALL_BYTES over any SBX_PULL_STALL_MS fails as
  // stalled (a registry trickling bytes passes idle timeouts). All end the job image_pull_failed.
  SBX_PULL_CONCURRENCY: int(1, 256).default(4),
  // A running job's usage is read from its cgroup and kept with its document this often (docker stats); 0: never.
  SBX_LIVE_USAGE_MS: int(0, 3_600_000).default(2_000),
  // Jobs' pull "always": a tag resolved from the registry less than this long ago is taken from the
  // cache (one registry request per tag per window, whatever the number of jobs). 0: every job asks.
  SBX_PULL_ALWAYS_FRESH_MS: int(0, 3_600_000).default(5_000),
  SBX_PULL_TIMEOUT_MS: int(1_000, 24 * 3_600_000).default(600_000),
  SBX_PULL_STALL_MS: int(100, 3_600_000).default(30_000),
  SBX_PULL_STALL_BYTES: int(1, 1 * GiB).default(64 * 1024),
  // Registry credentials in Docker's config.json format (auths → base64 user:password).
  SBX_DOCKER_CONFIG: z.string().startsWith('/', 'must be an absolute path').optional(),
  // Registry credentials per tenant: <dir>/<tenant>.json in config.json format, re-read when changed.
  SBX_TENANT_DOCKER_CONFIG_DIR: readableDir.optional(),
  // Each job slot s runs as host uids SBX_UID_BASE + s*65536 … + 65535 (container root is not host root).
  // 'auto': the lowest range from 100000 on that no other worker on this host holds
  // (worker/src/uid-ranges.ts); a number: that range, or the worker refuses to start.
  SBX_UID_BASE: z.union([z.literal('auto'), int(1, 4_000_000_000)], { error: 'must be auto or a number in decimal digits (like 100000)' }).default('auto'),
  SBX_WORKER_METRICS_PORT: int(0, 65535).optional(),
  // Where that listener listens: loopback by default; 0.0.0.0 (or the pod's address) where a
  // Prometheus elsewhere scrapes it, as in a Kubernetes pod. An IP address, not a name.
  SBX_WORKER_METRICS_HOST: z.string().trim().refine((s) => parseIp(s) !== null, 'must be an IP address, e.g. 127.0.0.1, 0.0.0.0 or ::').default('127.0.0.1'),
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
  // Pooled setups (a slot's next job's namespaces, cgroups and mounts made ahead) are made only while
  // the worker's CPUs were at least this percentage idle over the last quarter second; on a host with
  // none to spare they only add work, and jobs start from scratch instead (0 = always made).
  SBX_POOL_MIN_IDLE_PERCENT: int(0, 100).default(DEFAULT_POOL_MIN_IDLE_PERCENT),
  SBX_HEARTBEAT_MS: int(200, 60_000).default(2_000),
  // A job whose worker is lost (no heartbeat for 5 × SBX_HEARTBEAT_MS, or crashed and restarted)
  // before its command started (pulling, waiting for a slot) is queued again, at most this many
  // times per job (its document: attempts, history); once started it ends worker_lost. 0 = never.
  SBX_LOST_JOB_REQUEUES: int(0, 5).default(1),
  // One worker of the fleet, this often, queues again each job `queued` for longer than the grace
  // with its queue entry lost (on no queue, no hand-off, no requeue on its way): worker/src/queue-audit.ts.
  SBX_QUEUE_AUDIT_MS: int(100, 3_600_000).default(30_000),
  SBX_QUEUE_AUDIT_GRACE_MS: int(1_000, 86_400_000).default(60_000),
  // Placement (worker/src/placement): a worker takes a job only when a run slot is free and its
  // jobs' limits.memoryBytes fit SBX_JOBS_MEMORY_BYTES. Cache-aware: a worker that lacks a job's image
  // hands it (once) to a live worker that holds it and has room; false = take whatever comes first.
  SBX_PLACEMENT_CACHE_AWARE: bool.default(true),
  // A job handed to a worker's own queue that it has not taken within this time goes back to the shared queue.
  SBX_PLACEMENT_MAX_WAIT_MS: int(50, 600_000).default(1_000),
});

export type Env = z.infer<typeof envSchema>;

/** The secret that signs `tenant`'s webhooks (its own, else the `*` one), or null: none configured. */
export function webhookSecretFor(env: Pick<Env, 'SBX_WEBHOOK_SECRETS'>, tenant: string): string | null {
  return env.SBX_WEBHOOK_SECRETS.get(tenant) ?? env.SBX_WEBHOOK_SECRETS.get('*') ?? null;
}

function parseMirrors(raw: string, ctx: z.RefinementCtx): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const entry of raw.split(',').map((e) => e.trim()).filter(Boolean)) {
    const parts = entry.split('=');
    const [registry, list] = parts;
    const mirrors = (list ?? '').split(';').map((m) => m.trim()).filter(Boolean);
    if (parts.length !== 2 || !registry || mirrors.length === 0) {
      ctx.addIssue({ code: 'custom', message: 'each entry must be registry=mirror[;mirror…] with host[:port] names, e.g. docker.io=10.0.0.5:5000' });
      return {};
    }
    const name = registryNameOrIssue(registry, ctx);
    if (name in out) {
      ctx.addIssue({ code: 'custom', message: `registry ${name} is given twice: list all its mirrors in one entry, separated by ;` });
      return {};
    }
    out[name] = mirrors.map((m) => registryNameOrIssue(m, ctx));
  }
  return out;
}

/** `text` spelt as image references spell a registry (core/src/image-ref.ts), or an issue saying what is wrong. */
function registryNameOrIssue(text: string, ctx: z.RefinementCtx): string {
  const named = registryName(text);
  if ('registry' in named) return named.registry;
  ctx.addIssue({ code: 'custom', message: `${named.problem}; name registries as host[:port], e.g. registry.internal:5000 or [fd00::5]:5000` });
  return text;
}

export type ApiRole = 'tenant' | 'admin';

const LIMIT_NAMES = ['memoryBytes', 'cpus', 'pids', 'timeoutMs', 'outputBytes', 'diskBytes', 'openFiles', 'cpuTimeMs'] as const;
export type LimitName = (typeof LIMIT_NAMES)[number];

/** What a key entry may say about its tenant's quota; an omitted field takes the SBX_TENANT_* default, null = no limit. */
const QuotaInput = z.strictObject({
  activeJobs: z.number().int('must be a whole number').min(1, 'must be >= 1 (or null: no limit)').nullable().optional(),
  submitsPerSecond: z.number().positive('must be > 0 (or null: no limit)').max(1_000_000).nullable().optional(),
  submitBurst: z.number().int('must be a whole number').min(1, 'must be >= 1').max(1_000_000).optional(),
  /** Event streams and attach sockets open at once, per API process. */
  streams: z.number().int('must be a whole number').min(1, 'must be >= 1 (or null: no limit)').max(1_000_000).nullable().optional(),
  /** Requests open at once, per API process, until their answers are written. */
  requests: z.number().int('must be a whole number').min(1, 'must be >= 1 (or null: no limit)').max(1_000_000).nullable().optional(),
  /** Requests per second, across the API processes (token bucket). */
  requestsPerSecond: z.number().positive('must be > 0 (or null: no limit)').max(1_000_000).nullable().optional(),
  requestBurst: z.number().int('must be a whole number').min(1, 'must be >= 1').max(1_000_000).optional(),
  /** Bytes its jobs may store in Redis per hour, records and output. */
  storedBytesPerHour: z.number().int('must be a whole number').min(1024, 'must be >= 1024 (or null: no limit)').max(2 ** 50).nullable().optional(),
  /** Whether this tenant's jobs may ask for network "egress" (default true; SBX_JOB_EGRESS=false turns it off for every tenant). */
  jobEgress: z.boolean({ error: 'must be true or false' }).optional(),
  /** Ceilings on job limits for this tenant, under the server's SBX_MAX_* maxima. */
  limits: z.strictObject(Object.fromEntries(LIMIT_NAMES.map((n) => [n, z.number().positive('must be > 0').optional()])) as Record<LimitName, z.ZodOptional<z.ZodNumber>>).optional(),
});
export type QuotaInput = z.infer<typeof QuotaInput>;

const WEBHOOK_SECRET = /^[A-Za-z0-9._~+/=-]{24,512}$/;
const WEBHOOK_SECRET_RULE = 'must be 24-512 chars of [A-Za-z0-9._~+/=-] (e.g. openssl rand -base64 32)';

/** `<tenant>:<secret>[,…]`, tenant `*` = every tenant without its own secret. */
function parseWebhookSecrets(raw: string, ctx: z.RefinementCtx): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of raw.split(',').map((p) => p.trim()).filter(Boolean)) {
    const m = /^(\*|[a-z0-9][a-z0-9_-]{0,62}):(.*)$/.exec(part);
    if (!m || !WEBHOOK_SECRET.test(m[2]!)) {
      ctx.addIssue({ code: 'custom', message: `each entry must be <tenant>:<secret> (tenant of [a-z0-9_-] or *), the secret ${WEBHOOK_SECRET_RULE}` });
      return new Map();
    }
    if (out.has(m[1]!)) {
      ctx.addIssue({ code: 'custom', message: `tenant ${m[1]} is given twice: one secret each` });
      return new Map();
    }
    out.set(m[1]!, m[2]!);
  }
  return out;
}

const ApiKeyEntry = z.strictObject({
  key: z.string({ error: 'is required' }).regex(/^[A-Za-z0-9._~+/=-]{16,}$/, 'must be >= 16 chars of [A-Za-z0-9._~+/=-]'),
  tenant: z.string({ error: 'is required' }).regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'must be 1-63 of [a-z0-9_-], starting with a letter or digit'),
  role: z.enum(['tenant', 'admin'], { error: 'must be tenant or admin' }).default('tenant'),
  quota: QuotaInput.optional(),
  /** Signs this tenant's webhooks (as SBX_WEBHOOK_SECRETS does). */
  webhookSecret: z.string().regex(WEBHOOK_SECRET, WEBHOOK_SECRET_RULE).optional(),
});

export interface ApiKey {
  key: string;
  tenant: string;
  role: ApiRole;
  /** Only when the entry gives one; Config.quotas has every tenant's resolved quota. */
  quota?: QuotaInput;
  /** Only when the entry gives one; env.SBX_WEBHOOK_SECRETS has every tenant's (resolveTenants). */
  webhookSecret?: string;
}

/** A tenant's resolved quota (null = no limit). */
export interface TenantQuota {
  activeJobs: number | null;
  submitsPerSecond: number | null;
  submitBurst: number;
  /** Event streams and attach sockets open at once, per API process (api/src/tenant-places.ts). */
  streams: number | null;
  /** Requests open at once, per API process, until their answers are written (api/src/middleware/open-requests.ts). */
  requests: number | null;
  /** Requests per second and their burst, across the API processes (api/src/tenant-request-rate.ts). */
  requestsPerSecond: number | null;
  requestBurst: number;
  /** Bytes its jobs may store in Redis per hour, records and output (core/src/tenant-storage-budget.ts). */
  storedBytesPerHour: number | null;
  /** Whether its jobs may ask for network "egress" (under the server's SBX_JOB_EGRESS). */
  jobEgress: boolean;
  limits: Partial<Record<LimitName, number>>;
}

function parseApiKeys(raw: string, ctx: z.RefinementCtx): ApiKey[] {
  if (raw.trim().startsWith('[')) return parseApiKeysJson(raw, ctx);
  const keys: ApiKey[] = [];
  for (const part of raw.split(',').map((p) => p.trim()).filter(Boolean)) {
    const m = /^([A-Za-z0-9._~+/=-]{16,}):([a-z0-9][a-z0-9_-]{0,62})(?::(tenant|admin))?$/.exec(part);
    if (!m) {
      ctx.addIssue({ code: 'custom', message: 'each entry must be <key>:<tenant>[:<role>], key >= 16 chars of [A-Za-z0-9._~+/=-], tenant of [a-z0-9_-], role tenant (the default) or admin; or a JSON array as in SBX_API_KEYS_FILE' });
      return [];
    }
    keys.push({ key: m[1]!, tenant: m[2]!, role: (m[3] as ApiRole | undefined) ?? 'tenant' });
  }
  return keys;
}

/**
 * Where JSON.parse's error is, without the text around it (V8's message quotes it: keys,
 * credentials): ' (at character N)', or '' when the message names no position.
 */
export function jsonErrorAt(e: unknown): string {
  const at = /position (\d+)/.exec((e as Error).message)?.[1];
  return at ? ` (at character ${at})` : '';
}

function parseApiKeysJson(text: string, ctx: z.RefinementCtx): ApiKey[] {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: `is not valid JSON${jsonErrorAt(e)}` });
    return [];
  }
  const parsed = z.array(ApiKeyEntry, { error: 'must be a JSON array of {key, tenant, role?, quota?}' }).safeParse(json);
  if (!parsed.success) {
    for (const i of parsed.error.issues) {
      const where = i.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('').replace(/^\./, '');
      ctx.addIssue({ code: 'custom', message: `${where || 'the value'}: ${i.message}` });
    }
    return [];
  }
  return parsed.data.map((e) => ({ key: e.key, tenant: e.tenant, role: e.role, ...(e.quota ? { quota: e.quota } : {}), ...(e.webhookSecret ? { webhookSecret: e.webhookSecret } : {}) }));
}

function readReceiptKey(path: string, ctx: z.RefinementCtx): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey(readFileSync(path));
  } catch (e) {
    const code = (e as { code?: string }).code;
    ctx.addIssue({ code: 'custom', message: code?.startsWith('E') && !code.startsWith('ERR_') ? `cannot be read (${code})` : 'is not a private key in PEM (openssl genpkey -algorithm ed25519)' });
    return z.NEVER;
  }
  if (key.asymmetricKeyType !== 'ed25519') ctx.addIssue({ code: 'custom', message: `is a ${key.asymmetricKeyType} key; receipts are signed with Ed25519 (openssl genpkey -algorithm ed25519)` });
  // Whoever reads the file can sign receipts as this service: like ssh with its keys, a key the
  // group or others may read is refused (a k8s secret with defaultMode 0400, a file chmod 600).
  const mode = statSync(path).mode & 0o777;
  if (mode & 0o077) ctx.addIssue({ code: 'custom', message: `may be read by its group or others (mode 0${mode.toString(8)}): whoever reads it can sign receipts; chmod 600 it (or 400)` });
  return key;
}

/**
 * The public keys the API lists at GET /v1/receipt-keys (the API signs nothing, so it need not hold
 * the private key): the current one and those retired, whose receipts still verify. PEM blocks of
 * SPKI public keys, one after another; a private key in the file is refused.
 */
function readReceiptPublicKeys(path: string, ctx: z.RefinementCtx): KeyObject[] {
  const text = readConfigFile(path, ctx);
  if (text === null) return z.NEVER;
  const parsed = parseReceiptPublicKeys(text);
  if (parsed.ok) return parsed.keys;
  for (const message of parsed.problems) ctx.addIssue({ code: 'custom', message });
  return z.NEVER;
}

/** A file a setting names, as text; null (and the setting's problem) when it cannot be read. */
function readConfigFile(path: string, ctx: z.RefinementCtx): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: `cannot be read (${(e as { code?: string }).code ?? (e as Error).message})` });
    return null;
  }
}

function readApiKeysFile(path: string, ctx: z.RefinementCtx): ApiKey[] {
  const text = readConfigFile(path, ctx);
  if (text === null) return [];
  return parseApiKeysJson(text, ctx);
}

/**
 * All keys (inline and file) into env.SBX_API_KEYS, and each tenant's quota: its entries' quota
 * (they must agree) over the SBX_TENANT_* defaults; ceilings must sit under the server maxima.
 */
function resolveTenants(env: Env, limits: LimitsPolicy, problems: string[]): Map<string, TenantQuota> {
  const keys = [...env.SBX_API_KEYS, ...(env.SBX_API_KEYS_FILE ?? [])];
  env.SBX_API_KEYS = keys;
  const seen = new Map<string, string>();
  const inputs = new Map<string, QuotaInput | undefined>();
  for (const k of keys) {
    if (seen.has(k.key)) problems.push(`SBX_API_KEYS/SBX_API_KEYS_FILE: one key is listed twice (tenants ${seen.get(k.key)} and ${k.tenant}); every key must be unique`);
    seen.set(k.key, k.tenant);
    const prior = inputs.get(k.tenant);
    if (k.quota && prior && JSON.stringify(prior) !== JSON.stringify(k.quota)) problems.push(`tenant ${k.tenant}: its keys give different quotas; give the quota on one key or the same on each`);
    inputs.set(k.tenant, prior ?? k.quota);
    if (k.webhookSecret) {
      const secret = env.SBX_WEBHOOK_SECRETS.get(k.tenant);
      if (secret !== undefined && secret !== k.webhookSecret) problems.push(`tenant ${k.tenant}: two different webhook secrets (SBX_WEBHOOK_SECRETS or its keys' webhookSecret); give one`);
      env.SBX_WEBHOOK_SECRETS.set(k.tenant, k.webhookSecret);
    }
  }
  const quotas = new Map<string, TenantQuota>();
  for (const [tenant, q] of inputs) {
    const rate = q?.submitsPerSecond !== undefined ? q.submitsPerSecond : env.SBX_TENANT_SUBMITS_PER_SECOND || null;
    const requestRate = q?.requestsPerSecond !== undefined ? q.requestsPerSecond : env.SBX_TENANT_REQUESTS_PER_SECOND || null;
    quotas.set(tenant, {
      activeJobs: q?.activeJobs !== undefined ? q.activeJobs : env.SBX_TENANT_ACTIVE_JOBS || null,
      submitsPerSecond: rate,
      submitBurst: q?.submitBurst ?? Math.max(1, Math.ceil(2 * (rate ?? 0))),
      streams: q?.streams !== undefined ? q.streams : env.SBX_TENANT_STREAMS || null,
      requests: q?.requests !== undefined ? q.requests : env.SBX_TENANT_REQUESTS || null,
      requestsPerSecond: requestRate,
      requestBurst: q?.requestBurst ?? Math.max(1, Math.ceil(2 * (requestRate ?? 0))),
      storedBytesPerHour: q?.storedBytesPerHour !== undefined ? q.storedBytesPerHour : env.SBX_TENANT_STORED_BYTES_PER_HOUR || null,
      jobEgress: q?.jobEgress ?? true,
      limits: q?.limits ?? {},
    });
    for (const [name, v] of Object.entries(q?.limits ?? {}) as Array<[LimitName, number]>) {
      if (v > limits.maxima[name]) problems.push(`tenant ${tenant}: quota.limits.${name} (${v}) is above the server maximum (${limits.maxima[name]}); lower it or raise SBX_MAX_*`);
      const floor = minimumOf(name);
      if (v < floor) problems.push(`tenant ${tenant}: quota.limits.${name} (${v}) is below the smallest value a job can run with (${floor}); raise it`);
    }
  }
  return quotas;
}

/** The smallest value of a limit the launcher (or, for outputBytes, the worker) accepts. */
function minimumOf(name: LimitName): number {
  return name === 'outputBytes' ? OUTPUT_BYTES_BOUND.min : B[name].min;
}

type LimitValues = { memoryBytes: number; cpus: number; pids: number; timeoutMs: number; outputBytes: number; diskBytes: number; openFiles: number };

export interface LimitsPolicy {
  /** cpuTimeMs has no server default (null: only the wall-time limit applies); a tenant ceiling sets one. */
  defaults: LimitValues & { cpuTimeMs: number | null };
  maxima: LimitValues & { cpuTimeMs: number };
  /** The maxima that are a tenant's ceiling rather than the server's (core/src/tenant-quota.ts). */
  tenantMaxima?: ReadonlySet<string>;
  /** Interactive jobs' idle limit (limits.idleTimeoutMs): default and maximum. */
  idle?: { defaultMs: number; maxMs: number };
  /** limits.stopGraceMs at most (default STOP_GRACE_BOUND.max). */
  maxStopGraceMs?: number;
  /** Whether jobs may ask for network "egress" (SBX_JOB_EGRESS; default true). */
  jobEgress?: boolean;
  /** False when the tenant's quota says `jobEgress: false` (tenantLimitsPolicy). */
  tenantJobEgress?: boolean;
}

export interface Config {
  env: Env;
  limits: LimitsPolicy;
  /** Each keyed tenant's quota (none in anonymous mode: no limits). */
  quotas: Map<string, TenantQuota>;
}

/** A bad value as the error shows it: never the API keys themselves. */
function shownValue(name: string, value: string): string {
  if (name === 'SBX_API_KEYS' || name === 'SBX_SECRETS_KEY' || name === 'SBX_WEBHOOK_SECRETS' || name === 'SBX_REDIS_SENTINEL_PASSWORD') return '(hidden)';
  // A private key given where its file's path is asked (SBX_RECEIPT_KEY_FILE="$(cat receipt.pem)", a
  // secret mounted as env): shown, the key itself went to stderr and the logs. Only a path is shown.
  if (name === 'SBX_RECEIPT_KEY_FILE' && !value.startsWith('/')) return '(hidden: not a path)';
  if (value.includes('-----BEGIN')) return '(hidden: PEM)';
  // A URL's user and password are not shown (SBX_REDIS_URL): all up to its last '@', as a password
  // the URL does not parse with may hold '/', '?', '#' or '@' (unencoded base64 has '/' and '+').
  return JSON.stringify(value.replace(/^([a-z][a-z0-9+.-]*:\/\/)?[^]*@/i, (_all, scheme: string | undefined) => `${scheme ?? ''}(hidden)@`));
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
    if (v !== undefined && v.trim() !== '') picked[key] = v; // blank is unset
  }
  const parsed = envSchema.safeParse(picked);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((i) => `${String(i.path[0] ?? '?')}=${shownValue(String(i.path[0]), picked[String(i.path[0])] ?? '')}: ${i.message}`));
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
  limits.idle = { defaultMs: env.SBX_DEFAULT_IDLE_TIMEOUT_MS, maxMs: env.SBX_MAX_IDLE_TIMEOUT_MS };
  limits.maxStopGraceMs = env.SBX_MAX_STOP_GRACE_MS;
  limits.jobEgress = env.SBX_JOB_EGRESS;
  const problems: string[] = [];
  if (env.SBX_DEFAULT_IDLE_TIMEOUT_MS > env.SBX_MAX_IDLE_TIMEOUT_MS) problems.push(`SBX_DEFAULT_IDLE_TIMEOUT_MS (${env.SBX_DEFAULT_IDLE_TIMEOUT_MS}) is above SBX_MAX_IDLE_TIMEOUT_MS (${env.SBX_MAX_IDLE_TIMEOUT_MS}); lower it or raise the maximum`);
  for (const k of Object.keys(limits.defaults) as Array<keyof LimitsPolicy['defaults']>) {
    const d = limits.defaults[k];
    if (d !== null && d > limits.maxima[k]) problems.push(`default ${k} (${limits.defaults[k]}) is above its maximum (${limits.maxima[k]}); lower the SBX_DEFAULT_* or raise the SBX_MAX_* variable`);
  }
  const quotas = resolveTenants(env, limits, problems);
  if (env.SBX_API_HEADERS_TIMEOUT_MS > env.SBX_API_REQUEST_TIMEOUT_MS) problems.push(`SBX_API_HEADERS_TIMEOUT_MS (${env.SBX_API_HEADERS_TIMEOUT_MS}) is above SBX_API_REQUEST_TIMEOUT_MS (${env.SBX_API_REQUEST_TIMEOUT_MS}); the headers are part of the request: lower it or raise the request timeout`);
  problems.push(...redisModeProblems(env));
  if (env.SBX_WEBHOOK_RETRY_MS > env.SBX_JOB_TTL_SECONDS * 1000) problems.push(`SBX_WEBHOOK_RETRY_MS (${env.SBX_WEBHOOK_RETRY_MS}) is longer than a job's record lives (SBX_JOB_TTL_SECONDS=${env.SBX_JOB_TTL_SECONDS}): a webhook is sent from its job's record, so its retries would stop when the record expires; lower it or raise SBX_JOB_TTL_SECONDS`);
  if (env.SBX_WEBHOOK_BACKOFF_MS > env.SBX_WEBHOOK_BACKOFF_MAX_MS) problems.push(`SBX_WEBHOOK_BACKOFF_MS (${env.SBX_WEBHOOK_BACKOFF_MS}) is above SBX_WEBHOOK_BACKOFF_MAX_MS (${env.SBX_WEBHOOK_BACKOFF_MAX_MS}); lower it or raise the maximum`);
  if (problems.length) throw new ConfigError(problems);
  return { env, limits, quotas };
}
