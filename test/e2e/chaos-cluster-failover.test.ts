/**
 * Chaos: the Redis Cluster master serving sbx's keys SIGKILLed while jobs are queued, pulling,
 * running and streaming output; its replica promotes itself once the other masters have marked it
 * failed (cluster-node-timeout, 1 s here). `{sbx}` (slot 5007) and `{workers}` (slot 2466) are on
 * the same master in a three-master cluster (both in 0-5460), as are a third of the jobs' records
 * (`{job:<id>}`), so the queues, the fleet's heartbeats and those records all move at once. Clients must follow the slots to the new master. Replication is
 * asynchronous, so the last writes before the kill may be gone on the new master (a job accepted in
 * that instant can be gone: 404, as in the Sentinel test). Every other job must end, and since the
 * failover is within the heartbeat limit, succeed with all its output; none stays non-final; and
 * the stack goes on taking and running jobs on both workers.
 */
import { test } from 'node:test';
import { Redis } from 'ioredis';
import { failoverUnderLoad } from '../harness/failover-under-load.ts';
import { jobsWhereabouts } from '../harness/job-whereabouts.ts';
import type { RunningRedisCluster } from '../harness/redis-cluster.ts';
import { useStack } from '../harness/use-stack.ts';

// A hard failover takes the node timeout (the other masters' verdict) and an election: 2-3 s here.
// The fleet's heartbeats are on that master too, so they miss it: a worker whose heartbeat key
// expires meanwhile (5 heartbeats) counts as lost and kills its jobs (worker/src/redis-watchdog.ts).
// 1 s heartbeats keep the limit (5 s) above the failover, as a deployment must (README, "Redis
// Cluster failover": cluster-node-timeout below 5 × SBX_HEARTBEAT_MS, with room for the election).
const e2e = useStack({ redisCluster: { replicas: 1, nodeTimeoutMs: 1000 }, workers: 2, env: { SBX_WORKER_SLOTS: '4', SBX_HEARTBEAT_MS: '1000', SBX_LOG_LEVEL: process.env.SBX_LOG_LEVEL ?? 'warn' } });

const cluster = () => e2e.stack.redis as RunningRedisCluster;

test('the Cluster master of {sbx} SIGKILLed mid-job: every job finishes whole, none stays non-final, and the stack goes on', { timeout: 90_000 }, async (t) => {
  await failoverUnderLoad(t, { api: e2e.api, stack: e2e.stack, failover: () => cluster().failover('{sbx}'), done: 'killed', whereabouts });
});

/** Where jobs left behind stand in Redis (a job's keys, {sbx}'s and {workers}' may be on any master), and what the processes said of them. */
async function whereabouts(ids: string[]): Promise<string> {
  const { stack } = e2e;
  const logs = Object.fromEntries([stack.api, ...stack.workers].map((p) => [p.name, p.log()]));
  const told: string[] = [];
  for (const master of await cluster().masters()) {
    const [host, port] = master.split(':');
    const client = new Redis(Number(port), host!, { maxRetriesPerRequest: 2 });
    client.on('error', () => {});
    told.push(`master ${master}:\n` + await jobsWhereabouts(client, ids, logs).catch((e: Error) => `where they stand could not be read: ${e.message}`));
    client.disconnect();
  }
  return told.join('\n');
}
