/**
 * Chaos, issue 14: a host's network is cut (its link down) while it runs a job. The job ends
 * `error/worker_lost` once the host's heartbeat has expired (another host's janitor finishes it:
 * the cut host cannot write anything); the cut host kills the job's processes itself because it
 * cannot reach Redis (worker/src/redis-watchdog.ts), and once the link is back it rejoins cleanly:
 * heartbeats again, takes new jobs, nothing of the killed job left (cgroups, mounts, processes).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { useHosts } from '../harness/hosts.ts';
import { waitUntil } from '../harness/redis.ts';

const HEARTBEAT_MS = 200; // heartbeat limit (key TTL) = 5 × this = 1 s
const fleet = useHosts({ hosts: 3, env: { SBX_HEARTBEAT_MS: String(HEARTBEAT_MS), SBX_LOG_LEVEL: 'info' } });

/** pid, command line and memory cgroup of each process, for a failure message. */
function describe(pids: number[]): string {
  const read = (f: string) => {
    try {
      return readFileSync(f, 'utf8');
    } catch {
      return '?';
    }
  };
  return pids.map((p) => `${p} ${read(`/proc/${p}/cmdline`).replaceAll('\0', ' ').trim()} (${read(`/proc/${p}/cgroup`).split('\n').find((l) => l.includes(':memory:')) ?? ''})`).join('; ');
}

async function listedWorkers(): Promise<Array<{ id: string; pid: number }>> {
  return (await fleet.api.request<{ items: Array<{ id: string; pid: number }> }>('GET', '/v1/workers')).body.items;
}

test('a host cut off mid-job: the job ends worker_lost, the host kills it itself, and rejoins cleanly once its link is back', async () => {
  const sub = await fleet.api.submit({ image: fleet.stack.images.busybox, command: ['sh', '-c', 'echo up; exec sleep 600'] });
  const id = sub.body.id;
  await fleet.api.events(id, { until: (e) => e.event === 'stdout' });
  const running = (await fleet.api.get(id)).body;
  assert.equal(running.status, 'running');
  const host = fleet.hostOf(running.worker!);
  const others = fleet.hosts.filter((h) => h !== host);
  const mountsBefore = host.mounts();
  assert.ok(host.jobProcesses().length > 0, 'the job runs in the host\'s cgroups (the check below can see it)');
  assert.ok(host.jobCgroups().length > 0, 'the job has cgroups below the host\'s worker group');

  await host.cut();
  try {
    // The host notices it cannot reach Redis and kills its job, with the link still down.
    await waitUntil(async () => host.jobProcesses().length === 0, 20_000, `the cut-off host ${host.name} to kill its job's processes`).catch((e: Error) => {
      throw new Error(`${e.message}; still there: ${describe(host.jobProcesses())}; its log:\n${host.worker!.log().slice(-4000)}`);
    });
    // Another host's janitor finishes the job (the cut host cannot write), once the heartbeat expired.
    const doc = await fleet.api.waitFinished(id, 30_000);
    assert.equal(doc.status, 'error');
    assert.equal(doc.error?.code, 'worker_lost');
    assert.ok(!(await listedWorkers()).some((w) => w.id === host.workerId), 'the cut host left the worker list');
    assert.match(host.worker!.log(), /cannot reach Redis/);
  } finally {
    await host.restore();
  }

  // It rejoins: the same process heartbeats again…
  await waitUntil(async () => (await listedWorkers()).some((w) => w.id === host.workerId && w.pid === host.worker!.child.pid), 60_000, `${host.name} to heartbeat again`);
  assert.equal(host.worker!.child.exitCode, null, 'the host\'s worker kept running');
  await waitUntil(async () => /Redis reachable again/.test(host.worker!.log()), 30_000, `${host.name} to say it takes jobs again`);
  // …with nothing of the killed job left…
  await waitUntil(async () => host.jobCgroups().length === 0, 10_000, `${host.name}'s job cgroups to be removed`);
  assert.deepEqual(host.jobProcesses(), []);
  assert.deepEqual(host.mounts(), mountsBefore);
  // …and takes new jobs (the only host left running).
  for (const h of others) await h.stop('SIGTERM');
  const next = await fleet.api.submit({ image: fleet.stack.images.busybox, command: ['echo', 'back'] }, { wait: true });
  const done = await fleet.api.waitFinished(next.body.id, 30_000);
  assert.equal(done.status, 'succeeded', `${JSON.stringify(done.error)}\n${host.worker!.log().slice(-6000)}`);
  assert.equal(done.worker, host.workerId);
  assert.equal(done.output?.stdout, 'back\n');
});
