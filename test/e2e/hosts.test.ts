/**
 * Three worker hosts on this machine, each in its own network namespace with its own hostname,
 * image cache and cgroup subtree, reaching Redis and the registry only over its link to a private
 * bridge (test/harness/hosts.ts). Jobs submitted through the API run on all three, each host pulls
 * into its own cache, and the output streams back to the client.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readlinkSync } from 'node:fs';
import { test } from 'node:test';
import { useHosts } from '../harness/hosts.ts';
import { waitUntil } from '../harness/redis.ts';

// One slot and one pull at a time: a host takes at most 2 jobs from the queue, so 6 jobs that
// hold on must occupy all three hosts (pigeonhole), whatever order they take them in.
const fleet = useHosts({ hosts: 3, hostEnv: () => ({ SBX_WORKER_SLOTS: '1', SBX_PULL_CONCURRENCY: '1' }) });

/** Whether a TCP connection to address:port opens from inside the host's network namespace. */
function reachableFrom(netnsPath: string, address: string, port: number): boolean {
  try {
    execFileSync('nsenter', [`--net=${netnsPath}`, '--', 'timeout', '3', 'bash', '-c', `exec 3<>/dev/tcp/${address}/${port}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

test('each host has its own network namespace and hostname, and reaches Redis and the registry only over its link', async () => {
  const ours = readlinkSync('/proc/self/ns/net');
  const nets = fleet.hosts.map((h) => readlinkSync(`/proc/${h.worker!.child.pid}/ns/net`));
  assert.equal(new Set([ours, ...nets]).size, 4, 'every worker in a network namespace of its own');
  const listed = (await fleet.api.request<{ items: Array<{ id: string; host: string }> }>('GET', '/v1/workers')).body.items;
  assert.deepEqual(listed.map((w) => [w.id, w.host]).sort(), fleet.hosts.map((h) => [h.workerId, h.name]).sort());
  const redisPort = Number(new URL(fleet.hosts[0]!.env.SBX_REDIS_URL!).port);
  const registryPort = Number(fleet.stack.registry.host.split(':')[1]);
  const apiPort = Number(new URL(fleet.stack.apiUrl).port);
  for (const h of fleet.hosts) {
    assert.ok(reachableFrom(h.link.netnsPath, fleet.net.gateway, redisPort), `${h.name} reaches Redis at the bridge`);
    assert.ok(reachableFrom(h.link.netnsPath, fleet.net.gateway, registryPort), `${h.name} reaches the registry at the bridge`);
    // Its 127.0.0.1 is its own: this machine's loopback servers (the API) are out of its reach.
    assert.equal(reachableFrom(h.link.netnsPath, '127.0.0.1', apiPort), false, `${h.name} reaches this machine's loopback`);
  }
});

test('jobs run on all three hosts, each pulling into its own cache, and their output streams back', async () => {
  const marker = String(Date.now() % 1_000_000);
  const subs = await Promise.all(Array.from({ length: 6 }, (_, i) => fleet.api.submit({ image: fleet.stack.images.busybox, command: ['sh', '-c', `echo started ${i}; exec sleep 60${marker}`] })));
  const ids = subs.map((s) => s.body.id);
  try {
    let workers = new Set<string>();
    await waitUntil(async () => {
      const docs = await Promise.all(ids.map(async (id) => (await fleet.api.get(id)).body));
      workers = new Set(docs.map((d) => d.worker).filter((w): w is string => !!w));
      return workers.size === 3;
    }, 60_000, 'jobs on all three hosts');
    assert.deepEqual([...workers].sort(), fleet.hosts.map((h) => h.workerId).sort());
    // One job runs on each host; its first line arrives over SSE while it is still running.
    const running = (await Promise.all(ids.map(async (id) => (await fleet.api.get(id)).body))).filter((d) => d.status === 'running');
    await waitUntil(async () => {
      const docs = await Promise.all(ids.map(async (id) => (await fleet.api.get(id)).body));
      running.splice(0, running.length, ...docs.filter((d) => d.status === 'running'));
      return new Set(running.map((d) => d.worker)).size === 3;
    }, 60_000, 'a running job on every host');
    for (const doc of running) {
      const events = await fleet.api.events(doc.id, { until: (e) => e.event === 'stdout' });
      const i = ids.indexOf(doc.id);
      assert.equal(JSON.parse(events.at(-1)!.data).data, `started ${i}\n`);
      assert.equal((await fleet.api.get(doc.id)).body.status, 'running', 'output streamed while the job runs');
    }
  } finally {
    await Promise.all(ids.map((id) => fleet.api.request('DELETE', `/v1/jobs/${id}`)));
  }
  // Each host pulled the image into its own cache (a worker reports its cache at its next heartbeat).
  const cachedBytes = async (workerId: string) =>
    (await fleet.api.request<{ items: Array<{ id: string; cachedBytes: number }> }>('GET', '/v1/workers')).body.items.find((w) => w.id === workerId)?.cachedBytes ?? 0;
  for (const h of fleet.hosts) await waitUntil(async () => (await cachedBytes(h.workerId)) > 0, 20_000, `${h.name} to list the image in its own cache`);
  // And finished jobs succeed with their output, wherever they ran.
  const done = await Promise.all(Array.from({ length: 6 }, (_, i) => fleet.api.submit({ image: fleet.stack.images.busybox, command: ['echo', `done ${i}`] }, { wait: true })));
  for (const [i, d] of done.entries()) {
    const doc = await fleet.api.waitFinished(d.body.id);
    assert.equal(doc.status, 'succeeded', JSON.stringify(doc.error));
    assert.equal(doc.output?.stdout, `done ${i}\n`);
  }
});

test('every host keeps its job cgroups and mounts to itself, and none is left once its jobs ended', async () => {
  for (const h of fleet.hosts) {
    await waitUntil(async () => h.jobCgroups().length === 0, 10_000, `${h.name}'s job cgroups to be removed`).catch(() => {});
    assert.deepEqual(h.jobCgroups(), [], `${h.name}'s job cgroups are removed once its jobs ended`);
    assert.deepEqual(h.mounts(), [], `${h.name} leaves no mount under its state dir`);
    assert.deepEqual(h.jobProcesses(), [], `${h.name} leaves no process in its cgroups`);
    assert.ok(h.processes().includes(h.worker!.child.pid!), `${h.name}'s worker runs in its network namespace`);
  }
});
