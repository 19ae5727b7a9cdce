/**
 * Chaos: the Sentinel-monitored master SIGKILLed while jobs are queued, pulling, running and
 * streaming output (a crash, not chaos-sentinel-failover.test.ts's orderly SENTINEL FAILOVER). Three
 * Sentinels (quorum 2) notice after down-after-milliseconds (1 s here), agree, elect one of them,
 * which promotes the replica: about 2.3 s in all. Until then every connection to the master is
 * refused and the Sentinels still name it, so every client reconnects to a dead address again and
 * again. Replication is asynchronous: the last writes before the kill may be gone on the new master,
 * so a job accepted in that instant may be gone (404, as in the other failover tests: its record
 * was written, answered 202, and never reached the replica). Every other job must end, and since
 * the failover is well within the heartbeat limit, succeed with all its output; none stays
 * non-final; a submission meanwhile is answered 202 or 503, promptly; and the stack goes on taking
 * and running jobs on both workers.
 */
import { test } from 'node:test';
import { Redis } from 'ioredis';
import { failoverUnderLoad } from '../harness/failover-under-load.ts';
import { jobsWhereabouts } from '../harness/job-whereabouts.ts';
import type { RunningRedisSentinel } from '../harness/redis-sentinel.ts';
import { useStack } from '../harness/use-stack.ts';

// The master's death stops every worker's heartbeat until the promotion: a worker whose heartbeat
// key expires meanwhile (5 heartbeats) counts as lost and kills its jobs (worker/src/redis-watchdog.ts).
// 1 s heartbeats keep that limit (5 s) well above the failover (down-after 1 s, the quorum's
// agreement and the election: ~2.3 s, with two busy loops beside it too) plus a reconnect, as a
// deployment must (README, "Sentinel failover": down-after-milliseconds well below 5 × SBX_HEARTBEAT_MS).
// failover-timeout 3 s: the promoted replica must be seen promoted within it (Sentinel reads its
// INFO every second meanwhile), or the failover is abandoned.
const e2e = useStack({
  redisSentinel: { replicas: 1, sentinels: 3, downAfterMs: 1000, failoverTimeoutMs: 3000 },
  workers: 2,
  env: { SBX_WORKER_SLOTS: '4', SBX_HEARTBEAT_MS: '1000', SBX_LOG_LEVEL: process.env.SBX_LOG_LEVEL ?? 'warn' },
});

test('the Sentinel master SIGKILLed mid-job: every job finishes whole, none stays non-final, and the stack goes on', { timeout: 90_000 }, async (t) => {
  await failoverUnderLoad(t, { api: e2e.api, stack: e2e.stack, failover: () => (e2e.stack.redis as RunningRedisSentinel).failover('kill'), done: 'killed (the Sentinels name the new one)', whereabouts });
});

/** Where jobs left behind stand on the new master, and what the processes said of them. */
async function whereabouts(ids: string[], master: string): Promise<string> {
  const { stack } = e2e;
  const logs = Object.fromEntries([stack.api, ...stack.workers].map((p) => [p.name, p.log()]));
  const [host, port] = master.split(':');
  const client = new Redis(Number(port), host!, { maxRetriesPerRequest: 2 });
  client.on('error', () => {});
  try {
    return await jobsWhereabouts(client, ids, logs).catch((e: Error) => `where they stand could not be read: ${e.message}`);
  } finally {
    client.disconnect();
  }
}
