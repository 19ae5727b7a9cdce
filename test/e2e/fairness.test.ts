/**
 * Fairness between tenants on a real stack (API + one worker with 2 slots): while tenant A has 500
 * jobs queued, tenant B's single job is the next one the worker takes. Without per-tenant priorities
 * BullMQ is FIFO and B waits behind all of A's jobs.
 *
 * The property is asserted as an order, not a wall-clock bound: of A's jobs, only those the worker
 * already held when B arrived (its slots + its pull concurrency) may start between B's submission and
 * B's start. On a quiet machine that is B starting within one A job's run (~0.3-0.5 s); a clock bound
 * would fail whenever the host is busy (CI runs test files side by side), the order does not.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { SbxClient } from '../harness/api-client.ts';
import { startStack, type Stack } from '../harness/stack.ts';
import type { JobDocument } from '../../core/src/job-spec.ts';

const A_JOBS = 500;
const SLOTS = 2;
const PULL_CONCURRENCY = 4;
/** Jobs the worker holds at once (core/src/config.ts): the most of A's that may start ahead of B. */
const HELD = SLOTS + PULL_CONCURRENCY;
const KEY_A = 'key-fair-alpha-aaaaaaaaaaaaaaaa';
const KEY_B = 'key-fair-beta-bbbbbbbbbbbbbbbbb';
const KEY_ADMIN = 'key-fair-admin-cccccccccccccccc';

let stack: Stack;
let a: SbxClient;
let b: SbxClient;

before(async () => {
  stack = await startStack({
    workers: 0,
    adminKey: KEY_ADMIN,
    // A's own quota lets it hold 500 jobs and submit them as fast as it can.
    env: { SBX_API_KEYS: `${KEY_A}:alpha,${KEY_B}:beta,${KEY_ADMIN}:ops:admin`, SBX_TENANT_ACTIVE_JOBS: '1000', SBX_TENANT_SUBMITS_PER_SECOND: '0' },
  });
  await stack.startWorker({ SBX_WORKER_SLOTS: String(SLOTS), SBX_PULL_CONCURRENCY: String(PULL_CONCURRENCY) });
  a = new SbxClient(stack.apiUrl, KEY_A);
  b = new SbxClient(stack.apiUrl, KEY_B);
});
after(async () => {
  await stack?.stop();
});

async function inBatches<T>(items: T[], size: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(fn));
}

test(`tenant B's one job overtakes the ${A_JOBS} tenant A has queued: at most the ${HELD} the worker held start before it`, async (t) => {
  // The image is in the worker's cache before the flood (as it would be for a busy tenant).
  const warm = await new SbxClient(stack.apiUrl, KEY_ADMIN).submit({ image: stack.images.busybox, command: ['true'] }, { wait: true });
  assert.equal(warm.body.status, 'succeeded', JSON.stringify(warm.body));

  const aIds: string[] = [];
  await inBatches(Array.from({ length: A_JOBS }, (_, i) => i), 16, async () => {
    const res = await a.submit({ image: stack.images.busybox, command: ['sleep', '0.3'], limits: { memoryBytes: 16 * 1024 * 1024 } });
    assert.equal(res.status, 202, JSON.stringify(res.body));
    aIds.push(res.body.id);
  });
  try {
    const queued = (await a.request<{ items: JobDocument[] }>('GET', '/v1/jobs?status=queued&limit=500')).body.items.length;
    assert.ok(queued >= A_JOBS - 50, `A has ${queued} jobs queued`);

    const sub = await b.submit({ image: stack.images.busybox, command: ['true'] });
    assert.equal(sub.status, 202);
    let doc = sub.body;
    const deadline = Date.now() + 150_000; // without fairness B waits for all of A's jobs: measure it
    while (!doc.timings.startedAt && !['failed', 'error', 'cancelled'].includes(doc.status) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      doc = (await b.get(doc.id)).body;
    }
    assert.ok(doc.timings.startedAt, `B's job did not start within 150 s: ${JSON.stringify(doc)}`);
    const waitedMs = Date.parse(doc.timings.startedAt) - Date.parse(doc.timings.createdAt);
    const bStart = Date.parse(doc.timings.startedAt);
    const bCreated = Date.parse(doc.timings.createdAt);
    // A's jobs, all statuses (newest first; 500 is the page's maximum and A has exactly 500).
    const aDocs = (await a.request<{ items: JobDocument[] }>('GET', `/v1/jobs?limit=${A_JOBS}`)).body.items;
    assert.equal(aDocs.length, A_JOBS);
    const started = (d: JobDocument): number | null => (d.timings.startedAt ? Date.parse(d.timings.startedAt) : null);
    const ahead = aDocs.filter((d) => { const s = started(d); return s !== null && s > bCreated && s < bStart; });
    const aheadOfB = ahead.length;
    const placements = ahead.map((d) => JSON.stringify(d.placement ?? null));
    const aStartedBefore = aDocs.filter((d) => { const s = started(d); return s !== null && s <= bCreated; }).length;
    const aLeft = aDocs.filter((d) => d.status === 'queued').length;
    t.diagnostic(
      `B's job started ${waitedMs} ms after submission (queueMs ${doc.timings.queueMs}, pullMs ${doc.timings.pullMs}, startMs ${doc.timings.startMs}); ` +
        `A: ${aStartedBefore} started before B's submission, ${aheadOfB} between it and B's start, ${aLeft} still queued; ` +
        `A's jobs placed at submit: ${aDocs.filter((d) => d.placement?.placedAtSubmit).length}; ` +
        `B placed ${JSON.stringify(doc.placement ?? null)}, A's between: ${placements.join(' ')}`,
    );
    assert.ok(aheadOfB <= HELD, `${aheadOfB} of A's jobs started between B's submission and B's start (bound: the ${HELD} the worker held); B waited ${waitedMs} ms`);
    // Control: A's queue was long when B started, so B did overtake it (a FIFO queue would have run them first).
    assert.ok(aLeft >= A_JOBS / 2, `only ${aLeft} of A's jobs were still queued after B started`);
  } finally {
    // Cancel what is left of A (a queued job is cancelled at once), so the stack stops quickly.
    await inBatches(aIds, 32, (id) => a.request('DELETE', `/v1/jobs/${id}`));
  }
});
