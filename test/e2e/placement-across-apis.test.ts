/**
 * Placement at submission with two API processes (behind a load balancer): each places jobs on a
 * host that holds their image from its own view of the fleet. Where their placements meet, in Redis
 * (reserveHandoff-3.lua: the host's free slots against every hand-off pending for it), one the host
 * has no slot for goes to another worker with room instead (chooseInstead). Before, a burst spread
 * over two copies put up to twice a host's free slots on its own queue, and the extra jobs waited
 * there for a slot or their hand-off deadline while another worker had room.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { SbxClient, type Job } from '../../client/src/index.ts';
import { startApi, startStack, type ManagedProcess, type Stack } from '../harness/stack.ts';

let stack: Stack;
let secondApi: ManagedProcess;
let a: SbxClient;
let b: SbxClient;
let emptyCache: string;

before(async () => {
  // One worker ("holder") whose cache will hold the image, 2 slots.
  // A hand-off deadline far beyond the jobs' 2 s: a job left on the full holder's queue waits for a slot there.
  stack = await startStack({ workers: 1, env: { SBX_WORKER_SLOTS: '2', SBX_PLACEMENT_MAX_WAIT_MS: '20000' } });
  const second = await startApi('api-2', stack.env);
  secondApi = second.process;
  a = new SbxClient({ baseUrl: stack.apiUrl });
  b = new SbxClient({ baseUrl: second.url });
  assert.equal((await a.run({ image: stack.images.busybox, command: ['true'] })).status, 'succeeded'); // the holder pulls it
  // A second worker with a cache of its own, without the image, 2 slots: room for the overflow.
  emptyCache = await mkdtemp(join(tmpdir(), 'sbx-e2e-empty-'));
  await stack.startWorker({ SBX_STATE_DIR: emptyCache });
});
after(async () => {
  await a?.close();
  await b?.close();
  await secondApi?.kill();
  await stack?.stop();
  if (emptyCache) await rm(emptyCache, { recursive: true, force: true });
});

test('a burst spread over two APIs: the full host\'s queue gets no more than its free slots; the rest go to the worker with room', { timeout: 90_000 }, async (t) => {
  const holder = stack.workers[0]!;
  const holderId = (await a.workers()).find((w) => w.pid === holder.child.pid)!.id;
  // Both APIs' fleet views read and fresh (a view is used only while at most 1 s old and kept
  // fresh while submissions come).
  await Promise.all([a.run({ image: stack.images.busybox, command: ['true'] }), b.run({ image: stack.images.busybox, command: ['true'] })]);
  await new Promise((r) => setTimeout(r, 300)); // the holder's room published again, both views re-read
  const job = { image: stack.images.busybox, command: ['sleep', '2'] };
  const subs = await Promise.all([a.submit(job), a.submit(job), b.submit(job), b.submit(job)]);
  const docs: Job[] = await Promise.all(subs.map((s) => a.wait(s.id, { timeoutMs: 30_000 })));
  const seen = docs.map((d) => ({ worker: d.worker === holderId ? 'holder' : 'other', placedAtSubmit: d.placement?.placedAtSubmit ?? false, queueMs: d.timings.queueMs, hops: d.placement?.hops }));
  t.diagnostic(JSON.stringify(seen));
  assert.ok(docs.every((d) => d.status === 'succeeded'), JSON.stringify(docs.map((d) => d.status)));
  // Before: each API placed two on the holder's queue (its view: two free slots), and the two extra
  // waited there for its first free slot (the end of a 2 s job: queueMs over 2000) while the other
  // worker was idle. Now Redis turns the extra placements away: they go to the other worker.
  const throughItsQueue = seen.filter((s) => s.worker === 'holder' && (s.placedAtSubmit || (s.hops ?? 0) > 0));
  assert.ok(throughItsQueue.length <= 2, `${throughItsQueue.length} jobs were put on the holder's queue, which had 2 free slots: ${JSON.stringify(seen)}`);
  assert.ok(seen.some((s) => s.worker === 'other'), `the other worker ran none: ${JSON.stringify(seen)}`);
});
