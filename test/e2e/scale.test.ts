/**
 * Scaling out: several workers share one queue through Redis, each runs up to its slots at once,
 * and two API processes serve the same jobs (the API keeps no state of its own).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { SbxClient } from '../harness/api-client.ts';
import { startApi, startStack, type ManagedProcess, type Stack } from '../harness/stack.ts';

let stack: Stack;
let api: SbxClient;
let secondApi: ManagedProcess;
let secondUrl: string;

before(async () => {
  // The two workers share one state dir (one host, one cache, cache-aware placement on): an image
  // either pulled counts as held by both (ImageStore.holds reads the shared index), so jobs spread.
  stack = await startStack({ workers: 2, env: { SBX_WORKER_SLOTS: '2' } });
  api = new SbxClient(stack.apiUrl);
  ({ process: secondApi, url: secondUrl } = await startApi('api-2', stack.env));
});
after(async () => {
  await secondApi?.kill();
  await stack?.stop();
});

test('jobs spread over both workers, each running jobs concurrently in its slots', async () => {
  const subs = await Promise.all(Array.from({ length: 8 }, () => api.submit({ image: stack.images.busybox, command: ['sleep', '1'] })));
  const docs = await Promise.all(subs.map((s) => api.waitFinished(s.body.id, 30_000)));
  assert.ok(docs.every((d) => d.status === 'succeeded'), JSON.stringify(docs.map((d) => (d.error ? { status: d.status, error: d.error, worker: d.worker } : d.status))));
  const workers = new Set(docs.map((d) => d.worker));
  assert.equal(workers.size, 2, `jobs ran on ${[...workers].join(', ')}: ${JSON.stringify(docs.map((d) => ({ worker: d.worker, placement: d.placement, timings: d.timings })))}`);
  // On one worker, two jobs overlapped in time: its slots run concurrently.
  const overlapping = docs.some((a) => docs.some((b) => a !== b && a.worker === b.worker && Date.parse(a.timings.startedAt!) < Date.parse(b.timings.finishedAt!) && Date.parse(b.timings.startedAt!) < Date.parse(a.timings.finishedAt!)));
  assert.ok(overlapping, 'no two jobs of one worker overlapped');
  const listed = (await api.request<{ items: Array<{ id: string; slots: { total: number } }> }>('GET', '/v1/workers')).body.items;
  assert.equal(listed.length, 2);
  assert.ok(listed.every((w) => w.slots.total === 2));
});

test('a job submitted to one API is read and streamed from another', async () => {
  const sub = await api.submit({ image: stack.images.busybox, command: ['echo', 'across'] });
  const other = new SbxClient(secondUrl);
  const events = await other.events(sub.body.id);
  assert.equal(events.filter((e) => e.event === 'stdout').map((e) => JSON.parse(e.data).data).join(''), 'across\n');
  assert.equal((await other.get(sub.body.id)).body.status, 'succeeded');
});
