/**
 * JobRunner.run() when its claim's write and its running-set write do not both succeed (on a Cluster
 * they go to different nodes: the {workers} node may refuse the entry, full under noeviction or
 * without a master for longer than the connection waits, while the job's node takes the claim). The
 * run throws, and the job, claimed for this worker, is left to this worker's janitor: it must no
 * longer count as held here, or settleOwnOrphans skips it for as long as the worker lives and the job
 * stays `pulling` until its record expires.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import pino from 'pino';
import { newJobId } from '../../core/src/job-id.ts';
import { newJobDocument, type JobSpec } from '../../core/src/job-spec.ts';
import { JobStore } from '../../core/src/job-store.ts';
import type { WorkerMetrics } from '../../core/src/metrics.ts';
import { RedisKeys } from '../../core/src/redis-keys.ts';
import { WorkerDirectory } from '../../core/src/worker-directory.ts';
import { useRedis } from '../../test/harness/use-redis.ts';
import { Janitor } from './janitor.ts';
import { JobRunner, type RunnerDeps } from './job-runner.ts';

const redis = useRedis();
const silent = pino({ level: 'silent' });

function spec(id: string): JobSpec {
  return { id, tenant: 't', image: 'x/y:1', command: ['true'], entrypoint: null, env: {}, workdir: null, user: null, stdin: null, limits: { memoryBytes: 1, cpus: 1, pids: 1, timeoutMs: 1000, outputBytes: 1, diskBytes: 1, cpuTimeMs: null, openFiles: 1 }, network: 'none', labels: {}, registryAuth: null, createdAt: new Date().toISOString() } as JobSpec;
}

/** A directory whose running-set writes the {workers} node refuses. */
class RefusingDirectory extends WorkerDirectory {
  override async addRunning(): Promise<void> {
    throw new Error('OOM command not allowed when used memory > \'maxmemory\'.');
  }
}

test('a claim that landed beside a refused running-set entry: the run throws, the job is not held, and the janitor settles it', async () => {
  const keys = new RedisKeys('runner-claim');
  const client = redis.client;
  const store = new JobStore(client, keys, 3600);
  const directory = new RefusingDirectory(client, keys);
  const workerId = 'w/1';
  const runner = new JobRunner({
    workerId, store, directory, logger: silent,
    launchOptions: {} as RunnerDeps['launchOptions'], images: {} as RunnerDeps['images'],
    slots: { available: 1 } as RunnerDeps['slots'], metrics: {} as WorkerMetrics,
  });
  const id = newJobId();
  assert.ok(await store.create(spec(id), newJobDocument(spec(id))));

  await assert.rejects(runner.run(id), /OOM/);
  assert.equal((await store.getDoc(id))?.status, 'pulling', 'the claim landed');
  assert.equal(runner.heldIds.has(id), false, 'no run holds it here any more');

  // Listed in this worker's running set (the entry landed after all, or the queue audit put it back):
  // this worker's own janitor settles it, as it does any job it does not hold.
  await client.sadd(keys.workerJobs(workerId), id);
  const janitor = new Janitor(client, keys, store, directory, silent);
  assert.equal(await janitor.settleOwnOrphans(workerId, runner.heldIds), 1);
  const doc = await store.getDoc(id);
  assert.equal(doc?.status, 'error');
  assert.equal(doc?.error?.code, 'worker_lost');
});
