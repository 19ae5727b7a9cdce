/**
 * Chaos: a Sentinel failover (the replica promoted, the master demoted: Sentinel kills their
 * clients, which ask it for the new master) while jobs are queued, pulling, running and streaming
 * output. Replication is asynchronous, so the last writes before the switch may be gone on the new
 * master. Every job must end: finished, or with a clear error; none stays non-final.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { SbxClient } from '../harness/api-client.ts';
import type { RunningRedisSentinel } from '../harness/redis-sentinel.ts';
import { waitUntil } from '../harness/redis.ts';
import { startStack, type Stack } from '../harness/stack.ts';

const FINAL = ['succeeded', 'failed', 'timeout', 'oom', 'cancelled', 'error'];

let stack: Stack;
let api: SbxClient;

before(async () => {
  stack = await startStack({ redisSentinel: { replicas: 1 }, workers: 2, env: { SBX_WORKER_SLOTS: '4' } });
  api = new SbxClient(stack.apiUrl);
});
after(async () => {
  await stack?.stop();
});

test('a Sentinel failover mid-job: every job finishes or ends with a clear error, none stays non-final', { timeout: 90_000 }, async (t) => {
  const ids: string[] = [];
  const submit = async (command: string[]) => {
    const res = await api.submit({ image: stack.images.busybox, command });
    assert.equal(res.status, 202, JSON.stringify(res.body));
    ids.push(res.body.id);
  };
  // Long enough to span the failover, streaming meanwhile; and short ones around it.
  for (let i = 0; i < 6; i++) await submit(['sh', '-c', `for n in $(seq 1 30); do echo s${i}-$n; sleep 0.1; done`]);
  await waitUntil(async () => (await Promise.all(ids.map((id) => api.get(id)))).filter((r) => r.body.status === 'running').length >= 4, 20_000, 'jobs to run');
  let stop = false;
  const trickle = (async () => {
    for (let i = 0; !stop; i++) {
      const res = await api.submit({ image: stack.images.busybox, command: ['echo', `t${i}`] }).catch(() => null);
      if (res?.status === 202) ids.push(res.body.id);
      await new Promise((r) => setTimeout(r, 30));
    }
  })();
  await (stack.redis as RunningRedisSentinel).failover();
  await new Promise((r) => setTimeout(r, 1000)); // submissions go on against the new master
  stop = true;
  await trickle;

  const docs = new Map<string, { status: string; error: { code: string; message: string } | null } | null>();
  await waitUntil(async () => {
    for (const id of ids) {
      const d = docs.get(id);
      if (d === null || (d && FINAL.includes(d.status))) continue;
      const res = await api.get(id).catch(() => null);
      docs.set(id, res?.status === 404 ? null : res?.status === 200 ? { status: res.body.status, error: res.body.error } : { status: 'unreadable', error: null });
    }
    return [...docs.values()].every((d) => d === null || FINAL.includes(d.status));
  }, 45_000, 'every job to be final').catch(() => {});
  const open = ids.filter((id) => docs.get(id) && !FINAL.includes(docs.get(id)!.status)).map((id) => `${id} ${docs.get(id)!.status}`);
  assert.deepEqual(open, [], 'jobs left non-final after the failover');
  const unclear = ids.filter((id) => docs.get(id)?.status === 'error' && !docs.get(id)!.error?.code).map((id) => id);
  assert.deepEqual(unclear, [], 'jobs ended error without a code');
  const outcomes = new Map<string, number>();
  for (const d of docs.values()) {
    const key = d === null ? 'gone (created just before the switch, not replicated)' : d.status === 'error' ? `error/${d.error!.code}` : d.status;
    outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
  }
  t.diagnostic(`${ids.length} jobs: ${JSON.stringify(Object.fromEntries(outcomes))}`);
});
