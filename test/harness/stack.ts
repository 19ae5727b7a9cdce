/**
 * The whole of sbx for an end-to-end test file, every part real: a private redis-server, Debian's
 * Distribution registry seeded with the fixture images, the API and one or more workers as child
 * processes (exactly as `npm run api` / `npm run worker` start them). stop() removes all of it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { buildStandardImages } from '../fixtures/build-images.ts';
import { removeCgroupTree } from '../../worker/src/cgroup-parent.ts';
import { WORKER_NODE_FLAGS } from '../../worker/src/node-flags.ts';
import { listensOn, onFreePort, PortTakenError, saysPortTaken } from './ports.ts';
import { startRegistry, type RunningRegistry } from './registry.ts';
import { startRedis, waitUntil, type RunningRedis } from './redis.ts';
import { startRedisCluster, type RedisClusterOptions } from './redis-cluster.ts';
import { startRedisSentinel, type RedisSentinelOptions } from './redis-sentinel.ts';
import { diesWithParent } from './dies-with-parent.ts';
import { HOST_SLOWDOWN } from './slow-host.ts';

const ROOT = new URL('../../', import.meta.url).pathname;

export interface ManagedProcess {
  name: string;
  child: ChildProcess;
  log(): string;
  /** Send a signal and wait for the exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export interface Stack {
  apiUrl: string;
  /** How the stack reaches Redis: a standalone server, or a Cluster's nodes. */
  redis: { stop(): Promise<void> };
  registry: RunningRegistry;
  /** Image references of the fixtures in this stack's registry. */
  images: { busybox: string; probe: string };
  env: Record<string, string>;
  workers: ManagedProcess[];
  api: ManagedProcess;
  startWorker(extraEnv?: Record<string, string>): Promise<ManagedProcess>;
  stop(): Promise<void>;
}

/** A user `sbx` with `rules` on `redis`, and the URL that signs in as it. */
async function redisUserUrl(redis: RunningRedis, rules: string): Promise<string> {
  const password = randomBytes(16).toString('hex');
  const admin = redis.client();
  try {
    await admin.call('ACL', 'SETUSER', 'sbx', 'reset', 'on', `>${password}`, ...rules.split(/\s+/).filter(Boolean));
  } finally {
    admin.disconnect();
  }
  return redis.url.replace('redis://', `redis://sbx:${password}@`);
}

/** `adminKey`: an admin API key of `env.SBX_API_KEYS`, for the harness's own look at /v1/workers. */
/** `egressAllow`: more SBX_EGRESS_ALLOW entries for the workers, beside this stack's own registry. */
/** `dist`: run the API and the workers from this production build (`npm run build`) with plain node, no tsx. */
/** `workerEnv`: more env for the workers only (`env` is the API's and the workers'). */
/** `redisCluster`: three masters, or as asked (replicas to fail over: redis-cluster.ts). */
/** `redisSentinel`: one Sentinel, or as asked (replicas, more Sentinels, timings for a hard failover: redis-sentinel.ts). */
/** `redisUser`: the API and the workers sign in to the standalone Redis as user `sbx` with these ACL rules (`ACL SETUSER sbx on >… <rules>`); `stack.redis` stays the default user's. */
/** `bindAddress`: an address of this machine (a test bridge's: hosts.ts) where standalone Redis listens too and the registry listens instead of loopback (the images are named after it; it is an insecure registry to the workers). */
export async function startStack(opts: { env?: Record<string, string>; workerEnv?: Record<string, string>; workers?: number; redisCluster?: boolean | RedisClusterOptions; redisSentinel?: boolean | RedisSentinelOptions; adminKey?: string; egressAllow?: string[]; dist?: string; bindAddress?: string; redisUser?: string } = {}): Promise<Stack> {
  const runId = randomBytes(4).toString('hex');
  const stateDir = await mkdtemp(join(tmpdir(), 'sbx-e2e-'));
  const cluster = opts.redisCluster ? await startRedisCluster(typeof opts.redisCluster === 'object' ? opts.redisCluster : {}) : null;
  const sentinel = opts.redisSentinel ? await startRedisSentinel('sbxmaster', typeof opts.redisSentinel === 'object' ? opts.redisSentinel : {}) : null;
  const standalone = cluster || sentinel ? null : await startRedis(opts.bindAddress ? { bind: [opts.bindAddress] } : {});
  const redis = (cluster ?? sentinel ?? standalone)!;
  const redisEnv: Record<string, string> = cluster
    ? { SBX_REDIS_CLUSTER_NODES: cluster.nodes.join(',') }
    : sentinel
      ? { SBX_REDIS_SENTINELS: sentinel.sentinels.join(','), SBX_REDIS_SENTINEL_NAME: sentinel.masterName }
      : { SBX_REDIS_URL: opts.redisUser === undefined ? standalone!.url : await redisUserUrl(standalone!, opts.redisUser) };
  const registry = await startRegistry(opts.bindAddress ? { address: opts.bindAddress } : {});
  await buildStandardImages(registry.host);
  const env: Record<string, string> = {
    ...redisEnv,
    SBX_API_HOST: '127.0.0.1',
    SBX_STATE_DIR: stateDir,
    SBX_CGROUP_PARENT: `sbx-test-${runId}`,
    SBX_LOG_LEVEL: 'warn',
    SBX_HEARTBEAT_MS: '500',
    SBX_EGRESS_ALLOW: [registry.host, ...(opts.egressAllow ?? [])].join(','), // its registry is on loopback
    ...(opts.bindAddress ? { SBX_INSECURE_REGISTRIES: registry.host } : {}), // plain http off loopback
    SBX_SECRETS_KEY: randomBytes(32).toString('base64'), // API and workers share it (registryAuth at rest)
    ...opts.env,
  };
  let started: StartedApi;
  try {
    started = await startApi('api', env, opts.dist);
  } catch (e) {
    await registry.stop();
    await redis.stop();
    await rm(stateDir, { recursive: true, force: true });
    throw e;
  }
  const { process: api, url: apiUrl } = started;
  env.SBX_API_PORT = String(started.port);
  let workerCount = 0;
  const stack: Stack = {
    apiUrl,
    redis,
    registry,
    images: { busybox: `${registry.host}/test/busybox:latest`, probe: `${registry.host}/test/probe:latest` },
    env,
    workers: [],
    api,
    async startWorker(extraEnv = {}) {
      workerCount++;
      const id = `e2e-${runId}/${workerCount}`;
      const w = spawnSbx(`worker-${workerCount}`, 'worker/src/main.ts', { ...env, ...opts.workerEnv, SBX_WORKER_ID: id, ...extraEnv }, opts.dist);
      stack.workers.push(w);
      await waitUntil(async () => {
        if (w.child.exitCode !== null) throw new Error(`worker exited (${w.child.exitCode}):\n${w.log()}`);
        const res = await fetch(`${apiUrl}/v1/workers`, { headers: opts.adminKey ? { authorization: `Bearer ${opts.adminKey}` } : {} }).catch(() => null);
        const body = res?.ok ? ((await res.json()) as { items: Array<{ id: string; pid: number }> }) : { items: [] };
        return body.items.some((x) => x.id === (extraEnv.SBX_WORKER_ID ?? id) && x.pid === w.child.pid);
      }, 30_000 * HOST_SLOWDOWN, `worker ${id} to register`);
      return w;
    },
    async stop() {
      await Promise.all([...stack.workers, api].map((p) => p.kill('SIGTERM')));
      removeCgroupTree(env.SBX_CGROUP_PARENT!); // what SIGKILLed workers could not remove themselves
      await registry.stop();
      await redis.stop();
      await rm(stateDir, { recursive: true, force: true });
    },
  };
  try {
    for (let i = 0; i < (opts.workers ?? 1); i++) await stack.startWorker();
  } catch (e) {
    await stack.stop(); // a half-started stack leaves nothing running
    throw e;
  }
  return stack;
}

/**
 * A worker of `stack` with its /metrics on a port of its own (SBX_WORKER_METRICS_PORT), and the URL.
 * A port free when freePort() answers may be taken before the worker listens on it (another test
 * file's server): the worker then exits naming EADDRINUSE, and is started again on another port.
 */
export async function startWorkerWithMetrics(stack: Stack, extraEnv: Record<string, string> = {}): Promise<{ worker: ManagedProcess; metricsUrl: string }> {
  return onFreePort(async (port) => {
    try {
      const worker = await stack.startWorker({ ...extraEnv, SBX_WORKER_METRICS_PORT: String(port) });
      return { worker, metricsUrl: `http://127.0.0.1:${port}/metrics` };
    } catch (e) {
      if (!saysPortTaken((e as Error).message)) throw e;
      const gone = stack.workers.findIndex((w) => w.child.exitCode !== null && saysPortTaken(w.log()));
      if (gone >= 0) stack.workers.splice(gone, 1); // exited before registering: nothing of it to stop
      throw new PortTakenError('the worker metrics listener', port, (e as Error).message);
    }
  });
}

export interface StartedApi {
  process: ManagedProcess;
  port: number;
  url: string;
}

/**
 * An API process on a free loopback port, ready (/readyz answers from this very process: a port
 * taken by someone else between the pick and the API's bind means another port, not another API).
 */
export async function startApi(name: string, env: Record<string, string>, dist?: string): Promise<StartedApi> {
  return onFreePort(async (port) => {
    const p = spawnSbx(name, 'api/src/main.ts', { ...env, SBX_API_PORT: String(port) }, dist);
    const url = `http://127.0.0.1:${port}`;
    try {
      await waitUntil(async () => {
        if (p.child.exitCode !== null) {
          throw saysPortTaken(p.log()) ? new PortTakenError(name, port) : new Error(`API exited (${p.child.exitCode}):\n${p.log()}`);
        }
        if (!listensOn(p.child.pid, port)) return false;
        return (await fetch(`${url}/readyz`).catch(() => null))?.ok ?? false;
      }, 30_000 * HOST_SLOWDOWN, `the API ${name} to be ready`);
    } catch (e) {
      await p.kill('SIGKILL');
      throw e;
    }
    return { process: p, port, url };
  });
}

/** `dist`: run `<dist>/<entry as .js>` with plain node (a production build) instead of the source under tsx. */
/** `prefix`: a command that execs the rest (e.g. nsenter into a host's network namespace: hosts.ts). */
export function spawnSbx(name: string, entry: string, env: Record<string, string>, dist?: string, prefix: string[] = []): ManagedProcess {
  // The worker runs with its V8 flags wherever it is started (worker/src/node-flags.ts).
  const flags = entry === 'worker/src/main.ts' ? WORKER_NODE_FLAGS : [];
  const program = [...flags, ...(dist ? [join(dist, entry.replace(/\.ts$/, '.js'))] : ['--import', 'tsx', entry])];
  const [command, args] = diesWithParent(process.execPath, program);
  const argv = [...prefix, command, ...args];
  const child = spawn(argv[0]!, argv.slice(1), {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  const keep = (d: Buffer) => {
    log += d.toString();
    if (log.length > 200_000) log = log.slice(-100_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  return {
    name,
    child,
    log: () => log,
    async kill(signal = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

