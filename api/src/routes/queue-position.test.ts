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
import { JobAttempts } from '../../../core/src/job-attempts.ts';
import { settleLostJob } from '../../../core/src/job-lifecycle.ts';

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

/** Cancels what is still queued of `ids`, whatever a failed test left (the next test counts positions). */
async function cancelLeft(ids: string[]): Promise<void> {
  for (const id of ids) await t.app.request(`/v1/jobs/${id}`, { method: 'DELETE' });
}

test('queued jobs have positions 1, 2, 3; cancelling the first moves the others up; SSE sends queue events', { timeout: 30_000 }, async (ctx) => {
  const [a, b, c] = [await submit(), await submit(), await submit()];
  ctx.after(() => cancelLeft([a, b, c]));
  assert.deepEqual([await position(a), await position(b), await position(c)], [1, 2, 3]);
  const listed = (await (await t.app.request('/v1/jobs')).json()) as { items: JobDocument[] };
  assert.deepEqual(Object.fromEntries(listed.items.map((d) => [d.id, d.queuePosition])), { [a]: 1, [b]: 2, [c]: 3 });

  // The stream's estimate counts from its own first look at the position, made after this.
  const openedAt = Date.now();
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
  assert.deepEqual(JSON.parse(first.data), { position: 3, etaMs: null }, 'no estimate before the position has moved');
  // api.md: every event carries an id. Not in the record, a queue event carries the one before it:
  // a reconnection with it resumes after that event.
  assert.ok(first.id !== null && first.id === first.lastEventId, `the queue event's id: ${first.id}`);
  const status = (await (await t.app.request(`/v1/jobs/${c}/events?follow=false`)).text()).match(/^id: (\S+)$/m)?.[1];
  assert.equal(first.id, status, 'the id of the status event sent before it');

  await new Promise((r) => setTimeout(r, 300));
  await cancel(a);
  assert.deepEqual([await position(a), await position(b), await position(c)], [null, 1, 2]);
  const second = JSON.parse((await nextQueueEvent()).data) as { position: number; etaMs: number };
  // One place in about 0.3 s: two more, about 0.6 s (bounded by the time since the stream was asked for).
  const elapsed = Date.now() - openedAt;
  assert.equal(second.position, 2);
  assert.ok(second.etaMs >= 2 * 250 && second.etaMs <= 2 * elapsed + 50, `etaMs ${second.etaMs} after one place in at most ${elapsed} ms`);
  await cancel(b);
  assert.equal(JSON.parse((await nextQueueEvent()).data).position, 1);
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

test('a job queued again after its worker was lost: its real position in GET and in SSE queue events; cancelling it frees its place', { timeout: 30_000 }, async () => {
  const a = await submit();
  const heartbeat = t.deps.keys.worker('w-lost');
  await t.deps.redis.set(heartbeat, '{}', 'PX', 60_000); // alive while the reader connects (a reader settles a dead worker's job itself)
  // A worker takes `a` (its queue entry gone, status pulling) and is lost before the command starts.
  await t.deps.queue.remove(a);
  const taken = { ...(await t.deps.store.getDoc(a))!, status: 'pulling' as const, worker: 'w-lost' };
  assert.equal(await t.deps.store.transition(taken, ['queued'], 'status'), 'ok');
  const b = await submit(); // behind `a` once `a` is queued again (a requeue goes first in line)

  const res = await t.app.request(`/v1/jobs/${a}/events`);
  assert.equal(res.status, 200);
  const reader = parseServerSentEvents(res.body!)[Symbol.asyncIterator]();
  const next = async (): Promise<ServerSentEvent> => {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('no SSE event for 5 s')), 5000)));
    try {
      const { value, done } = await Promise.race([reader.next(), deadline]);
      assert.ok(!done, 'the stream ended');
      return value;
    } finally {
      clearTimeout(timer);
    }
  };
  const seen: string[] = [];
  const until = async (pred: (e: ServerSentEvent) => boolean): Promise<ServerSentEvent> => {
    for (;;) {
      const e = await next().catch((err: Error) => assert.fail(`${err.message}; events so far: ${seen.join(' ')}`));
      seen.push(`${e.event}:${e.data}`);
      if (pred(e)) return e;
    }
  };
  await until((e) => e.event === 'status' && (JSON.parse(e.data) as { status: string }).status === 'pulling');

  // The worker is lost: its job settled as a janitor settles it, then its heartbeat goes. Not the
  // other way round: the stream looks at the job's worker every 5 s (job-event-stream.ts) and settles
  // the job itself once the heartbeat is gone; a look that fell between the two (a busy host) left
  // this settle a job already queued again (null).
  const recovery = { attempts: new JobAttempts(t.deps.redis, t.deps.keys), enqueue: (id: string, n: number) => t.deps.queue.requeue(id, n), maxRequeues: 1 };
  assert.equal((await settleLostJob(t.deps.store, recovery, taken))?.outcome, 'requeued');
  await t.deps.redis.del(heartbeat);
  assert.deepEqual([await position(a), await position(b)], [1, 2], 'GET: the requeued job is first, the other second');
  const queueEvent = await until((e) => e.event === 'queue');
  assert.deepEqual(JSON.parse(queueEvent.data), { position: 1, etaMs: null }, 'SSE: the requeued job\'s queue event has its position');

  await cancel(a);
  assert.equal(await position(b), 1, 'the cancelled requeued job left the queue: the other moves up');
  await until((e) => e.event === 'exit');
});
