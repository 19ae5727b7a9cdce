/**
 * Chaos: Redis (AOF, appendfsync always: see test/harness/redis-aof.ts) killed and started again
 * under load, once with SIGKILL and once with SHUTDOWN NOSAVE, while clients keep submitting jobs and jobs run. The guarantee
 * (README, "Durability"): a job the API answered 202 for is never lost (every one reaches a final
 * status), and nothing stays non-final; submissions during the outage get an error answer (503),
 * never a 202 for a job that then vanishes.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Redis } from 'ioredis';
import { SbxClient } from '../harness/api-client.ts';
import { startDurableRedis, type DurableRedis } from '../harness/redis-aof.ts';
import { waitUntil } from '../harness/redis.ts';
import { startStack, type Stack } from '../harness/stack.ts';
import { jobsWhereabouts } from '../harness/job-whereabouts.ts';

const FINAL = ['succeeded', 'failed', 'timeout', 'oom', 'cancelled', 'error'];

let redis: DurableRedis;
let stack: Stack;
let api: SbxClient;

before(async () => {
  redis = await startDurableRedis();
  // info: a job left behind is then told with what the API and the workers said of it (jobWhereabouts).
  stack = await startStack({ workers: 2, env: { SBX_REDIS_URL: redis.url, SBX_WORKER_SLOTS: '4', SBX_LOG_LEVEL: 'info' } });
  api = new SbxClient(stack.apiUrl);
});
after(async () => {
  await stack?.stop();
  await redis?.stop();
});

/** Submits jobs back to back from `clients` loops until stopped; the ids answered 202, the other answers counted. */
function submitContinuously(clients: number, image: string) {
  const accepted: string[] = [];
  const refused = new Map<string, number>();
  let stop = false;
  const loops = Array.from({ length: clients }, async (_, c) => {
    for (let i = 0; !stop; i++) {
      try {
        const res = await api.submit({ image, command: ['sh', '-c', `echo c${c}-${i}; sleep 0.2`] });
        if (res.status === 202) accepted.push(res.body.id);
        else refused.set(String(res.status), (refused.get(String(res.status)) ?? 0) + 1);
      } catch (e) {
        const key = (e as { status?: number }).status ? String((e as { status: number }).status) : (e as Error).name;
        refused.set(key, (refused.get(key) ?? 0) + 1);
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  });
  return { accepted, refused, async stop() { stop = true; await Promise.all(loops); } };
}

for (const how of ['SIGKILL', 'shutdown'] as const) {
  test(`Redis restarted with ${how} under load: every job answered 202 reaches a final status`, { timeout: 90_000 }, async (t) => {
    const load = submitContinuously(4, stack.images.busybox);
    await waitUntil(async () => load.accepted.length >= 20, 20_000, 'jobs to be accepted before the restart');
    const before = load.accepted.length;
    await redis.restart(how, 1000); // down long enough that jobs end and clients submit meanwhile
    await waitUntil(async () => load.accepted.length >= before + 20, 30_000, 'jobs to be accepted again after the restart');
    await load.stop();
    t.diagnostic(`${load.accepted.length} jobs accepted (202), refused meanwhile: ${JSON.stringify(Object.fromEntries(load.refused))}`);

    const settling = Date.now();
    const docs = new Map<string, { status: string; error?: unknown } | null>();
    await waitUntil(async () => {
      for (const id of load.accepted) {
        if (docs.has(id) && (docs.get(id) === null || FINAL.includes(docs.get(id)!.status))) continue;
        const res = await api.get(id).catch(() => null);
        docs.set(id, res?.status === 404 ? null : res?.status === 200 ? { status: res.body.status, error: res.body.error } : { status: 'unreadable' });
      }
      return [...docs.values()].every((d) => d === null || FINAL.includes(d.status));
    }, 45_000, 'every accepted job to be final').catch(() => {});
    const lost = load.accepted.filter((id) => docs.get(id) === null);
    const open = load.accepted.filter((id) => docs.get(id) && !FINAL.includes(docs.get(id)!.status)).map((id) => `${id} ${docs.get(id)!.status}`);
    if (open.length) {
      const client = new Redis(redis.port, redis.host, { maxRetriesPerRequest: 2 });
      client.on('error', () => {});
      const logs = Object.fromEntries([['api', stack.api.log()], ...stack.workers.map((w, i) => [`worker ${i}`, w.log()])]);
      t.diagnostic(await jobsWhereabouts(client, open.slice(0, 10).map((line) => line.split(' ')[0]!), logs).catch((e: Error) => `where they stand could not be read: ${e.message}`));
      client.disconnect();
    }
    assert.deepEqual(lost, [], `jobs answered 202 and then lost (${how})`);
    assert.deepEqual(open, [], `jobs left non-final (${how})`);
    const outcomes = new Map<string, number>();
    for (const d of docs.values()) {
      const key = d!.status === 'error' ? `error/${(d!.error as { code: string }).code}` : d!.status;
      outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
    }
    t.diagnostic(`outcomes: ${JSON.stringify(Object.fromEntries(outcomes))}; all final ${Date.now() - settling} ms after the load stopped`);
  });
}
