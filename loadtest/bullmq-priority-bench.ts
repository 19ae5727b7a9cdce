/**
 * Does a BullMQ priority cost throughput? N no-op jobs added (one at a time, as the API does) and
 * drained by a Worker at concurrency 16, without a priority (the wait list) and with the per-tenant
 * priorities sbx gives (the prioritized sorted set), against a private redis-server.
 *   npx tsx loadtest/bullmq-priority-bench.ts [jobs]
 */
import { Queue, Worker } from 'bullmq';
import { startRedis } from '../test/harness/redis.ts';

const N = Number(process.argv[2] ?? 5000);
const redis = await startRedis();
const connection = { host: '127.0.0.1', port: redis.port, maxRetriesPerRequest: null };

async function run(name: string, priority: (i: number) => number | undefined): Promise<void> {
  const queue = new Queue(name, { connection, defaultJobOptions: { removeOnComplete: true, removeOnFail: true } });
  let t = performance.now();
  for (let i = 0; i < N; i++) {
    const p = priority(i);
    await queue.add('run', { i }, { jobId: `j${i}`, ...(p ? { priority: p } : {}) });
  }
  const addMs = performance.now() - t;
  let done = 0;
  t = performance.now();
  let resolve = () => {};
  const finished = new Promise<void>((r) => (resolve = r));
  const worker = new Worker(name, async () => {
    if (++done === N) resolve();
  }, { connection, concurrency: 16 });
  await finished;
  const drainMs = performance.now() - t;
  await worker.close();
  console.log(`${name.padEnd(28)} add ${(N / (addMs / 1000)).toFixed(0).padStart(6)} jobs/s   take+complete ${(N / (drainMs / 1000)).toFixed(0).padStart(6)} jobs/s`);
  await queue.obliterate({ force: true });
  await queue.close();
}

// 50 tenants with backlogs: priorities 1…N/50, as 1 + each tenant's active jobs.
await run('fifo (no priority)', () => undefined);
await run('priority (50 tenants)', (i) => 1 + Math.floor(i / 50));
await run('fifo (no priority), again', () => undefined);
await run('priority (50 tenants), again', (i) => 1 + Math.floor(i / 50));
await redis.stop();
