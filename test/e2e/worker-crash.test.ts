/**
 * A worker that dies mid-job leaves nothing behind: the job ends error/worker_lost (never `running`
 * forever), its processes die with the worker, and a restarted worker removes its cgroups.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { SbxClient } from '../harness/api-client.ts';
import { waitUntil } from '../harness/redis.ts';
import { startStack, type Stack } from '../harness/stack.ts';
import { cgroupChildren, hierarchies } from '../../worker/src/cgroup-parent.ts';

let stack: Stack;
let api: SbxClient;

before(async () => {
  stack = await startStack({ workers: 0 });
  api = new SbxClient(stack.apiUrl);
});
after(async () => {
  await stack?.stop();
});

/**
 * A job's sleep, in seconds, unique to this run: jobProcesses() looks host-wide, where another copy of
 * the suite may run this test at the same time (a fixed `sleep 3131` of theirs was counted as ours).
 */
const marker = (): string => String(randomInt(1_000_000, 1_000_000_000));

function jobProcesses(marker: string): string[] {
  try {
    return execFileSync('pgrep', ['-a', '-f', marker], { encoding: 'utf8' }).trim().split('\n').filter((l) => l && !l.includes('pgrep'));
  } catch {
    return []; // pgrep exits 1 when nothing matches
  }
}

/** A worker's subtree (its cgroup name) in every v1 hierarchy, or the one v2 tree (/sys/fs/cgroup/memory/… alone was v1's, and on v2 was never there: the checks passed unchecked). */
function workerSubtrees(name: string): string[] {
  return hierarchies().map((h) => join(h, stack.env.SBX_CGROUP_PARENT!, name));
}

async function startRunningJob(marker: string): Promise<string> {
  const sub = await api.submit({ image: stack.images.busybox, command: ['sh', '-c', `echo up; exec sleep ${marker}`] });
  await api.events(sub.body.id, { until: (e) => e.event === 'stdout' });
  assert.equal((await api.get(sub.body.id)).body.status, 'running');
  // The shell prints, then execs sleep: wait for the exec rather than racing it.
  await waitUntil(async () => jobProcesses(`^sleep ${marker}$`).length === 1, 5000, 'the job process to run on the host');
  return sub.body.id;
}

test('a SIGKILLed worker: its job processes die, the restarted worker finishes the job as worker_lost and removes its cgroups', async () => {
  const worker = await stack.startWorker({ SBX_WORKER_ID: 'crashy/1' });
  const sleep = marker();
  const id = await startRunningJob(sleep);
  await worker.kill('SIGKILL');
  await waitUntil(async () => jobProcesses(`^sleep ${sleep}$`).length === 0, 5000, 'the job processes to die with the worker');

  const restarted = await stack.startWorker({ SBX_WORKER_ID: 'crashy/1', SBX_LOG_LEVEL: 'info' });
  const doc = (await api.get(id)).body;
  assert.equal(doc.status, 'error', restarted.log());
  assert.equal(doc.error!.code, 'worker_lost');
  // No group of the crashed worker's (its jobs', its pooled setups') is left, in any v1 hierarchy or the v2 tree: only the restarted one's own idle setups.
  const ownPools = new RegExp(`^pool-${restarted.child.pid}-\\d+$`);
  for (const dir of workerSubtrees('crashy_1')) assert.deepEqual(cgroupChildren(dir).filter((c) => !ownPools.test(c)), [], dir);
  // And the restarted worker runs jobs again.
  const next = await api.submit({ image: stack.images.busybox, command: ['echo', 'back'] }, { wait: true });
  assert.equal(next.body.status, 'succeeded');
});

test('a worker that never comes back: a reader sees worker_lost once its heartbeat expired', async () => {
  const worker = await stack.startWorker({ SBX_WORKER_ID: 'gone/1' });
  // Make sure the job lands on this worker: stop the other one first.
  for (const w of stack.workers) if (w !== worker) await w.kill('SIGTERM');
  const id = await startRunningJob(marker());
  await worker.kill('SIGKILL');
  const doc = await api.waitFinished(id, 15_000);
  assert.equal(doc.status, 'error');
  assert.equal(doc.error!.code, 'worker_lost');
});

test('a worker stopped with SIGTERM exits cleanly and leaves no cgroup of its own', async () => {
  const worker = await stack.startWorker({ SBX_WORKER_ID: 'tidy/1' });
  for (const w of stack.workers) if (w !== worker) await w.kill('SIGTERM');
  const res = await api.submit({ image: stack.images.busybox, command: ['echo', 'ok'] }, { wait: true });
  assert.equal(res.body.status, 'succeeded');
  assert.equal(res.body.worker, 'tidy/1');
  const dirs = workerSubtrees('tidy_1');
  assert.ok(dirs.some((d) => existsSync(d)), 'the worker used its own cgroup subtree');
  await worker.kill('SIGTERM');
  assert.equal(worker.child.exitCode, 0);
  assert.deepEqual(dirs.filter((d) => existsSync(d)), []);
  const workers = (await api.request<{ items: Array<{ id: string }> }>('GET', '/v1/workers')).body.items;
  assert.ok(!workers.some((w) => w.id === 'tidy/1'), 'it left the worker list');
});
