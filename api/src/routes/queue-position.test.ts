/**
 * Queue position (issue 11 item 6): with no worker, three jobs wait at positions 1, 2, 3 (GET, list);
 * cancelling the first moves the others to 1, 2; an SSE reader of the third sees `queue` events
 * 3 → 2 → 1 as the jobs ahead of it leave, and a finished job has position null. Real Redis, real
 * BullMQ queue, the API in-process.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { useTestApp } from '../../../test/harness/api-app.ts';
import { parseServerSentEvents, type ServerSentEvent } from '../../../client/src/sse.ts';
import type { JobDocument } from '../../../core/src/job-spec.ts';

const t = useTestApp();

const json = { 'content-type': 'application/json' };
async function submit(): Promise<string> {
  const res = await t.app.request('/v1/jobs', { method: 'POST', headers: json, body: JSON.stringify({ image: '127.0.0.1:5000/test/busybox:latest', command: ['true'] }) });
  assert.equal(res.status, 202);
  return ((await res.json()) as JobDocument).id;
}
async function position(id: string): Promise<number | null | undefined> {
  return ((await (await t.app.request(`/v1/jobs/${id}`)).json()) as JobDocument).queuePosition;
}
async function cancel(id: string): Promise<void> {
  assert.equal((await t.app.request(`/v1/jobs/${id}`, { method: 'DELETE' })).status, 202);
}

test('queued jobs have positions 1, 2, 3; cancelling the first moves the others up; SSE sends queue events', { timeout: 30_000 }, async () => {
  const [a, b, c] = [await submit(), await submit(), await submit()];
  assert.deepEqual([await position(a), await position(b), await position(c)], [1, 2, 3]);
  const listed = (await (await t.app.request('/v1/jobs')).json()) as { items: JobDocument[] };
  assert.deepEqual(Object.fromEntries(listed.items.map((d) => [d.id, d.queuePosition])), { [a]: 1, [b]: 2, [c]: 3 });

  const res = await t.app.request(`/v1/jobs/${c}/events`);
  assert.equal(res.status, 200);
  const reader = parseServerSentEvents(res.body!)[Symbol.asyncIterator]();
  const nextQueueEvent = async (): Promise<ServerSentEvent> => {
    for (;;) {
      const { value, done } = await reader.next();
      assert.ok(!done, 'the stream ended before a queue event');
      if (value.event === 'queue') return value;
    }
  };
  const first = await nextQueueEvent();
  assert.deepEqual(JSON.parse(first.data), { position: 3 });

  await cancel(a);
  assert.deepEqual([await position(a), await position(b), await position(c)], [null, 1, 2]);
  assert.deepEqual(JSON.parse((await nextQueueEvent()).data), { position: 2 });
  await cancel(b);
  assert.deepEqual(JSON.parse((await nextQueueEvent()).data), { position: 1 });
  await cancel(c);
  const rest: string[] = [];
  for (;;) {
    const { value, done } = await reader.next();
    if (done) break;
    rest.push(value.event);
  }
  assert.deepEqual(rest, ['exit'], 'the stream ends with the exit of the cancelled job');
  assert.equal(await position(c), null);
});
