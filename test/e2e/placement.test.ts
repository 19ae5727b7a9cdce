/**
 * Placement (issue 14, items 2 and 3), with real workers, each with its own state directory (its
 * own image cache) and slots: a host runs only jobs whose limits.memoryBytes fit its budget
 * (SBX_JOBS_MEMORY_BYTES) together, a job that no live host could ever hold fails at once, a job
 * goes to the host that holds its image when that host has room, and when it has none, the job
 * runs elsewhere instead of waiting for it.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Job } from '../../client/src/index.ts';
import { SbxClient } from '../harness/api-client.ts';
import { waitUntil } from '../harness/redis.ts';
import { startStack, type Stack } from '../harness/stack.ts';

const MiB = 1024 * 1024;

const stateDirs: string[] = [];
after(async () => Promise.all(stateDirs.map((d) => rm(d, { recursive: true, force: true }))));

/** Each worker its own cache, as on separate hosts. */
async function ownHost(stack: Stack, name: string, env: Record<string, string> = {}) {
  const stateDir = await mkdtemp(join(tmpdir(), `sbx-placement-${name}-`));
  stateDirs.push(stateDir);
  return stack.startWorker({ SBX_STATE_DIR: stateDir, ...env });
}

/** The largest sum of limits.memoryBytes of one worker's jobs running at the same moment (from the documents' start and end times). */
function peakMemory(docs: Job[]): Map<string, number> {
  const peak = new Map<string, number>();
  for (const d of docs) {
    const at = Date.parse(d.timings.startedAt!);
    const sum = docs
      .filter((o) => o.worker === d.worker && Date.parse(o.timings.startedAt!) <= at && at < Date.parse(o.timings.finishedAt!))
      .reduce((n, o) => n + o.limits.memoryBytes, 0);
    peak.set(d.worker!, Math.max(peak.get(d.worker!) ?? 0, sum));
  }
  return peak;
}

describe('capacity: the memory budget of a host', () => {
  let stack: Stack;
  let api: SbxClient;
  before(async () => {
    stack = await startStack({ workers: 0, env: { SBX_WORKER_SLOTS: '4', SBX_JOBS_MEMORY_BYTES: String(256 * MiB) } });
    await ownHost(stack, 'mem');
    api = new SbxClient(stack.apiUrl);
  });
  after(async () => stack?.stop());

  test('a host never runs jobs whose memoryBytes together exceed SBX_JOBS_MEMORY_BYTES, although slots are free', { timeout: 90_000 }, async () => {
    const subs = await Promise.all(Array.from({ length: 6 }, () => api.submit({ image: stack.images.busybox, command: ['sleep', '1'], limits: { memoryBytes: 100 * MiB } })));
    const docs = await Promise.all(subs.map((s) => api.waitFinished(s.body.id, 60_000)));
    assert.deepEqual(docs.map((d) => d.status), Array(6).fill('succeeded'), JSON.stringify(docs.map((d) => d.error)));
    for (const [worker, bytes] of peakMemory(docs)) {
      assert.ok(bytes <= 256 * MiB, `worker ${worker} ran jobs of ${bytes / MiB} MiB at once, its budget is 256 MiB`);
    }
  });

  test('a job larger than every live host\'s budget fails at once with exceeds_capacity', { timeout: 30_000 }, async () => {
    const sub = await api.submit({ image: stack.images.busybox, command: ['true'], limits: { memoryBytes: 512 * MiB } });
    const doc = await api.waitFinished(sub.body.id, 20_000);
    assert.equal(doc.status, 'error', JSON.stringify(doc));
    assert.equal(doc.error?.code, 'exceeds_capacity');
    assert.match(doc.error!.message, /largest: 268435456/);
  });
});

describe('capacity: a full host takes nothing more', () => {
  let stack: Stack;
  let api: SbxClient;
  before(async () => {
    stack = await startStack({ workers: 0, env: { SBX_WORKER_SLOTS: '1' } });
    await ownHost(stack, 'full');
    api = new SbxClient(stack.apiUrl);
  });
  after(async () => stack?.stop());

  test('while its one slot is busy, jobs stay queued (on the shared queue or its own), not held by it', { timeout: 60_000 }, async () => {
    const warm = await api.submit({ image: stack.images.busybox, command: ['true'] });
    assert.equal((await api.waitFinished(warm.body.id, 30_000)).status, 'succeeded');
    // The API reads the fleet only while jobs are submitted, and stops 5 s after the last submission
    // (fleet-snapshot.ts, idleMs): the warm job's pull can take longer than that on a busy host, and
    // the long job then found no fresh view and went to the shared queue. A job of the cached image
    // starts the reads again just before it.
    const again = await api.submit({ image: stack.images.busybox, command: ['true'] });
    assert.equal((await api.waitFinished(again.body.id, 30_000)).status, 'succeeded');
    // The API's next read of the fleet sees the host holding the image with its slot free: the long
    // job goes to the host's own queue, so the consumer of the shared queue is left waiting on it.
    await new Promise((r) => setTimeout(r, 600));
    const long = (await api.submit({ image: stack.images.busybox, command: ['sleep', '30'], limits: { timeoutMs: 60_000 } })).body.id;
    await waitUntil(async () => (await api.get(long)).body.status === 'running', 15_000, 'the long job to run');
    await new Promise((r) => setTimeout(r, 600)); // the API sees the host full: the next jobs go to the shared queue
    const ids = await Promise.all(Array.from({ length: 3 }, async () => (await api.submit({ image: stack.images.busybox, command: ['true'] })).body.id));
    await new Promise((r) => setTimeout(r, 500));
    const statuses = await Promise.all(ids.map(async (id) => (await api.get(id)).body.status));
    const longDoc = (await api.get(long)).body;
    await api.request('DELETE', `/v1/jobs/${long}`);
    assert.equal(longDoc.placement?.placedAtSubmit, true, `the long job was not placed on the host's queue: ${JSON.stringify(longDoc.placement)}`);
    assert.deepEqual(statuses, Array(3).fill('queued'), 'a job was taken by the full host');
    const docs = await Promise.all(ids.map((id) => api.waitFinished(id, 30_000)));
    assert.deepEqual(docs.map((d) => d.status), Array(3).fill('succeeded'), 'once the slot is free they all run');
  });
});

describe('cache-aware placement across three hosts', () => {
  let stack: Stack;
  let api: SbxClient;
  let holder: string;
  before(async () => {
    stack = await startStack({ workers: 0 });
    api = new SbxClient(stack.apiUrl);
    // Only the first host pulls the image; the two others start with empty caches.
    await ownHost(stack, 'a', { SBX_WORKER_SLOTS: '1' });
    const first = await api.submit({ image: stack.images.busybox, command: ['true'] });
    const doc = await api.waitFinished(first.body.id, 30_000);
    assert.equal(doc.status, 'succeeded');
    holder = doc.worker!;
    await ownHost(stack, 'b', { SBX_WORKER_SLOTS: '2' });
    await ownHost(stack, 'c', { SBX_WORKER_SLOTS: '2' });
  });
  after(async () => stack?.stop());

  test('with room on the host that holds the image, every job goes there, most straight from the API', { timeout: 90_000 }, async () => {
    const docs: Job[] = [];
    for (let i = 0; i < 8; i++) {
      const sub = await api.submit({ image: stack.images.busybox, command: ['true'] });
      docs.push(await api.waitFinished(sub.body.id, 30_000));
      await new Promise((r) => setTimeout(r, 250)); // the API's view of the fleet is read every 100 ms
    }
    assert.deepEqual(docs.map((d) => d.status), Array(8).fill('succeeded'));
    assert.deepEqual(docs.map((d) => d.worker), Array(8).fill(holder), 'jobs ran on hosts without the image');
    assert.ok(docs.every((d) => d.placement?.imageCached === true && d.placement.hops <= 1), JSON.stringify(docs.map((d) => d.placement)));
    // Placed at submission: on the holder's own queue, no hand-off between workers.
    const direct = docs.filter((d) => d.placement?.placedAtSubmit === true && d.placement.hops === 0 && d.placement.handedFrom === null);
    assert.ok(direct.length >= 4, `only ${direct.length} of 8 jobs were placed by the API: ${JSON.stringify(docs.map((d) => d.placement))}`);
  });
});

describe('cache-aware placement when the host holding the image is full', () => {
  let stack: Stack;
  let api: SbxClient;
  let holder: string;
  let long: string;
  before(async () => {
    stack = await startStack({ workers: 0 });
    api = new SbxClient(stack.apiUrl);
    // The first host pulls the image and is then kept busy by a long job on its only slot; the
    // two others start afterwards with empty caches and free slots.
    await ownHost(stack, 'a', { SBX_WORKER_SLOTS: '1' });
    const first = await api.submit({ image: stack.images.busybox, command: ['true'] });
    holder = (await api.waitFinished(first.body.id, 30_000)).worker!;
    long = (await api.submit({ image: stack.images.busybox, command: ['sleep', '120'], limits: { timeoutMs: 120_000 } })).body.id;
    await waitUntil(async () => (await api.get(long)).body.status === 'running', 30_000, 'the long job to run');
    await ownHost(stack, 'b', { SBX_WORKER_SLOTS: '2' });
    await ownHost(stack, 'c', { SBX_WORKER_SLOTS: '2' });
  });
  after(async () => stack?.stop());

  test('jobs for its image start on the other hosts instead of waiting for it', { timeout: 90_000 }, async () => {
    assert.equal((await api.get(long)).body.worker, holder);
    const subs = await Promise.all(Array.from({ length: 4 }, () => api.submit({ image: stack.images.busybox, command: ['true'] })));
    const docs = await Promise.all(subs.map((s) => api.waitFinished(s.body.id, 60_000).catch((e: Error) => ({ status: `not finished: ${e.message}`, worker: null }) as unknown as Job)));
    const stillRunning = (await api.get(long)).body.status === 'running';
    await api.request('DELETE', `/v1/jobs/${long}`);
    assert.deepEqual(docs.map((d) => d.status), Array(4).fill('succeeded'), `jobs on ${JSON.stringify(docs.map((d) => d.worker))}`);
    assert.ok(docs.every((d) => d.worker !== holder), `jobs waited for the full host: ${JSON.stringify(docs.map((d) => d.worker))}`);
    assert.ok(stillRunning, 'the jobs only ended after the long job on the full host');
  });
});
