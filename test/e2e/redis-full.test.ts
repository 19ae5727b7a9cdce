/**
 * Redis full (maxmemory reached under `noeviction`: every write refused with "OOM command not allowed
 * when used memory > 'maxmemory'") while a job runs, on a real stack: its output and its end wait
 * until Redis has room, then land, and the job ends with its own outcome and all of its output.
 * Before, the first refused append dropped the rest of the output, the refused end was given up
 * (the worker logged "job failed on an internal error", then "placing a job failed"), and the job
 * stayed `running` for its record's whole TTL after Redis had room again.
 *
 * Redis stays full for longer than the heartbeat limit (5 heartbeats of 500 ms): the worker keeps
 * its heartbeat alive by renewing its TTL (PEXPIRE is not refused when full), so its watchdog does
 * not kill the jobs. Before that, they ended `error` / `worker_lost` ("cannot reach Redis for longer
 * than the heartbeat limit: killing this worker's jobs").
 *
 * Also here, on the same stack: a worker started while Redis is full waits for room; a job whose
 * record Redis dropped mid-run (as an evicting maxmemory-policy would) is logged as a lost outcome.
 *
 * Driven by the worker's own log lines (each refusal is logged); the only wait is a lower bound
 * (Redis full for longer than the heartbeat limit), never a race.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Redis } from 'ioredis';
import { Redis as RedisClient } from 'ioredis';
import { RedisKeys } from '../../core/src/redis-keys.ts';
import { waitUntil } from '../harness/redis.ts';
import { useStack } from '../harness/use-stack.ts';

const HEARTBEAT_MS = 500;
const e2e = useStack({ workers: 1, env: { SBX_HEARTBEAT_MS: String(HEARTBEAT_MS) } });

/** The worker's log lines (pino JSON) with this message fragment, for job `id`. */
function refusals(id: string, write: string): Array<{ reply: string; write: string }> {
  return e2e.stack.workers[0]!.log().split('\n').filter((l) => l.includes(id) && l.includes('"write":"' + write + '"')).map((l) => JSON.parse(l));
}

test('jobs whose output or end Redis refuses while full end with their own outcome and all their output once Redis has room', async () => {
  const admin: Redis = new RedisClient(e2e.stack.env.SBX_REDIS_URL!);
  try {
    // `talks` writes a line while Redis is full (its end waits behind it); `quiet` only ends.
    const { body: talks } = await e2e.api.submit({ image: e2e.stack.images.busybox, command: ['sh', '-c', 'echo first; sleep 3; echo second; exit 3'] });
    const { body: quiet } = await e2e.api.submit({ image: e2e.stack.images.busybox, command: ['sh', '-c', 'echo first; sleep 3; exit 4'] });
    for (const job of [talks, quiet]) await waitUntil(async () => ((await e2e.api.get(job.id, true)).body.output?.stdout ?? '') === 'first\n', 30_000, 'the first line in Redis');
    await admin.config('SET', 'maxmemory-policy', 'noeviction');
    await admin.config('SET', 'maxmemory', '1');
    try {
      await waitUntil(async () => refusals(talks.id, 'output').length > 0 && refusals(quiet.id, 'end').length > 0, 30_000, 'the output and the end to be refused');
      assert.equal(refusals(talks.id, 'output')[0]!.reply, 'OOM');
      assert.equal(refusals(quiet.id, 'end')[0]!.reply, 'OOM');
      await waitUntil(async () => /heartbeat is kept alive by renewing its TTL/.test(e2e.stack.workers[0]!.log()), 30_000, 'the worker to keep its heartbeat alive');
      await new Promise((r) => setTimeout(r, 6 * HEARTBEAT_MS)); // full for longer than the heartbeat limit (5 heartbeats)
      const during = await e2e.api.get(quiet.id);
      assert.equal(during.body.status, 'running', 'nothing recorded while Redis is full');
    } finally {
      await admin.config('SET', 'maxmemory', '0');
    }
    for (const [job, code, stdout] of [[talks, 3, 'first\nsecond\n'], [quiet, 4, 'first\n']] as const) {
      const done = await e2e.api.waitFinished(job.id, 30_000);
      assert.equal(done.status, 'failed', JSON.stringify(done));
      assert.equal(done.exitCode, code);
      assert.equal(done.error, null);
      assert.equal(done.output?.stdout, stdout, 'no output lost, none twice');
    }
    const log = e2e.stack.workers[0]!.log();
    assert.ok(!/job failed on an internal error|killing this worker's jobs/.test(log), log);
    await waitUntil(async () => /Redis takes writes again/.test(e2e.stack.workers[0]!.log()), 30_000, 'the worker to write its heartbeat again');
  } finally {
    admin.disconnect();
  }
});

test('a worker started while Redis is full waits for room (logged), then registers and runs jobs', async () => {
  const admin: Redis = new RedisClient(e2e.stack.env.SBX_REDIS_URL!);
  try {
    await admin.config('SET', 'maxmemory', '1');
    let registered = false;
    const starting = e2e.stack.startWorker({ SBX_WORKER_ID: 'started-full/1' }).then((w) => ((registered = true), w));
    starting.catch(() => {});
    const worker = () => e2e.stack.workers[e2e.stack.workers.length - 1]!;
    try {
      await waitUntil(async () => {
        if (worker().child.exitCode !== null) throw new Error(`the worker exited (${worker().child.exitCode}):\n${worker().log()}`);
        return /this worker waits for it to take them before it starts/.test(worker().log());
      }, 30_000, 'the worker to say it waits for room');
      assert.equal(registered, false);
    } finally {
      await admin.config('SET', 'maxmemory', '0');
    }
    await starting;
    await e2e.stack.workers[0]!.kill('SIGTERM'); // the new worker is the only one left to run the job
    const done = await e2e.api.submit({ image: e2e.stack.images.busybox, command: ['echo', 'ok'] }, { wait: true });
    assert.equal(done.body.status, 'succeeded', JSON.stringify(done.body));
    assert.equal(done.body.worker, 'started-full/1');
  } finally {
    admin.disconnect();
  }
});

test('a job whose record Redis dropped mid-run (evicted) is logged as an error naming maxmemory-policy, not as "finished elsewhere"', async () => {
  const admin: Redis = new RedisClient(e2e.stack.env.SBX_REDIS_URL!);
  try {
    const { body: job } = await e2e.api.submit({ image: e2e.stack.images.busybox, command: ['sh', '-c', 'echo first; sleep 1; echo second'] });
    await waitUntil(async () => ((await e2e.api.get(job.id, true)).body.output?.stdout ?? '') === 'first\n', 30_000, 'the first line in Redis');
    await admin.del(new RedisKeys(e2e.stack.env.SBX_REDIS_PREFIX ?? 'sbx').jobState(job.id)); // what an evicting policy does to it
    const logged = () => e2e.stack.workers.map((w) => w.log()).join('\n').split('\n').filter((l) => l.includes(job.id) && l.startsWith('{')).map((l) => JSON.parse(l) as { level: number; msg: string });
    await waitUntil(async () => logged().some((l) => /record is gone/.test(l.msg)), 30_000, 'the worker to log the lost record');
    const line = logged().find((l) => /record is gone/.test(l.msg))!;
    assert.equal(line.level, 50);
    assert.match(line.msg, /maxmemory-policy noeviction/);
    assert.ok(!logged().some((l) => /finished elsewhere/.test(l.msg)));
    assert.equal((await e2e.api.get(job.id)).status, 404);
  } finally {
    admin.disconnect();
  }
});
