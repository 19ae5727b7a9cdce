/**
 * Last-Event-ID is parsed strictly: only stream ids Redis itself accepts as an exclusive start
 * reach it; anything else is a 400 invalid_request, never Redis's raw error text.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startRedis, type RunningRedis } from '../../../test/harness/redis.ts';
import { createTestApp } from '../../../test/harness/api-app.ts';
import { parseServerSentEvents } from '../../../client/src/sse.ts';
import type { JobDocument } from '../../../core/src/job-spec.ts';

let redis: RunningRedis;
let t: ReturnType<typeof createTestApp>;
let jobId: string;

before(async () => {
  redis = await startRedis();
  t = createTestApp(redis);
  const res = await t.app.request('/v1/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ image: '127.0.0.1:5000/test/busybox:latest' }) });
  jobId = ((await res.json()) as JobDocument).id;
  await t.app.request(`/v1/jobs/${jobId}`, { method: 'DELETE' }); // finished: the stream replays and closes
});
after(async () => {
  await t?.close();
  await redis?.stop();
});

async function events(lastEventId: string, via: 'header' | 'query') {
  const path = via === 'query' ? `/v1/jobs/${jobId}/events?lastEventId=${encodeURIComponent(lastEventId)}` : `/v1/jobs/${jobId}/events`;
  return t.app.request(path, { headers: via === 'header' ? { 'last-event-id': lastEventId } : {} });
}

describe('GET /v1/jobs/{id}/events Last-Event-ID', () => {
  const overflowing = [
    '99999999999999999999-0', // past 2^64: Redis "Invalid stream ID"
    '18446744073709551616-0',
    '0-18446744073709551616',
    '18446744073709551615-18446744073709551615', // the largest id: "(" after it overflows
    '9007199254740992-0', // past 2^53: not exactly representable in JS, refused (stricter than Redis)
    '-1-0', '1-', '1--1', '1.5-0', '0x1-0', '1-0-0', '1', '00000000000000000001-0',
  ];
  for (const via of ['header', 'query'] as const) {
    for (const id of overflowing) {
      test(`${via} ${JSON.stringify(id)} is a 400 invalid_request, not a Redis error`, async () => {
        const res = await events(id, via);
        const text = await res.text();
        assert.equal(res.status, 400, `status ${res.status}: ${text}`);
        const body = JSON.parse(text) as { error: { code: string; message: string } };
        assert.equal(body.error.code, 'invalid_request');
        assert.doesNotMatch(body.error.message, /ERR|stream ID|interval/i);
      });
    }
  }

  // Without the fix this waited for more forever; the timeout only turns that hang into a failure.
  test('resuming after the last event of a finished job ends the stream (no wait for more)', { timeout: 60_000 }, async () => {
    const all = [];
    for await (const e of parseServerSentEvents((await events('0', 'header')).body!)) all.push(e);
    const exit = all.find((e) => e.event === 'exit')!;
    for (const id of [exit.id!, '9007199254740991-9007199254740991']) {
      const res = await events(id, 'header');
      assert.equal(res.status, 200);
      const seen = [];
      for await (const e of parseServerSentEvents(res.body!)) seen.push(e.event);
      assert.deepEqual(seen, [], id);
    }
  });

  test('the largest accepted ids reach Redis (200, an event stream)', async () => {
    for (const id of ['9007199254740991-9007199254740991', '9007199254740991-0', '0-9007199254740991', '1732280000000-5']) {
      const res = await events(id, 'header');
      assert.equal(res.status, 200, `${id}: ${res.status}`);
      assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/);
      await res.text(); // the job has ended: the stream closes
    }
    for (const id of ['0', '0-0']) {
      const res = await events(id, 'header');
      const seen = [];
      for await (const e of parseServerSentEvents(res.body!)) seen.push(e.event);
      assert.deepEqual(seen, ['status', 'exit'], id);
    }
  });
});

describe('GET /v1/jobs/{id}/events?follow=false', () => {
  // Without follow=false this waits for the job to end (no worker here: never); the timeout turns that hang into a failure.
  test('a job still queued: the events recorded so far, then the stream ends without exit', { timeout: 60_000 }, async () => {
    const res = await t.app.request('/v1/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ image: '127.0.0.1:5000/test/busybox:latest' }) });
    const queued = ((await res.json()) as JobDocument).id;
    try {
      const answer = await t.app.request(`/v1/jobs/${queued}/events?follow=false`);
      assert.equal(answer.status, 200);
      const seen = [];
      for await (const e of parseServerSentEvents(answer.body!)) seen.push(e);
      assert.deepEqual(seen.map((e) => [e.event, JSON.parse(e.data).status]), [['status', 'queued']]);
      assert.match(seen[0]!.id!, /^\d+-\d+$/, 'its id, to follow on from with Last-Event-ID');
    } finally {
      await t.app.request(`/v1/jobs/${queued}`, { method: 'DELETE' });
    }
  });

  test('a finished job: every event to exit, as without it; a value other than true or false is a 400', async () => {
    const all = async (query: string) => {
      const seen = [];
      for await (const e of parseServerSentEvents((await t.app.request(`/v1/jobs/${jobId}/events${query}`)).body!)) seen.push(e.event);
      return seen;
    };
    const followed = await all('');
    assert.equal(followed.at(-1), 'exit');
    assert.deepEqual(await all('?follow=false'), followed);
    const bad = await t.app.request(`/v1/jobs/${jobId}/events?follow=maybe`);
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as { error: { code: string } }).error.code, 'invalid_request');
  });
});

describe('GET /v1/jobs/{id}/events keep-alive', () => {
  // api.md: "Comment lines (`: keep-alive`) are sent at least every 15 s". Sent once 15 s had passed
  // since the last write, the comment came 15.003 s after it at best, later on a busy machine, past
  // a client's 15 s idle timeout. No worker here: the job stays queued and its stream quiet.
  test('a quiet stream gets a comment well within 15 s of its last write', { timeout: 60_000 }, async () => {
    const res = await t.app.request('/v1/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ image: '127.0.0.1:5000/test/busybox:latest' }) });
    const queued = ((await res.json()) as JobDocument).id;
    const abort = new AbortController();
    try {
      const answer = await t.app.request(`/v1/jobs/${queued}/events`, { signal: abort.signal });
      const reader = answer.body!.getReader();
      const decoder = new TextDecoder();
      let lastChunkAt = Date.now();
      let gap = -1;
      for (;;) {
        const { value, done } = await reader.read();
        assert.equal(done, false, 'the stream of a queued job does not end');
        const now = Date.now();
        if (decoder.decode(value).startsWith(': keep-alive')) {
          gap = now - lastChunkAt;
          break;
        }
        lastChunkAt = now; // the status event, then the queue event
      }
      await reader.cancel();
      assert.ok(gap < 14_000, `the keep-alive came ${gap} ms after the last write: api.md allows 15 s at most, and a loaded machine adds to it`);
    } finally {
      abort.abort();
      await t.app.request(`/v1/jobs/${queued}`, { method: 'DELETE' });
    }
  });
});
