import type { Registry } from 'prom-client';
import type { ApiRole, Config, TenantQuota } from '../../core/src/config.ts';
import type { JobQueue } from '../../core/src/job-queue.ts';
import type { JobStore } from '../../core/src/job-store.ts';
import type { Logger } from '../../core/src/logger.ts';
import type { ApiMetrics } from '../../core/src/metrics.ts';
import type { RedisClient } from '../../core/src/redis.ts';
import type { RedisKeys } from '../../core/src/redis-keys.ts';
import type { WorkerDirectory } from '../../core/src/worker-directory.ts';
import type { JobEventsHub } from './job-events-hub.ts';
import type { SubmitPlacement } from './submit-placement.ts';
import type { TenantPlaces } from './tenant-places.ts';

/** Everything the HTTP app needs, built by main.ts (or a test) and passed to createApp. */
export interface AppDeps {
  config: Config;
  logger: Logger;
  redis: RedisClient;
  keys: RedisKeys;
  store: JobStore;
  queue: JobQueue;
  /** Where an accepted job is queued: a host's own queue (it holds the image, has room) or the shared one. */
  placement: SubmitPlacement;
  hub: JobEventsHub;
  /** The event streams and attach sockets each tenant holds open on this process (quota `streams`). */
  streams: TenantPlaces;
  /** The requests each tenant holds open on this process, until their answers are written (quota `requests`). */
  requests: TenantPlaces;
  workers: WorkerDirectory;
  registry: Registry;
  metrics: ApiMetrics;
  /**
   * Aborted when the process stops (SIGTERM, a rolling restart): `?wait=true` requests answer 202
   * with the job as it stands, event streams end (their clients resume elsewhere with
   * Last-Event-ID), so no answer is cut off.
   */
  shutdown?: AbortSignal;
  /**
   * Whether Redis's maxmemory-policy was checked at start (core/src/redis-eviction.ts): until then
   * /readyz answers 503, so nothing sends this process work before it may refuse to start. Absent: ready.
   */
  redisChecked?: () => boolean;
}

/**
 * Hono context variables set by middleware: the caller's tenant, its role (anonymous mode = admin)
 * and its quota (null = no limits).
 */
export interface AppEnv {
  Variables: { tenant: string; role: ApiRole; quota: TenantQuota | null; requestId: string };
}
