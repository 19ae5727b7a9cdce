/**
 * Worker process edge: config → host check → clean up after a crashed predecessor → take jobs from
 * the shared queue and its own when a job fits (placement/) → heartbeat → graceful shutdown.
 */
import { createServer, type Server } from 'node:http';
import os from 'node:os';
import { ConfigError, loadConfig, type Config } from '../../core/src/config.ts';
import { tenantQuotaOptions } from '../../core/src/tenant-quota.ts';
import { JobStore } from '../../core/src/job-store.ts';
import { exitOnFatalErrors } from '../../core/src/fatal-errors.ts';
import { createLogger, type Logger } from '../../core/src/logger.ts';
import { isLoopbackHost, namesAnAddress, namesLoopback } from '../../core/src/loopback-names.ts';
import { countFinished, createRegistry, workerMetrics } from '../../core/src/metrics.ts';
import { connectRedis } from '../../core/src/redis.ts';
import { guardEvictionPolicy } from '../../core/src/redis-eviction.ts';
import { replyCode, untilRedisTakes, type NotNowListener } from '../../core/src/redis-not-now.ts';
import { RedisKeys } from '../../core/src/redis-keys.ts';
import { WorkerDirectory, type WorkerInfo } from '../../core/src/worker-directory.ts';
import { closePool, probeHost, protectSelf, sweep, type LaunchOptions } from '../../native/index.ts';
import { removeEmptyCgroupPath, v2ParentProblems } from './cgroup-parent.ts';
import { processAlive } from './process-alive.ts';
import { listenForControl } from '../../core/src/control-messages.ts';
import { ImageStore } from './images/image-store.ts';
import type { RegistryCredentials } from './images/registry/registry-auth.ts';
import { loadRegistryCerts } from './images/registry/registry-certs.ts';
import { loadWorkerDockerConfig } from './images/registry/docker-credentials.ts';
import { Janitor, lostJobRecovery } from './janitor.ts';
import { liveWorkerCgroupNames, removeGoneWorkerCgroups, workerCgroupName } from './janitor-cgroups.ts';
import { QueueAudit } from './queue-audit.ts';
import { JobRunner } from './job-runner.ts';
import { watchRedis } from './redis-watchdog.ts';
import { startWebhookWorker } from './webhooks/webhook-delivery.ts';
import { TenantCredentials } from './images/registry/tenant-credentials.ts';
import { defaultSlotCount } from './slots.ts';
import { HostCapacity, ObservedSlotPool, observeImages } from './placement/capacity.ts';
import { JobFeeder } from './placement/job-feeder.ts';
import { HostQueues } from '../../core/src/placement/host-queues.ts';
import { prepareStateDir } from './state-dir.ts';
import { claimUidRange } from './uid-ranges.ts';
import { ensureOpenFilesLimit } from './open-files-limit.ts';
import { secretBoxFromEnv } from '../../core/src/secrets/secret-box.ts';
import { missingWorkerNodeFlags } from './node-flags.ts';
import { failoverTimingWarning, readFailoverDetection } from '../../core/src/redis-failover-timing.ts';

const SHUTDOWN_GRACE_MS = 10_000;
/** A webhook intent this old whose job is final but was never queued was left by a crash. */
const LOST_WEBHOOK_AFTER_MS = 30_000;

async function main(): Promise<void> {
  const config = loadConfigOrExit();
  const env = config.env;
  const logger = createLogger('sbx-worker', env.SBX_LOG_LEVEL);
  exitOnFatalErrors(logger);
  const missingFlags = missingWorkerNodeFlags();
  if (missingFlags.length) logger.warn({ missing: missingFlags }, `node was started without the worker's V8 flags (worker/src/node-flags.ts): image pulls spend more CPU in garbage collection; start it as infra/ does: node ${missingFlags.join(' ')} dist/worker/src/main.js`);
  const workerId = env.SBX_WORKER_ID ?? `${os.hostname()}/1`;
  const cgroupName = workerCgroupName(workerId);
  const cgroupParent = `${env.SBX_CGROUP_PARENT}/${cgroupName}`;
  const registryTls = await exitOnConfigError(loadRegistryCerts(env.SBX_REGISTRY_CERTS_DIR));
  if (Object.keys(registryTls).length) logger.info({ certsDir: env.SBX_REGISTRY_CERTS_DIR, registries: Object.keys(registryTls) }, 'registry TLS entries loaded (these hosts are reached over https)');
  // The worker's own registry credentials: read once, here; a file that cannot be used stops the start.
  const dockerCredentials = env.SBX_DOCKER_CONFIG ? await exitOnConfigError(loadWorkerDockerConfig(env.SBX_DOCKER_CONFIG)) : null;
  if (dockerCredentials) logger.info({ dockerConfig: env.SBX_DOCKER_CONFIG, registries: [...dockerCredentials.keys()] }, 'registry credentials loaded');

  const host = probeHost({ cgroupParent });
  if (!host.ok) {
    logger.fatal({ missing: host.missing, cgroup: host.cgroup }, 'this host cannot run jobs');
    process.stderr.write(`sbx-worker: this host cannot run jobs:\n  - ${host.missing.join('\n  - ')}\n`);
    process.exit(3);
  }
  // cgroup v2: no job's group can have limits below a group that holds processes (the worker's own, typically).
  const parentProblems = v2ParentProblems(cgroupParent);
  if (parentProblems.length) {
    logger.fatal({ cgroupParent, problems: parentProblems }, 'SBX_CGROUP_PARENT cannot hold the jobs\' cgroups');
    process.stderr.write(`sbx-worker: SBX_CGROUP_PARENT=${JSON.stringify(env.SBX_CGROUP_PARENT)}: ${parentProblems.join('\n  ')}\n`);
    process.exit(2);
  }
  // The state dir (image cache with setuid layers, launcher state) is reachable by root only.
  await exitOnConfigError(prepareStateDir(env.SBX_STATE_DIR, logger));

  // The launcher refuses openFiles above this process's hard RLIMIT_NOFILE: raise it or refuse to start.
  try {
    ensureOpenFilesLimit(env.SBX_MAX_OPEN_FILES);
  } catch (e) {
    process.stderr.write(`sbx-worker: ${(e as Error).message}\n`);
    process.exit(2);
  }

  const keys = new RedisKeys(env.SBX_REDIS_PREFIX);
  const redis = connectRedis(env, 'worker', { waitWhileDown: true }); // a job's records wait out a Redis restart
  const sub = connectRedis(env, 'worker-sub');
  const bullConnection = connectRedis(env, 'worker-queue', { forBullMQ: true });
  for (const c of [redis, sub, bullConnection]) c.on('error', (err) => logger.warn({ err: err.message }, 'redis connection error'));
  // BullMQ's queues (webhooks, requeues) go on bullConnection: its scripts on `redis` would make every pipeline() there dear.
  const store = new JobStore(redis, keys, env.SBX_JOB_TTL_SECONDS, secretBoxFromEnv(env), bullConnection); // opens jobs' registryAuth
  const directory = new WorkerDirectory(redis, keys);
  const heartbeatTtl = env.SBX_HEARTBEAT_MS * 5;

  // An evicting Redis loses jobs silently: refused before this worker registers (exit 2), logged on a later reconnect.
  await guardEvictionPolicy(redis, logger, 'sbx-worker', env.SBX_HEARTBEAT_MS);
  const previous = await directory.get(workerId);
  if (previous && !isCrashedPredecessor(previous)) {
    logger.fatal({ workerId, host: previous.host, pid: previous.pid }, 'another live worker already uses this id');
    process.stderr.write(`sbx-worker: a live worker (${previous.host} pid ${previous.pid}) already uses the id ${workerId}; give each worker its own SBX_WORKER_ID\n`);
    process.exit(2);
  }

  const registry = createRegistry('worker', { worker: workerId });
  const metrics = workerMetrics(registry);
  // Listening before this worker registers or takes a job: a port it cannot have stops the start (exit 2).
  const metricsServer = await exitOnConfigError(startMetricsServer(env.SBX_WORKER_METRICS_PORT, env.SBX_WORKER_METRICS_HOST, registry, logger));
  // Every job this process finishes (runs, janitor's worker_lost), by status and tenant.
  store.onFinished((doc, tenant) => countFinished(metrics, doc, tenant));
  const lostJobs = lostJobRecovery(redis, keys, env.SBX_LOST_JOB_REQUEUES, bullConnection); // not started yet: queued again
  // The workers' own queues (placement), for the janitor's removal of a lost worker's and ours at stop.
  const hostQueues = new HostQueues(bullConnection, redis, keys, env.SBX_PLACEMENT_MAX_WAIT_MS);
  const janitor = new Janitor(redis, keys, store, directory, logger, lostJobs, metrics, hostQueues);
  // The host uids of this worker's slots, claimed on this host (no other worker's jobs run as them).
  const slotCount = env.SBX_WORKER_SLOTS ?? defaultSlotCount();
  const uids = await exitOnConfigError(claimUidRange({ base: env.SBX_UID_BASE, slots: slotCount, workerId }));
  const launchOptions: LaunchOptions = {
    cgroupParent, stateDir: `${env.SBX_STATE_DIR}/launcher`, uidBase: uids.base,
    parentLimits: { memoryBytes: env.SBX_JOBS_MEMORY_BYTES, pids: env.SBX_JOBS_PIDS },
    fileLocks: env.SBX_JOB_FILE_LOCKS, coreScheduling: env.SBX_CORE_SCHEDULING,
    poolMinIdle: env.SBX_POOL_MIN_IDLE_PERCENT / 100,
  };
  // P29: under global memory pressure the kernel kills jobs (oom_score_adj 1000) long before us.
  if (!protectSelf()) logger.info('cannot lower the worker\'s own oom_score_adj (no CAP_SYS_RESOURCE); jobs still go first (1000)');
  const swept = await sweep(launchOptions);
  if (swept.cgroups || swept.processes) logger.warn({ ...swept }, 'removed leftovers of a crashed worker');
  // Redis full (OOM under noeviction) or loading at start: the start's writes wait for room (logged
  // once) instead of the worker exiting 1 with a stack trace, and being restarted into the same.
  let startRefused = false;
  const waitingAtStart: NotNowListener = (err) => {
    if (!startRefused) logger.warn({ reply: replyCode(err), err: err.message }, 'Redis refuses writes for now (full under noeviction, loading, …): this worker waits for it to take them before it starts');
    startRefused = true;
  };
  await untilRedisTakes(() => janitor.finishJobsOf(workerId), { onRefused: waitingAtStart });
  // The subtrees of other workers under the same parent that are gone for good (SIGKILLed, never back
  // under their id): nobody else sweeps them. Again at each janitor pass (one may die any time).
  const sweepGoneWorkers = () => removeGoneWorkerCgroups(env.SBX_CGROUP_PARENT, cgroupName, () => liveWorkerCgroupNames(redis, keys)).then(
    (r) => {
      if (r.removed.length) logger.warn({ workers: r.removed }, 'removed the cgroup subtrees of workers gone for good');
      if (r.left.length) logger.debug({ workers: r.left }, 'cgroup subtrees of workers not live left: processes or groups not sbx\'s in them');
    },
    (err: Error) => logger.warn({ err: err.message }, 'removing the cgroup subtrees of gone workers failed'),
  );
  await sweepGoneWorkers();

  const slots = new ObservedSlotPool(slotCount);
  // Placement: take a job only when a slot and its memory (SBX_JOBS_MEMORY_BYTES) fit (worker/src/placement).
  const capacity = new HostCapacity(slots, env.SBX_JOBS_MEMORY_BYTES, env.SBX_PULL_CONCURRENCY);
  metrics.slotsTotal.set(slots.total);
  metrics.slotsFree.source = () => slots.available;
  const images = new ImageStore({
    root: `${env.SBX_STATE_DIR}/images`,
    logger: logger.child({ component: 'images' }),
    insecureRegistries: env.SBX_INSECURE_REGISTRIES,
    tls: registryTls,
    mirrors: env.SBX_REGISTRY_MIRRORS,
    maxCacheBytes: env.SBX_IMAGE_CACHE_BYTES,
    minFreeFraction: env.SBX_IMAGE_CACHE_MIN_FREE_PERCENT / 100,
    maxReferences: env.SBX_IMAGE_CACHE_REFERENCES || undefined,
    // Per registry host, as read at start (a null-prototype object: a registry named like a property of Object's finds nothing).
    ...(dockerCredentials ? { credentials: Object.assign(Object.create(null) as Record<string, RegistryCredentials>, Object.fromEntries(dockerCredentials)) } : {}),
    egressAllow: env.SBX_EGRESS_ALLOW,
    pullConcurrency: env.SBX_PULL_CONCURRENCY,
    pullTimeoutMs: env.SBX_PULL_TIMEOUT_MS,
    onEvicted: (reason, count) => metrics.cacheEvictions.inc({ reason }, count),
    onPullsWaiting: (images) => capacity.setPullsWaiting(images), // those hold no pull permit: the intake gate does not count them
    stall: { stallMs: env.SBX_PULL_STALL_MS, stallBytes: env.SBX_PULL_STALL_BYTES },
  });
  await images.warmUp(); // the unpack threads start now, not on the first pull
  const tenantCredentials = new TenantCredentials(env.SBX_TENANT_DOCKER_CONFIG_DIR);
  const runner = new JobRunner({ workerId, launchOptions, store, recovery: lostJobs, limits: config.limits, images: observeImages(images, capacity), directory, slots, logger, metrics, tenantCredentials, pullAlwaysFreshMs: env.SBX_PULL_ALWAYS_FRESH_MS, liveUsageMs: env.SBX_LIVE_USAGE_MS, jobEgress: env.SBX_JOB_EGRESS ? { allow: env.SBX_JOB_EGRESS_ALLOW, ports: env.SBX_JOB_EGRESS_PORTS, maxConnections: env.SBX_JOB_EGRESS_CONNECTIONS, maxBytes: env.SBX_JOB_EGRESS_BYTES || null, maxRefusals: env.SBX_JOB_EGRESS_REFUSALS || null } : null, ...(env.SBX_RECEIPT_KEY_FILE ? { receiptKey: env.SBX_RECEIPT_KEY_FILE } : {}) });
  const feeder = new JobFeeder({
    workerId, connection: bullConnection, redis, keys, store, images, runner, capacity, registry, logger: logger.child({ component: 'placement' }),
    cacheAware: env.SBX_PLACEMENT_CACHE_AWARE, maxWaitMs: env.SBX_PLACEMENT_MAX_WAIT_MS, liveMs: heartbeatTtl,
  });

  const startedAt = new Date().toISOString();
  const beat = async () => {
    const cached = await images.list().catch(() => []);
    // What the cache holds on disk: each shared layer once (the images' sizes count it per image).
    const cachedBytes = await images.cacheBytes().catch(() => cached.reduce((n, i) => n + i.sizeBytes, 0));
    metrics.cacheBytes.set(cachedBytes);
    const info: WorkerInfo = {
      id: workerId, host: os.hostname(), pid: process.pid, slotsTotal: slots.total, slotsFree: slots.available,
      runningJobs: runner.runningIds, cachedBytes, images: cached,
      cgroup: host.cgroup, startedAt, lastHeartbeat: new Date().toISOString(),
    };
    const landed = await directory.heartbeat(info, heartbeatTtl);
    if (landed === 'kept') {
      // Redis full: alive as we were (the entry's TTL renewed); our room and images are published once it has room again.
      if (!redisFull) logger.warn({ reply: 'OOM' }, 'Redis is full (maxmemory under noeviction) and refuses writes: this worker\'s heartbeat is kept alive by renewing its TTL, its running jobs go on and their output and ends wait for room; no new job is taken until then');
      redisFull = true;
    } else {
      if (redisFull) logger.warn('Redis takes writes again: heartbeats written, jobs taken again');
      redisFull = false;
      await feeder.heartbeat(cached);
    }
    await recheckCancels();
  };
  let redisFull = false;
  // Cancels whose control message never arrived (the subscriber was reconnecting): read from the
  // jobs' records on every heartbeat and whenever the subscriber is connected again.
  const recheckCancels = () => runner.recheckCancels().catch((err: Error) => logger.warn({ err: err.message }, 'reading our jobs\' cancel marks failed'));
  sub.on('ready', () => void recheckCancels());
  await untilRedisTakes(beat, { onRefused: waitingAtStart });
  const heartbeat = setInterval(() => void beat().catch((err) => logger.warn({ err: err.message }, 'heartbeat failed')), env.SBX_HEARTBEAT_MS);
  // Now and then, one worker of the fleet: jobs queued on no queue (an entry lost) are queued again,
  // claimed jobs in no live worker's running set are settled or listed again (unlisted-claims.ts).
  const audit = new QueueAudit({ redis, keys, queue: lostJobs.queue, workerId, everyMs: env.SBX_QUEUE_AUDIT_MS, graceMs: env.SBX_QUEUE_AUDIT_GRACE_MS, logger, requeued: metrics.queueAuditRequeued, jobTtlSeconds: env.SBX_JOB_TTL_SECONDS, activeTtlSeconds: tenantQuotaOptions(config).activeTtlSeconds, store, recovery: lostJobs, metrics });
  const auditor = setInterval(() => {
    void audit.pass().catch((err: Error) => logger.warn({ err: err.message }, 'auditing the active jobs (queued on no queue, claimed in no running set) failed'));
  }, env.SBX_QUEUE_AUDIT_MS);
  const reaper = setInterval(() => {
    void janitor.reapDeadWorkers().catch((err) => logger.warn({ err: err.message }, 'reaping lost workers failed'));
    void sweepGoneWorkers();
    // Our own jobs whose later writes Redis lost (a restart, a failover): settled, as nobody else will.
    void janitor.settleOwnOrphans(workerId, runner.heldIds).catch((err) => logger.warn({ err: err.message }, 'settling our own orphaned jobs failed'));
    void store.requeueLostWebhooks(LOST_WEBHOOK_AFTER_MS).then(
      (n) => n && logger.warn({ webhooks: n }, 'queued webhooks a crash had left unqueued'),
      (err) => logger.warn({ err: err.message }, 'requeueing lost webhooks failed'),
    );
  }, Math.max(heartbeatTtl, 5000));

  await listenForControl(sub, keys, logger, (m) => {
    if (m.type === 'cancel') runner.cancel(m.id, m.stop);
    else if (m.type === 'pull') images.acquire(m.image, { policy: 'always' }).then((i) => i.release(), (err) => logger.warn({ image: m.image, err: err.message }, 'pre-pull failed'));
    else if (m.type === 'evict') images.evict(m.digest).then((r) => r.result === 'in_use' && logger.info({ digest: m.digest }, 'not evicted yet: a running job uses it; evicted once it is released'), (err) => logger.warn({ digest: m.digest, err: err.message }, 'evict failed'));
  });

  // The shared queue and this worker's own (jobs handed to it), taken by hand when a job fits here;
  // cache-aware hand-offs unless SBX_PLACEMENT_CACHE_AWARE=false (worker/src/placement).
  await feeder.start(waitingAtStart);
  watchRedis({ env, keys, workerId, jobs: runner, queue: feeder, logger, metrics }); // cut off from Redis past the heartbeat limit: kill our jobs, pause
  // A Cluster or Sentinels slower to fail over than that limit: said now, not at the first failover.
  void readFailoverDetection(redis, env).then((d) => {
    const warning = d && failoverTimingWarning(d, env.SBX_HEARTBEAT_MS);
    if (warning) logger.warn({ [d.setting]: d.ms, heartbeatLimitMs: heartbeatTtl }, warning);
  });

  // Webhooks of finished jobs (a job's callbackUrl), whoever finished them.
  const webhooks = startWebhookWorker({ connection: bullConnection, keys, store, env, logger: logger.child({ component: 'webhooks' }), metrics });
  logger.info({ workerId, slots: slots.total, cgroup: host.cgroup, cgroupParent, hostUids: `${uids.base}-${uids.end - 1}` }, 'sbx worker ready');

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal, running: runner.runningIds.length }, 'shutting down');
    // Jobs whose command has not started here go back to the queue now, for another worker.
    const handedBack = runner.handBackUnstarted();
    if (handedBack) logger.info({ jobs: handedBack }, 'handing jobs not started here back to the queue');
    const grace = setTimeout(() => runner.stopAll(), signal === 'SIGINT' ? 0 : SHUTDOWN_GRACE_MS);
    // If Redis is unreachable the queue cannot close cleanly: never hang on the way out.
    setTimeout(() => {
      logger.error('shutdown did not finish in time; exiting');
      runner.stopAll();
      process.exit(1);
    }, SHUTDOWN_GRACE_MS + 5000).unref();
    await feeder.close();
    await webhooks.close();
    await store.close();
    await lostJobs.close();
    clearTimeout(grace);
    clearInterval(heartbeat);
    clearInterval(reaper);
    clearInterval(auditor);
    await directory.remove(workerId).catch(() => {});
    // Our own queue, once more now that we are out of the directory (feeder.close() emptied and removed
    // it; a job placed here meanwhile goes back to the shared queue): no key of it stays behind.
    await hostQueues.retire(workerId).catch((err: Error) => logger.warn({ err: err.message }, 'removing our own queue failed; the hand-off sweep sends its jobs on'));
    await hostQueues.close().catch(() => {});
    closePool(); // the launcher's pre-made setups (their groups are in cgroupParent)
    removeEmptyCgroupPath(cgroupParent);
    await images.close();
    metricsServer?.close();
    for (const c of [redis, sub, bullConnection]) c.disconnect();
    uids.release();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

/** A heartbeat left by a process of this host that no longer exists: we are its restart. */
function isCrashedPredecessor(info: WorkerInfo): boolean {
  return info.host === os.hostname() && !processAlive(info.pid);
}

function loadConfigOrExit(): Config {
  try {
    return loadConfig();
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`sbx-worker: ${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
}

/** A ConfigError found after start-up checks: listed, then exit 2, like loadConfigOrExit(). */
async function exitOnConfigError<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`sbx-worker: ${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
}


/**
 * The worker's /metrics on SBX_WORKER_METRICS_HOST:SBX_WORKER_METRICS_PORT, listening when the
 * promise resolves; a port it cannot listen on (in use, not allowed) is a ConfigError naming the variable.
 */
async function startMetricsServer(port: number | undefined, host: string, registry: ReturnType<typeof createRegistry>, logger: Logger): Promise<Server | null> {
  if (port === undefined) return null;
  const onLoopback = isLoopbackHost(host);
  const server = createServer((req, res) => {
    // Only requests addressed to it: not a web page's by DNS rebinding (P64), which names its own
    // domain. On loopback, a loopback name; listening elsewhere (a pod's address), an IP address too.
    const asked = req.headers.host;
    if (asked !== undefined && !namesLoopback(asked) && (onLoopback || !namesAnAddress(asked))) {
      const named = onLoopback ? 'Host 127.0.0.1, localhost or [::1]' : 'Host an IP address, or localhost';
      res.writeHead(403, { 'Content-Type': 'text/plain' }).end(`the worker answers only requests addressed to this machine (${named})\n`);
    } else if (req.url === '/metrics') {
      void registry.metrics().then((text) => res.writeHead(200, { 'Content-Type': registry.contentType }).end(text));
    } else if (req.url === '/healthz') {
      res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"status":"ok"}');
    } else {
      res.writeHead(404).end();
    }
  });
  const at = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  await new Promise<void>((resolve, reject) => {
    const refused = (err: NodeJS.ErrnoException) => {
      const why = err.code === 'EADDRINUSE' ? 'the port is in use (EADDRINUSE); free it or choose another (0 = a free port)'
        : err.code === 'EACCES' ? 'not allowed (EACCES): a port below 1024 needs CAP_NET_BIND_SERVICE'
          : err.code === 'EADDRNOTAVAIL' ? `${host} is not an address of this machine (EADDRNOTAVAIL): see SBX_WORKER_METRICS_HOST`
            : `${err.code ?? err.message}`;
      reject(new ConfigError([`SBX_WORKER_METRICS_PORT=${JSON.stringify(String(port))}: cannot listen on ${at}: ${why}`]));
    };
    server.once('error', refused);
    server.listen(port, host, () => {
      server.off('error', refused);
      resolve();
    });
  });
  // Once listening, a failure of the server is logged: the jobs go on.
  server.on('error', (err) => logger.error({ err: err.message }, 'worker metrics server error'));
  // Port 0 = a free port, logged (as `port`).
  logger.info({ host, port: (server.address() as { port: number }).port }, 'worker metrics listening');
  return server;
}

main().catch((err) => {
  process.stderr.write(`sbx-worker: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
