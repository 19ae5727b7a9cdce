/**
 * The Redis commands of one `POST /v1/jobs?wait=true`, traced with MONITOR on the stack's own
 * redis-server (issue 13: round trips per job). Counts, not timings: what each process sends for a job.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { QUEUE_NAME, RedisKeys } from '../../core/src/redis-keys.ts';
import { waitUntil } from '../harness/redis.ts';
import { connectionNames, monitorRedis } from '../harness/redis-monitor.ts';
import { useStack } from '../harness/use-stack.ts';

const e2e = useStack({});

interface Traced {
  client: string;
  command: string;
  args: string[];
}

/**
 * Every command Redis ran while `work` ran, until `done` finds the last one awaited among them (at
 * most 10 s: one that never comes is for the assertions to name), and `settleMs` after, with the name
 * of the connection that sent it.
 */
async function trace<T>(url: string, work: () => Promise<T>, done: (result: T, commands: Traced[]) => boolean = () => true, settleMs = 300): Promise<{ result: T; commands: Traced[] }> {
  const names = await connectionNames(url);
  const commands: Traced[] = [];
  const monitor = await monitorRedis(url, ({ source, args }) => {
    if (source !== 'lua') commands.push({ client: names.get(source) ?? source, command: args[0]!.toLowerCase(), args: args.slice(1) });
  });
  try {
    const result = await work();
    await waitUntil(async () => done(result, commands), 10_000).catch(() => {});
    await new Promise((r) => setTimeout(r, settleMs));
    return { result, commands };
  } finally {
    await monitor.stop();
  }
}

/** A key of BullMQ's: the shared queue's (`{sbx}:jobs:…`) or a worker's own (`{sbx}:jobs.host.<id>…:`, where the API places a job whose image that worker holds). */
const isQueueKey = (a: string) => {
  const prefix = `${new RedisKeys(e2e.stack.env.SBX_REDIS_PREFIX ?? 'sbx').queuePrefix()}:${QUEUE_NAME}`;
  return a.startsWith(`${prefix}:`) || a.startsWith(`${prefix}.host.`);
};

describe('the Redis commands of a ?wait=true job', () => {
  let id = '';
  let commands: Traced[] = [];
  const of = (client: string) => commands.filter((c) => c.client === client);
  const onJob = (c: Traced) => c.args.some((a) => a.includes(id));

  before(async () => {
    const image = e2e.stack.images.busybox;
    const url = e2e.stack.env.SBX_REDIS_URL!;
    const probe = new Redis(url);
    // The API subscribes its inbox once, just after it starts (without it, the assertions below say what is missing).
    await waitUntil(async () => ((await probe.pubsub('CHANNELS', '*:inbox')) as string[]).length > 0, 10_000).catch(() => {});
    probe.disconnect();
    for (let i = 0; i < 3; i++) assert.equal((await e2e.api.submit({ image, command: ['true'] }, { wait: true })).status, 200); // warm: image cached
    // Traced until the worker's last write for the job is in: the release of its quota place (ZREM of
    // the tenant's active set), sent once Redis has answered the job's final transition, which is what
    // pings the API with the answer. A worker slowed by a busy host sent it after the 300 ms settle
    // that followed the answer, and "one ZREM" found none.
    const released = (res: { body: { id?: unknown } }, seen: Traced[]) => seen.some((c) => c.command === 'zrem' && c.args[0]?.endsWith(':active') && c.args.includes(res.body.id as string));
    const traced = await trace(url, () => e2e.api.submit({ image, command: ['sh', '-c', 'echo hot; echo path >&2'] }, { wait: true }), released);
    assert.equal(traced.result.status, 200);
    assert.equal(traced.result.body.status, 'succeeded');
    assert.deepEqual(traced.result.body.output, { stdout: 'hot\n', stderr: 'path\n' });
    id = traced.result.body.id as string;
    commands = traced.commands;
  });

  test('the API waits through its inbox: no SUBSCRIBE/UNSUBSCRIBE per job', () => {
    const perJobPubSub = commands.filter((c) => (c.command === 'subscribe' || c.command === 'unsubscribe') && onJob(c));
    assert.deepEqual(perJobPubSub, [], 'a ?wait=true job needs no subscription of its own');
  });

  test('the API reads nothing of the job: the exit ping to its inbox carries the final document and the output', () => {
    // (the answer's output, asserted above, came with the ping; a ping without it: HMGET + XRANGE back to back)
    const apiReads = commands.filter((c) => c.client.startsWith('sbx-api') && onJob(c) && ['hmget', 'hget', 'xrange', 'hgetall'].includes(c.command)).map((c) => c.command);
    assert.deepEqual(apiReads, [], `API reads of the job: ${apiReads.join(', ')}`);
  });

  test("BullMQ's commands go over connections of their own, never the API's or the worker's main one", () => {
    // BullMQ defines ~50 scripts on the connection it is given; ioredis copies them into every
    // pipeline()/multi() made on that connection (0.15-0.45 ms of CPU each instead of ~0.01).
    const onMain = commands.filter((c) => (c.client === 'sbx-api' || c.client === 'sbx-worker') && c.args.some(isQueueKey));
    assert.deepEqual(onMain.map((c) => `${c.client} ${c.command}`), [], 'BullMQ commands on a main connection');
    assert.ok(commands.some((c) => c.client === 'sbx-api-queue' && c.args.some(isQueueKey)), 'the API queues the job over sbx-api-queue');
  });

  test('the API sends the job record and its queue entry over one connection, record first', () => {
    const sent = of('sbx-api-queue').filter((c) => onJob(c) || c.args.some(isQueueKey));
    const create = sent.findIndex((c) => c.command === 'eval' && c.args.some((a) => a.endsWith(':state')) && onJob(c));
    const add = sent.findIndex((c) => c.command === 'evalsha' && c.args.some(isQueueKey));
    assert.ok(create >= 0, `the record (EVAL createJob) on sbx-api-queue: ${sent.map((c) => c.command).join(', ')}`);
    assert.ok(add > create, 'the queue entry after the record');
    // EVAL, not EVALSHA: a NOSCRIPT answer would have ioredis send the record again after the entry.
    assert.equal(of('sbx-api').filter((c) => onJob(c) && c.args.some((a) => a.endsWith(':state')) && c.command.startsWith('eval')).length, 0, 'no second create on sbx-api');
  });

  test("the worker reads the cancel flag right behind its claim (same write), not a round trip later", () => {
    const worker = of('sbx-worker').filter(onJob);
    const claim = worker.findIndex((c) => c.command === 'evalsha' && c.args.includes('queued') && c.args.includes('pulling'));
    assert.ok(claim >= 0, 'the claim');
    assert.deepEqual([worker[claim + 1]?.command, worker[claim + 1]?.args[1]], ['hget', 'cancel']);
    assert.equal(worker.filter((c) => c.command === 'hget' && c.args[1] === 'cancel').length, 1, 'one read of the cancel flag');
  });

  test("the worker reads the job's record as it takes the entry, before deciding where it runs: one HMGET, no round trip before it", () => {
    const worker = of('sbx-worker').filter(onJob);
    // (a heartbeat that falls while the job runs also reads its cancel mark, HMGET cancel cancelStop:
    // the recheck of every running job for a lost control message, not a read of this job's record)
    const reads = worker.filter((c) => c.command === 'hmget' && c.args[0]?.endsWith(':state') && c.args.includes('spec'));
    assert.equal(reads.length, 1, `one read of the record: ${worker.map((c) => c.command).join(', ')}`);
    // placed here at submission (its image is cached here): taking it from this host's queue drops its hand-off entry
    // (dropHandoff-2.lua: out of the deadline zset and the by-host index together, one EVALSHA)
    const handoff = worker.findIndex((c) => c.command.startsWith('eval') && c.args[1] === '2' && c.args[2]?.endsWith(':handoffs') && c.args[3]?.endsWith(':handoffs-by-host'));
    assert.ok(handoff >= 0, `the hand-off entry removed: ${worker.map((c) => c.command).join(', ')}`);
    assert.ok(worker.indexOf(reads[0]!) < handoff, 'the record read goes out first, with the job just taken');
  });

  test('the worker releases the quota with the tenant it read with the job: ZREM, no HGET tenant', () => {
    const tenantReads = of('sbx-worker').filter((c) => c.command === 'hget' && onJob(c) && c.args[1] === 'tenant');
    assert.deepEqual(tenantReads, [], 'the worker reads the tenant again at the end');
    assert.equal(of('sbx-worker').filter((c) => c.command === 'zrem' && c.args[0]?.endsWith(':active') && onJob(c)).length, 1, 'one ZREM of the tenant\'s active set');
  });

  test("the worker reads the job's sealed registryAuth with the rest of the record, not on its own", () => {
    const authReads = of('sbx-worker').filter((c) => c.command === 'hget' && onJob(c) && c.args[1] === 'auth');
    assert.deepEqual(authReads, [], 'the worker reads the auth field with the job record');
  });

  test('output with quotes, backslashes, tabs and UTF-8 comes through the ping exactly', async () => {
    const res = await e2e.api.submit({ image: e2e.stack.images.busybox, command: ['printf', 'é "q" \\\\ \\t\\n'] }, { wait: true });
    assert.equal(res.status, 200);
    assert.deepEqual(res.body.output, { stdout: 'é "q" \\ \t\n', stderr: '' });
  });

  test('output past what the ping carries (64 KiB) is read after it: all of it', async () => {
    const res = await e2e.api.submit({ image: e2e.stack.images.busybox, command: ['sh', '-c', 'yes | head -c 100000; echo err >&2'] }, { wait: true });
    assert.equal(res.status, 200);
    const output = res.body.output as { stdout: string; stderr: string };
    assert.equal(output.stdout.length, 100000);
    assert.equal(output.stderr, 'err\n');
  });
});
