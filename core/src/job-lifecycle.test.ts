/**
 * Settling a lost worker's job against a real redis-server: queued again only if its command never
 * started, at most SBX_LOST_JOB_REQUEUES times, exactly once when janitors race, and never behind
 * the back of a worker that was only slow (compare-and-set on status and attempt).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { useReplyLosingRedis } from '../../test/harness/reply-losing-proxy.ts';
import { JobAttempts } from './job-attempts.ts';
import { finishPendingRequeues, requeuedDocument, settleLostJob, type LostJobRecovery } from './job-lifecycle.ts';
import { JobQueue, requeueEntryId } from './job-queue.ts';
import { newJobDocument, type JobDocument, type JobSpec } from './job-spec.ts';
import { JobStore } from './job-store.ts';
import type { RedisClient } from './redis.ts';
import { RedisKeys } from './redis-keys.ts';

/** Redis, and a way to it that can lose an answer, on a connection as a worker's (waits out outages, sends again what was not answered). */
const lossy = useReplyLosingRedis({ maxRetriesPerRequest: null });
let redis: RedisClient;
let store: JobStore;
let queue: JobQueue;
let recovery: LostJobRecovery;
const keys = new RedisKeys('lc');
let n = 0;

before(async () => {
  await lossy.ready;
  redis = lossy.direct;
  store = new JobStore(redis, keys, 3600);
  queue = new JobQueue(redis, keys);
  recovery = { attempts: new JobAttempts(redis, keys), enqueue: (id, a) => queue.requeue(id, a), maxRequeues: 1 };
});
after(async () => {
  await queue?.close();
});

/** A job claimed by `worker` (status pulling), as a worker's claim leaves it. */
async function claimed(worker: string): Promise<JobDocument> {
  const id = `j_lc${++n}`;
  const spec = { id, tenant: 't', image: 'x/y:1', command: ['true'], entrypoint: null, env: {}, workdir: null, user: null, stdin: null, limits: { memoryBytes: 1, cpus: 1, pids: 1, timeoutMs: 1000, outputBytes: 1, diskBytes: 1, cpuTimeMs: null, openFiles: 1 }, network: 'none', labels: {}, registryAuth: null, createdAt: new Date().toISOString() } as JobSpec;
  const doc = newJobDocument(spec);
  assert.ok(await store.create(spec, doc));
  const mine = { ...doc, status: 'pulling' as const, worker };
  assert.equal(await store.claim(mine, false), 'ok');
  return mine;
}

test('a job lost before its command started is queued again, its history naming the lost worker', async () => {
  const doc = await claimed('w1');
  const settled = await settleLostJob(store, recovery, doc);
  assert.equal(settled?.outcome, 'requeued');
  const now = (await store.get(doc.id))!;
  assert.equal(now.status, 'queued');
  assert.equal(now.doc.attempts, 2);
  assert.equal(now.doc.worker, null);
  assert.deepEqual(now.doc.history?.map((h) => [h.attempt, h.worker, h.status, h.error.code]), [[1, 'w1', 'pulling', 'worker_lost']]);
  assert.ok(await queue.queue.getJob(requeueEntryId(doc.id, 2)), 'its queue entry exists');
});

test('a job whose worker recorded its start ends worker_lost and is never run twice', async () => {
  const doc = await claimed('w1');
  assert.ok(await recovery.attempts.markStarted(doc.id, 1));
  const settled = await settleLostJob(store, recovery, doc);
  assert.equal(settled?.outcome, 'lost');
  const now = (await store.getDoc(doc.id))!;
  assert.equal(now.status, 'error');
  assert.equal(now.error?.code, 'worker_lost');
  assert.equal(await queue.queue.getJob(requeueEntryId(doc.id, 2)), undefined);
});

test('a claim that starts the job at once (image cached, slot free) records the start: lost after it, the job is never run twice; a losing claim records nothing', async () => {
  const id = `j_lc${++n}`;
  const spec = { id, tenant: 't', image: 'x/y:1', command: ['true'], entrypoint: null, env: {}, workdir: null, user: null, stdin: null, limits: { memoryBytes: 1, cpus: 1, pids: 1, timeoutMs: 1000, outputBytes: 1, diskBytes: 1, cpuTimeMs: null, openFiles: 1 }, network: 'none', labels: {}, registryAuth: null, createdAt: new Date().toISOString() } as JobSpec;
  const doc = newJobDocument(spec);
  assert.ok(await store.create(spec, doc));
  const mine = { ...doc, status: 'pulling' as const, worker: 'w1' };
  const theirs = { ...doc, status: 'pulling' as const, worker: 'w2' };
  assert.equal(await store.claim(mine, true), 'ok');
  assert.equal(await store.claim(mine, true), 'ok', 'a replayed claim is applied once');
  assert.equal(await store.claim(theirs, true), 'pulling', 'the second claim loses');
  assert.equal(await redis.hget(keys.jobState(id), 'started'), '1');
  assert.equal((await settleLostJob(store, recovery, mine))?.outcome, 'lost');
  assert.equal((await store.getDoc(id))!.error?.code, 'worker_lost');

  // Without startsNow the claim records no start (the worker marks it before the command: markStarted).
  const plain = await claimed('w3');
  assert.equal(await redis.hget(keys.jobState(plain.id), 'started'), null);
  // A claim that loses records nothing either, though it asks to start: the job is queued again, not lost.
  assert.equal(await store.claim({ ...plain, worker: 'w4' }, true), 'pulling');
  assert.equal(await redis.hget(keys.jobState(plain.id), 'started'), null);
  assert.equal((await settleLostJob(store, recovery, plain))?.outcome, 'requeued');
});

test('output sent right behind the move to running lands after it; once the job was ended elsewhere (or in another attempt) none lands', async () => {
  const doc = await claimed('w1');
  const running = { ...doc, status: 'running' as const };
  // Sent back to back without waiting, as the worker does: Redis applies them in this order.
  const [moved, appended] = await Promise.all([store.transition(running, ['pulling'], 'status'), store.appendOutput(doc.id, 1, [{ type: 'stdout', data: 'hello\n' }])]);
  assert.deepEqual([moved, appended], ['ok', true]);
  assert.equal(await store.appendOutput(doc.id, 2, [{ type: 'stdout', data: 'another attempt\n' }]), false);
  // A janitor ends it (worker_lost); the worker, not knowing yet, sends more.
  assert.equal(await store.transition({ ...running, status: 'error', error: { code: 'worker_lost', message: 'x' } }, ['running'], 'exit'), 'ok');
  assert.equal(await store.appendOutput(doc.id, 1, [{ type: 'stdout', data: 'too late\n' }]), false);
  const events = await store.readEvents(doc.id, '0', 100);
  assert.deepEqual(events.map((e) => e.type), ['status', 'status', 'status', 'stdout', 'exit']);
  assert.deepEqual(JSON.parse(events[3]!.data), { data: 'hello\n' });
});

test('a slow worker whose job was requeued can neither start it nor end it; the new attempt is untouched', async () => {
  const doc = await claimed('slow');
  assert.equal((await settleLostJob(store, recovery, doc))?.outcome, 'requeued');
  // Another worker claims attempt 2.
  const second = { ...(await store.getDoc(doc.id))!, status: 'pulling' as const, worker: 'w2' };
  assert.equal(await store.transition(second, ['queued'], 'status'), 'ok');
  // The slow one wakes up with its attempt-1 document.
  assert.equal(await recovery.attempts.markStarted(doc.id, 1), false);
  assert.equal(await store.transition({ ...doc, status: 'running' }, ['pulling'], 'status'), 'attempt');
  assert.equal(await store.transition({ ...doc, status: 'error', error: { code: 'image_pull_failed', message: 'x' } }, ['pulling'], 'exit'), 'attempt');
  // A janitor holding the stale document settles nothing.
  assert.equal(await settleLostJob(store, recovery, doc), null);
  const now = (await store.getDoc(doc.id))!;
  assert.deepEqual([now.status, now.worker, now.attempts], ['pulling', 'w2', 2]);
  assert.ok(await recovery.attempts.markStarted(doc.id, 2), 'attempt 2 starts');
});

test('janitors racing on one lost job: exactly one requeue', async () => {
  const doc = await claimed('w1');
  const results = await Promise.all(Array.from({ length: 5 }, () => settleLostJob(store, recovery, doc)));
  assert.deepEqual(results.filter(Boolean).map((r) => r!.outcome), ['requeued']);
  assert.equal((await store.getDoc(doc.id))!.attempts, 2);
});

test('requeues are bounded (SBX_LOST_JOB_REQUEUES): the next loss ends worker_lost', async () => {
  const doc = await claimed('w1');
  await settleLostJob(store, recovery, doc);
  const second = { ...(await store.getDoc(doc.id))!, status: 'pulling' as const, worker: 'w2' };
  assert.equal(await store.transition(second, ['queued'], 'status'), 'ok');
  const settled = await settleLostJob(store, recovery, second);
  assert.equal(settled?.outcome, 'lost');
  assert.equal((await store.getDoc(doc.id))!.status, 'error');
});

test('a cancel pending on a lost job ends it cancelled, not queued again', async () => {
  const doc = await claimed('w1');
  await store.requestCancel(doc.id);
  assert.equal((await settleLostJob(store, recovery, doc))?.outcome, 'cancelled');
  assert.equal((await store.getDoc(doc.id))!.status, 'cancelled');
});

test('a requeue a crash left half done (queued again, no queue entry) gets its entry from the janitor', async () => {
  const doc = await claimed('w1');
  await recovery.attempts.intend(doc.id, Date.now() - 60_000);
  assert.equal(await recovery.attempts.requeue(requeuedDocument(doc, 'w1', new Date()), 1), 'ok');
  // ... and the process died here, before the entry was added.
  assert.equal(await queue.queue.getJob(requeueEntryId(doc.id, 2)), undefined);
  assert.equal(await finishPendingRequeues(store, recovery, 10_000), 1);
  assert.ok(await queue.queue.getJob(requeueEntryId(doc.id, 2)));
  assert.deepEqual(await recovery.attempts.stale(0), []);
});

test('a transition sent again after a reconnect (its answer lost with the connection) answers ok and is applied once; another caller still loses', async () => {
  const doc = await claimed('w1');
  const events = async () => (await redis.xrange(keys.jobEvents(doc.id), '-', '+')).length;
  const before = await events();
  // ioredis resends a command whose reply never came (autoResendUnfulfilledCommands): the same claim, again.
  assert.equal(await store.transition(doc, ['queued'], 'status'), 'ok', 'the worker must not read its own claim as someone else\'s');
  assert.equal(await events(), before, 'the replay appends no event');
  assert.equal(await store.transition({ ...doc, worker: 'w2' }, ['queued'], 'status'), 'pulling', 'another worker\'s claim still fails');
  const final = { ...doc, status: 'succeeded' as const, exitCode: 0 };
  assert.equal(await store.transition(final, ['pulling'], 'exit', 't'), 'ok');
  assert.equal(await store.transition(final, ['pulling'], 'exit', 't'), 'ok', 'a replayed finish');
  assert.equal(await store.transition({ ...final, status: 'failed' as const }, ['pulling'], 'exit', 't'), 'succeeded');
});

test('a requeue Redis applied but whose answer was lost (sent again by ioredis after reconnecting) still gets its queue entry', async () => {
  const proxied: LostJobRecovery = { attempts: new JobAttempts(lossy.viaProxy, keys), enqueue: (id, a) => queue.requeue(id, a), maxRequeues: 1 };
  const warm = await claimed('w0');
  assert.equal(await proxied.attempts.requeue(requeuedDocument(warm, 'w0', new Date()), 1), 'ok'); // the script loaded: one EVALSHA from now on
  const doc = await claimed('w1');
  const lostBefore = lossy.proxy.lost;
  const lost = lossy.proxy.loseReplyTo('evalsha', keys.jobState(doc.id));
  const settled = await settleLostJob(store, proxied, doc);
  await lost;
  assert.equal(lossy.proxy.lost, lostBefore + 1, 'the requeue\'s answer was lost');
  assert.equal(settled?.outcome, 'requeued', 'the replay answered "queued" and the requeue was taken for someone else\'s');
  assert.ok(await queue.queue.getJob(requeueEntryId(doc.id, 2)), 'its queue entry exists: the job is not left queued on no queue');
  const now = (await store.getDoc(doc.id))!;
  assert.deepEqual([now.status, now.attempts, now.history?.length], ['queued', 2, 1], 'requeued once');
});

test('output Redis appended but whose answer was lost is not appended again when ioredis sends it again', async () => {
  const proxiedStore = new JobStore(lossy.viaProxy, keys, 3600);
  const doc = await claimed('w1');
  assert.equal(await proxiedStore.appendOutput(doc.id, 1, [{ type: 'stdout', data: 'not yet\n' }], 1), false); // not running: nothing, but the script is loaded
  assert.equal(await store.transition({ ...doc, status: 'running' }, ['pulling'], 'status'), 'ok');
  const lostBefore = lossy.proxy.lost;
  const lost = lossy.proxy.loseReplyTo('evalsha', keys.jobEvents(doc.id));
  assert.equal(await proxiedStore.appendOutput(doc.id, 1, [{ type: 'stdout', data: 'once\n' }], 1), true, 'the replay answers as the first call would have');
  await lost;
  assert.equal(lossy.proxy.lost, lostBefore + 1, 'the append\'s answer was lost');
  assert.equal(await proxiedStore.appendOutput(doc.id, 1, [{ type: 'stdout', data: 'then this\n' }], 2), true);
  const stdout = (await store.readEvents(doc.id, '0', 100)).filter((e) => e.type === 'stdout').map((e) => JSON.parse(e.data).data);
  assert.deepEqual(stdout, ['once\n', 'then this\n'], 'each line once');
});

test('a cancel marked on a record that expired meanwhile makes no record again (a hash without a TTL, for good): false', async () => {
  const doc = await claimed('w1');
  await redis.del(keys.jobState(doc.id), keys.jobEvents(doc.id)); // expired between the DELETE's read and its mark
  assert.equal(await store.requestCancel(doc.id, { graceMs: 1000, signal: 'SIGTERM' }), false);
  assert.equal(await redis.exists(keys.jobState(doc.id)), 0, 'before: a hash of cancel and cancelStop, never expiring');
  const live = await claimed('w1');
  assert.equal(await store.requestCancel(live.id), true);
  assert.equal(await redis.hget(keys.jobState(live.id), 'cancel'), '1');
});
