/**
 * 200 jobs at once on one 2-core worker: the launcher never blocks Node's event loop (exits are
 * watched through pidfds on libuv), so the API and the worker keep answering while they all run,
 * and every one of them ends cleanly.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { waitUntil } from '../harness/redis.ts';
import { SbxClient } from '../harness/api-client.ts';
import { startStack, startWorkerWithMetrics, type Stack } from '../harness/stack.ts';

const JOBS = 200;
let stack: Stack;
let api: SbxClient;
let metricsUrl: string;

before(async () => {
  stack = await startStack({ workers: 0, env: { SBX_WORKER_SLOTS: String(JOBS) } });
  ({ metricsUrl } = await startWorkerWithMetrics(stack));
  api = new SbxClient(stack.apiUrl);
});
after(async () => {
  await stack?.stop();
});

test(`${JOBS} concurrent jobs run at once while the API and the worker keep answering`, async () => {
  const subs = await Promise.all(Array.from({ length: JOBS }, (_, i) => api.submit({ image: stack.images.busybox, command: ['sh', '-c', `echo start ${i}; sleep 8; echo end ${i}`], limits: { memoryBytes: 16 * 1024 * 1024 } })));
  assert.ok(subs.every((s) => s.status === 202));
  const ids = subs.map((s) => s.body.id);

  // All of them taken by the worker (its heartbeat counts claimed jobs, pulling or running) and
  // then all of them running at the same time (each job document says so).
  await waitUntil(async () => {
    const w = (await api.request<{ items: Array<{ runningJobs: string[] }> }>('GET', '/v1/workers')).body.items[0];
    return (w?.runningJobs.length ?? 0) === JOBS;
  }, 30_000, `${JOBS} jobs claimed at once`);
  await waitUntil(async () => {
    const states = await Promise.all(ids.map(async (id) => (await api.get(id)).body.status));
    return states.every((s) => s === 'running');
  }, 30_000, `${JOBS} jobs running at once`);

  // While they run: the API answers reads and new requests, the worker serves its metrics.
  const probes = [];
  for (let i = 0; i < 20; i++) {
    probes.push(await api.request('GET', '/healthz'));
    const doc = await api.get(ids[i * 10]!);
    assert.equal(doc.status, 200);
    assert.equal(doc.body.status, 'running');
  }
  assert.ok(probes.every((p) => p.status === 200));
  const metrics = await (await fetch(metricsUrl)).text();
  assert.match(metrics, new RegExp(`sbx_worker_slots_busy\\{role="worker",worker="[^"]+"\\} ${JOBS}`));
  const lag = /sbx_process_nodejs_eventloop_lag_p99_seconds\{role="worker"[^}]*\} ([\d.e-]+)/.exec(metrics)?.[1];
  console.log(`worker event-loop lag p99 with ${JOBS} jobs running: ${lag ? (Number(lag) * 1000).toFixed(1) : '?'} ms`);

  const docs = await Promise.all(ids.map((id) => api.waitFinished(id, 60_000)));
  const bad = docs.filter((d) => d.status !== 'succeeded');
  assert.equal(bad.length, 0, JSON.stringify(bad.slice(0, 3)));
  docs.forEach((d, i) => assert.equal(d.output!.stdout, `start ${i}\nend ${i}\n`));
});
