/**
 * A worker that may create no more processes (its cgroup's pids.max reached), on the real stack:
 * the worker runs in a pids cgroup of this file's own, whose limit is set below what it uses, then
 * lifted. Its launcher's clone fails with EAGAIN: the job ends `error` / `host_exhausted` saying so
 * (before, `internal`), and once the limit is lifted the worker runs jobs again by itself.
 *
 * cgroup v1 only (a pids hierarchy at /sys/fs/cgroup/pids): there the launcher's clone is charged to
 * the worker's own cgroup before the child moves to the job's. On cgroup v2 the launcher clones into
 * the job's cgroup (CLONE_INTO_CGROUP), so the worker's own pids limit does not reach a job's start.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { test } from 'node:test';
import { busyboxImage } from '../fixtures/build-images.ts';
import { buildLayer, pushImage } from '../fixtures/oci-builder.ts';
import { SbxClient } from '../harness/api-client.ts';
import type { Job } from '../../client/src/index.ts';
import { waitUntil } from '../harness/redis.ts';
import { spawnSbx, startStack } from '../harness/stack.ts';

const PIDS = '/sys/fs/cgroup/pids';

test('a job started while the worker\'s pids cgroup is full ends host_exhausted; once the limit is lifted, jobs run again', { timeout: 60_000, skip: existsSync(`${PIDS}/cgroup.procs`) ? false : 'no cgroup v1 pids hierarchy' }, async (t) => {
  const cgroup = `${PIDS}/sbx-test-worker-pids-${process.pid}`;
  mkdirSync(cgroup);
  const stack = await startStack({ workers: 0 });
  t.after(async () => {
    writeFileSync(`${cgroup}/pids.max`, 'max');
    await stack.stop();
    rmdirSync(cgroup);
  });
  const worker = spawnSbx('worker-pids', 'worker/src/main.ts', { ...stack.env, SBX_WORKER_ID: `pids-${process.pid}/1`, SBX_LOG_LEVEL: 'info' }, undefined, ['sh', '-c', `echo $$ > ${cgroup}/cgroup.procs && exec "$@"`, 'sh']);
  stack.workers.push(worker);
  const api = new SbxClient(stack.apiUrl);
  await waitUntil(async () => {
    if (worker.child.exitCode !== null) throw new Error(`worker exited:\n${worker.log()}`);
    return (await api.request<{ items: Array<{ id: string }> }>('GET', '/v1/workers')).body.items.some((w) => w.id === `pids-${process.pid}/1`);
  }, 30_000, 'the worker to register');
  /** The job once it ended; throws at once if the worker exited meanwhile. */
  const ended = async (id: string): Promise<Job> => {
    let job: Job | null = null;
    await waitUntil(async () => {
      if (worker.child.exitCode !== null || worker.child.signalCode !== null) throw new Error(`the worker exited:\n${worker.log().slice(-2000)}`);
      job = (await api.get(id, true)).body;
      return !['queued', 'pulling', 'running'].includes(job.status);
    }, 20_000, `job ${id} to end`);
    return job!;
  };
  // An image no job ran yet: no setup made ahead for it, its job clones when it starts.
  await pushImage(`http://${stack.registry.host}`, 'pids/fresh', 'latest', await busyboxImage({ extraLayers: [await buildLayer([{ type: 'file', path: 'fresh', content: 'x' }])] }));
  const fresh = `${stack.registry.host}/pids/fresh:latest`;

  // The worker's first job ends while nothing new may start: its teardown hands the job's mount
  // namespace to a janitor thread, and the next job's setup is made ahead on a thread, the first
  // time each. Before, a thread that could not be made ended the worker ("terminate called after
  // throwing an instance of 'std::system_error'", Resource temporarily unavailable): every later
  // job stayed queued.
  const first = await api.submit({ image: stack.images.busybox, command: ['sh', '-c', 'sleep 1; echo first'] });
  await waitUntil(async () => (await api.get(first.body.id)).body.status === 'running', 20_000, 'the first job to run');
  writeFileSync(`${cgroup}/pids.max`, '1'); // below what the worker has: its threads stay, nothing new may start
  let starved: Job;
  let firstDone: Job;
  try {
    firstDone = await ended(first.body.id);
    starved = await ended((await api.submit({ image: fresh, command: ['true'] })).body.id);
  } finally {
    writeFileSync(`${cgroup}/pids.max`, 'max');
  }
  assert.equal(firstDone.status, 'succeeded', JSON.stringify(firstDone.error));
  assert.equal(firstDone.output?.stdout, 'first\n');
  assert.equal(starved.status, 'error', JSON.stringify(starved));
  assert.equal(starved.error?.code, 'host_exhausted', JSON.stringify(starved.error));
  assert.match(starved.error!.message, /ran out of processes \(EAGAIN: a pids limit/);

  const after = (await api.submit({ image: fresh, command: ['cat', '/fresh'] }, { wait: true })).body;
  assert.equal(after.status, 'succeeded', JSON.stringify(after.error));
  assert.equal(after.output?.stdout, 'x');
});
