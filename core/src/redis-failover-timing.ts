/**
 * Whether a hard failover of Redis fits in the workers' heartbeat limit. A worker whose heartbeats
 * stop landing for SBX_HEARTBEAT_MS × 5 kills its running jobs (worker/src/redis-watchdog.ts: past
 * that, other workers may settle them as lost). While a killed master waits for its replica to be
 * promoted, no heartbeat lands: Redis first notices it gone (Cluster: cluster-node-timeout, 15 s by
 * default; Sentinel: down-after-milliseconds, 30 s), then elects. With those defaults and sbx's
 * (2 s × 5 = 10 s), every hard failover ended every running job of the fleet `worker_lost`. Read at
 * a worker's start, so the deployment hears of it before a failover does.
 */
import { Redis, type Cluster } from 'ioredis';
import type { Env } from './config.ts';
import { hostPort, type RedisClient } from './redis.ts';

/** What the detection leaves the promotion (an election, the replica's switch): measured 1.2-2.2 s here. */
export const PROMOTION_MARGIN_MS = 2_000;

/** The setting that makes Redis wait before failing over, as the deployment has it. */
export interface FailoverDetection {
  setting: 'cluster-node-timeout' | 'down-after-milliseconds';
  ms: number;
}

/** The detection setting of a Cluster or of the Sentinels; null for a standalone Redis, or when it cannot be read (CONFIG renamed, a Sentinel refusing). */
export async function readFailoverDetection(redis: RedisClient, env: Env): Promise<FailoverDetection | null> {
  try {
    if (env.SBX_REDIS_CLUSTER_NODES?.length) return await clusterNodeTimeout(redis as Cluster);
    if (env.SBX_REDIS_SENTINELS?.length) return await sentinelDownAfter(env);
  } catch {
    return null;
  }
  return null;
}

async function clusterNodeTimeout(cluster: Cluster): Promise<FailoverDetection | null> {
  await cluster.ping(); // the nodes are known once the slots are
  const node = cluster.nodes('master')[0];
  if (!node) return null;
  const [, value] = (await node.config('GET', 'cluster-node-timeout')) as [string, string];
  return { setting: 'cluster-node-timeout', ms: Number(value) };
}

/** down-after-milliseconds as the first Sentinel that answers has it for the master sbx uses. */
async function sentinelDownAfter(env: Env): Promise<FailoverDetection | null> {
  for (const entry of env.SBX_REDIS_SENTINELS!) {
    const sentinel = new Redis({
      ...hostPort(entry), lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, connectTimeout: 2_000,
      username: env.SBX_REDIS_SENTINEL_USERNAME, password: env.SBX_REDIS_SENTINEL_PASSWORD, tls: env.SBX_REDIS_SENTINEL_TLS ? {} : undefined,
    });
    sentinel.on('error', () => {});
    try {
      const fields = (await sentinel.call('SENTINEL', 'MASTER', env.SBX_REDIS_SENTINEL_NAME)) as string[];
      const at = fields.indexOf('down-after-milliseconds');
      if (at >= 0) return { setting: 'down-after-milliseconds', ms: Number(fields[at + 1]) };
    } catch {
      // the next Sentinel
    } finally {
      sentinel.disconnect();
    }
  }
  return null;
}

/** The warning a worker logs when a failover detected after `d` cannot be over within the heartbeat limit; null when it can. */
export function failoverTimingWarning(d: FailoverDetection, heartbeatMs: number): string | null {
  const limitMs = heartbeatMs * 5;
  if (d.ms + PROMOTION_MARGIN_MS <= limitMs) return null;
  // Below a second Redis takes a busy moment for a failure; then only a longer heartbeat fits.
  const lower = limitMs - PROMOTION_MARGIN_MS;
  const raise = Math.ceil((d.ms + PROMOTION_MARGIN_MS) / 5 / 100) * 100;
  const fix = lower >= 1_000 ? `Lower ${d.setting} to ${lower} or less, or raise SBX_HEARTBEAT_MS to ${raise}` : `Raise SBX_HEARTBEAT_MS to ${raise}`;
  return `Redis notices a failed master after ${d.setting} ${d.ms} ms, and promotes its replica about ${PROMOTION_MARGIN_MS} ms later: past this worker's heartbeat limit (SBX_HEARTBEAT_MS ${heartbeatMs} × 5 = ${limitMs} ms), so a hard failover kills every running job (worker_lost). ${fix}`;
}
