/**
 * A worker says at start when a hard failover of its Redis (Cluster or Sentinel, as deployed) cannot
 * be over within its heartbeat limit: with Redis's and sbx's defaults every hard failover killed
 * every running job of the fleet (worker_lost), and nothing said so beforehand.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startRedisCluster, type RunningRedisCluster } from '../../test/harness/redis-cluster.ts';
import { startRedisSentinel, type RunningRedisSentinel } from '../../test/harness/redis-sentinel.ts';
import { startRedis, type RunningRedis } from '../../test/harness/redis.ts';
import { loadConfig } from './config.ts';
import { connectRedis } from './redis.ts';
import { failoverTimingWarning, readFailoverDetection } from './redis-failover-timing.ts';

test('the warning: only past the limit (5 heartbeats less the promotion), naming the setting and both ways out', () => {
  const said = failoverTimingWarning({ setting: 'cluster-node-timeout', ms: 15_000 }, 2_000);
  assert.match(said ?? '', /cluster-node-timeout 15000 ms.*SBX_HEARTBEAT_MS 2000 × 5 = 10000 ms.*kills every running job \(worker_lost\)\. Lower cluster-node-timeout to 8000 or less, or raise SBX_HEARTBEAT_MS to 3400$/);
  assert.equal(failoverTimingWarning({ setting: 'cluster-node-timeout', ms: 8_000 }, 2_000), null);
  assert.match(failoverTimingWarning({ setting: 'down-after-milliseconds', ms: 30_000 }, 2_000) ?? '', /down-after-milliseconds 30000 ms.*raise SBX_HEARTBEAT_MS to 6400$/);
  // A limit too short for any node timeout (500 ms heartbeats): only the heartbeat is worth changing.
  assert.match(failoverTimingWarning({ setting: 'cluster-node-timeout', ms: 1_000 }, 500) ?? '', /= 2500 ms\), so a hard failover kills every running job \(worker_lost\)\. Raise SBX_HEARTBEAT_MS to 600$/);
});

describe('read from the deployment', () => {
  let cluster: RunningRedisCluster;
  let sentinel: RunningRedisSentinel;
  let standalone: RunningRedis;
  before(async () => {
    [cluster, sentinel, standalone] = await Promise.all([startRedisCluster(), startRedisSentinel('timing'), startRedis()]);
  });
  after(async () => {
    await Promise.all([cluster?.stop(), sentinel?.stop(), standalone?.stop()]);
  });

  const detectionWith = async (vars: Record<string, string>) => {
    const env = loadConfig(vars).env;
    const redis = connectRedis(env, 'failover-timing-test');
    try {
      return await readFailoverDetection(redis, env);
    } finally {
      redis.disconnect();
    }
  };

  test('a Cluster\'s cluster-node-timeout and the Sentinels\' down-after-milliseconds, as Redis has them by default; nothing for a standalone Redis or a Sentinel that does not answer', async () => {
    assert.deepEqual(await detectionWith({ SBX_REDIS_CLUSTER_NODES: cluster.nodes[0]! }), { setting: 'cluster-node-timeout', ms: 15_000 });
    assert.deepEqual(await detectionWith({ SBX_REDIS_SENTINELS: sentinel.sentinels[0]!, SBX_REDIS_SENTINEL_NAME: 'timing' }), { setting: 'down-after-milliseconds', ms: 30_000 });
    assert.equal(await detectionWith({ SBX_REDIS_URL: standalone.url }), null);
    assert.equal(await detectionWith({ SBX_REDIS_SENTINELS: sentinel.sentinels[0]!, SBX_REDIS_SENTINEL_NAME: 'no-such-master' }), null);
  });
});
