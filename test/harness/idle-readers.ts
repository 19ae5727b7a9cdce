/**
 * Clients that ask an API process for something and never read the answer (P48, P50), and jobs with
 * long outputs for them to ask for: recorded finished in Redis as a worker records them, so no worker
 * has to run.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { JobStore } from '../../core/src/job-store.ts';
import type { JobDocument } from '../../core/src/job-spec.ts';
import { RedisKeys } from '../../core/src/redis-keys.ts';
import { WorkerDirectory } from '../../core/src/worker-directory.ts';
import type { ApiProcess } from './api-process.ts';
import type { RunningRedis } from './redis.ts';

export type OutputChunk = { type: 'stdout' | 'stderr'; data: string };

/** A job of `stack`'s API (submitted with `headers`) that ran on a pretend worker, wrote `chunks` and ended. */
export async function finishedJob(stack: { api: ApiProcess; redis: RunningRedis }, chunks: OutputChunk[], headers: Record<string, string> = {}): Promise<JobDocument> {
  const res = await fetch(`${stack.api.url}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ image: '127.0.0.1:5000/test/busybox:latest', command: ['cat'], limits: { outputBytes: 16 * 2 ** 20 } }) });
  assert.equal(res.status, 202, await res.clone().text());
  const doc = (await res.json()) as JobDocument;
  const redis = stack.redis.client();
  const store = new JobStore(redis, new RedisKeys(), 3600);
  const now = new Date().toISOString();
  await new WorkerDirectory(redis, new RedisKeys()).heartbeat({ id: 'w-test', host: 'test', pid: process.pid, slotsTotal: 1, slotsFree: 0, runningJobs: [doc.id], cachedBytes: 0, images: [], cgroup: '', startedAt: now, lastHeartbeat: now }, 600_000);
  const pulling = { ...doc, status: 'pulling' as const, worker: 'w-test' };
  assert.equal(await store.claim(pulling, false), 'ok');
  assert.equal(await store.transition({ ...pulling, status: 'running' }, ['pulling'], 'status'), 'ok');
  for (let i = 0; i < chunks.length; i += 16) assert.ok(await store.appendOutput(doc.id, 1, chunks.slice(i, i + 16)));
  assert.equal(await store.transition({ ...pulling, status: 'succeeded', exitCode: 0 }, ['running'], 'exit'), 'ok');
  return doc;
}

/** `count` chunks of 32 KiB of output. */
export const outputOf = (count: number): OutputChunk[] => Array.from({ length: count }, () => ({ type: 'stdout' as const, data: `${'x'.repeat(32 * 1024)}\n` }));

/** The resident memory of process `pid`, MiB. */
export const rssMiB = (pid: number): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;

/** Clients that sent one request each and read nothing after the status line. */
export interface IdleReaders {
  sockets: Socket[];
  /** How many answers of each HTTP status came so far. */
  statuses(): Record<string, number>;
  /** Until `n` answers came (or `ms` passed). */
  answered(n: number, ms?: number): Promise<void>;
  close(): void;
}

/**
 * One connection per path, each sending `GET <path>` with `headers` (raw header lines), opened in
 * batches of 100 so the listen backlog never overflows; each keeps its answer's status line and then
 * stops reading.
 */
export async function openIdleReaders(api: ApiProcess, paths: string[], headers = ''): Promise<IdleReaders> {
  const port = Number(new URL(api.url).port);
  const sockets: Socket[] = [];
  const counts: Record<string, number> = {};
  let answers = 0;
  for (let i = 0; i < paths.length; i++) {
    const s = connect(port, '127.0.0.1', () => s.write(`GET ${paths[i]} HTTP/1.1\r\nHost: 127.0.0.1\r\n${headers}\r\n`));
    s.on('error', () => {});
    s.once('data', (d: Buffer) => {
      const status = /^HTTP\/1\.1 (\d{3})/.exec(d.toString('latin1', 0, 12))?.[1] ?? 'other';
      counts[status] = (counts[status] ?? 0) + 1;
      answers++;
      s.pause();
    });
    sockets.push(s);
    if (i % 100 === 99) await new Promise((r) => setTimeout(r, 50));
  }
  return {
    sockets,
    statuses: () => ({ ...counts }),
    async answered(n, ms = 30_000) {
      const until = Date.now() + ms;
      while (answers < n && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    },
    close: () => sockets.forEach((s) => s.destroy()),
  };
}

/** Peak RSS growth of the API over 5 s while one idle reader per path holds its answer; MiB. */
export async function growthUnderIdleReaders(api: ApiProcess, paths: string[], headers = ''): Promise<number> {
  const before = rssMiB(api.pid);
  let peak = before;
  const readers = await openIdleReaders(api, paths, headers);
  try {
    for (let i = 0; i < 10; i++) {
      await new Promise((r) => setTimeout(r, 500));
      peak = Math.max(peak, rssMiB(api.pid));
    }
  } finally {
    readers.close();
  }
  const statuses = readers.statuses();
  process.stdout.write(`# API RSS ${before.toFixed(0)} MiB -> peak ${peak.toFixed(0)} MiB with ${paths.length} clients not reading GET ${paths[0]!.replace(/j_\w+/, '{id}')} (answers ${JSON.stringify(statuses)})\n`);
  // What was measured must be the answers themselves: a refusal holds nothing.
  assert.deepEqual(Object.keys(statuses).filter((s) => s !== '200' && s !== '101'), [], `every idle reader got its answer (200, or 101 for an upgrade): ${JSON.stringify(statuses)}`);
  return peak - before;
}
