/**
 * Chaos: the Sentinel-monitored master SIGKILLed while jobs are queued, pulling, running and
 * streaming output (a crash, not chaos-sentinel-failover.test.ts's orderly SENTINEL FAILOVER). Three
 * Sentinels (quorum 2) notice after down-after-milliseconds (1 s here), agree, elect one of them,
 * which promotes the replica: about 2.3 s in all. Until then every connection to the master is
 * refused and the Sentinels still name it, so every client reconnects to a dead address again and
 * again. Replication is asynchronous: the last writes before the kill may be gone on the new master,
 * so a job accepted in that instant may be gone (404, as in the other failover tests: its record
 * was written, answered 202, and never reached the replica). Every other job must end, and since
 * the failover is well within the heartbeat limit, succeed with all its output; none stays
 * non-final; a submission meanwhile is answered 202 or 503, promptly; and the stack goes on taking
 * and running jobs on both workers.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Redis } from 'ioredis';
import { jobsWhereabouts } from '../harness/job-whereabouts.ts';
import { waitUntil } from '../harness/redis.ts';
import type { RunningRedisSentinel } from '../harness/redis-sentinel.ts';
import { useStack } from '../harness/use-stack.ts';

const FINAL = ['succeeded', 'failed', 'timeout', 'oom', 'cancelled', 'error'];

// The master's death stops every worker's heartbeat until the promotion: a worker whose heartbeat
// key expires meanwhile (5 heartbeats) counts as lost and kills its jobs (worker/src/redis-watchdog.ts).
// 1 s heartbeats keep that limit (5 s) well above the failover (down-after 1 s, the quorum's
// agreement and the election: ~2.3 s, with two busy loops beside it too) plus a reconnect, as a
// deployment must (README, "Sentinel failover": down-after-milliseconds well below 5 × SBX_HEARTBEAT_MS).
// failover-timeout 3 s: the promoted replica must be seen promoted within it (Sentinel reads its
// INFO every second meanwhile), or the failover is abandoned.
const e2e = useStack({
  redisSentinel: { replicas: 1, sentinels: 3, downAfterMs: 1000, failoverTimeoutMs: 3000 },
  workers: 2,
  env: { SBX_WORKER_SLOTS: '4', SBX_HEARTBEAT_MS: '1000', SBX_LOG_LEVEL: process.env.SBX_LOG_LEVEL ?? 'warn' },
});

/** How long a submission may take during the failover: the API fails fast (503) while Redis is down. */
const SUBMIT_BOUND_MS = 5000;

interface Seen {
  status: string;
  error: { code: string; message: string } | null;
  stdout: string;
  worker: string | null;
}

test('the Sentinel master SIGKILLed mid-job: every job finishes whole, none stays non-final, and the stack goes on', { timeout: 90_000 }, async (t) => {
  const { api, stack } = e2e;
  const expected = new Map<string, string>(); // id → the stdout the job prints
  const submit = async (lines: string[], sleep: number) => {
    const command = ['sh', '-c', `for l in ${lines.join(' ')}; do echo $l; sleep ${sleep}; done`];
    const res = await api.submit({ image: stack.images.busybox, command });
    if (res.status === 202) expected.set(res.body.id, lines.map((l) => `${l}\n`).join(''));
    return res;
  };
  // Long enough to span the failover, streaming meanwhile; and short ones around it.
  for (let i = 0; i < 6; i++) assert.equal((await submit(Array.from({ length: 40 }, (_, n) => `s${i}-${n}`), 0.1)).status, 202);
  await waitUntil(async () => (await Promise.all([...expected.keys()].map((id) => api.get(id)))).filter((r) => r.body.status === 'running').length >= 4, 20_000, 'jobs to run');
  // A client following one job's events across the failover (the API's reads and its pub/sub).
  const followed = [...expected.keys()][0]!;
  const streamed = api.events(followed).then((events) => events.filter((e) => e.event === 'stdout').map((e) => JSON.parse(e.data).data).join(''), (e: Error) => `the event stream failed: ${e.message}`);
  let stop = false;
  const answers = new Map<string, number>(); // the trickle's answers by status
  let slowest = 0;
  const trickle = (async () => {
    for (let i = 0; !stop; i++) {
      const sent = Date.now();
      const status = await submitWithin(stack.apiUrl, stack.images.busybox, `t${i}`, SUBMIT_BOUND_MS).then((r) => {
        if (r.status === 202) expected.set(r.id!, `t${i}\n`);
        return String(r.status);
      }, (e: Error) => e.name);
      slowest = Math.max(slowest, Date.now() - sent);
      answers.set(status, (answers.get(status) ?? 0) + 1);
      await new Promise((r) => setTimeout(r, 30));
    }
  })();
  const started = Date.now();
  const { from, to } = await (stack.redis as RunningRedisSentinel).failover('kill');
  t.diagnostic(`master ${from} killed, the Sentinels name ${to} ${Date.now() - started} ms later`);
  await new Promise((r) => setTimeout(r, 1000)); // submissions go on against the new master
  stop = true;
  await trickle;
  t.diagnostic(`submissions meanwhile answered ${JSON.stringify(Object.fromEntries(answers))}, the slowest in ${slowest} ms`);
  // No master is Redis unavailable (503, retry), not a bug of sbx (500), nor a reason to hold the client.
  assert.deepEqual([...answers.keys()].filter((s) => s !== '202' && s !== '503'), [], `submissions answered other than 202 or 503 (within ${SUBMIT_BOUND_MS} ms) during the failover`);

  const seen = await settle(api, [...expected.keys()], 30_000);
  const open = [...seen].filter(([, d]) => d && !FINAL.includes(d.status)).map(([id, d]) => `${id} ${d!.status}`);
  if (open.length) t.diagnostic(await whereabouts(stack, to, open.slice(0, 5).map((l) => l.split(' ')[0]!)));
  assert.deepEqual(open, [], 'jobs left non-final after the failover');
  // Every command exits 0, and the failover is well within the heartbeat limit: nothing may fail.
  const failed = [...seen].filter(([, d]) => d && d.status !== 'succeeded').map(([id, d]) => `${id} ${d!.status}${d!.error ? ` ${d!.error.code}: ${d!.error.message}` : ''}`);
  if (failed.length) t.diagnostic(logTails(stack));
  assert.deepEqual(failed, [], 'jobs that did not succeed');
  const torn = [...seen].filter(([id, d]) => d?.status === 'succeeded' && d.stdout !== expected.get(id)).map(([id, d]) => `${id}: ${JSON.stringify(d!.stdout.slice(-80))}`);
  assert.deepEqual(torn, [], 'finished jobs whose output is not whole');
  if (seen.get(followed)?.status === 'succeeded') assert.equal(await streamed, expected.get(followed), 'the events of a job followed across the failover');
  const outcomes = new Map<string, number>();
  for (const d of seen.values()) {
    const key = d === null ? 'gone (created just before the kill, not replicated)' : d.status === 'error' ? `error/${d.error!.code}` : d.status;
    outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
  }
  t.diagnostic(`${seen.size} jobs: ${JSON.stringify(Object.fromEntries(outcomes))}`);

  // The stack goes on: new jobs are taken and run whole, by both workers (neither stuck paused,
  // its watchdog lost, or its queue consumer hung on the dead master).
  const after = new Map<string, string>();
  for (let i = 0; i < 8; i++) {
    const res = await submit([`a${i}-1`, `a${i}-2`], 0.5);
    if (res.status !== 202) t.diagnostic(logTails(stack));
    assert.equal(res.status, 202, `a submission after the failover: ${JSON.stringify(res.body)}`);
    after.set(res.body.id, expected.get(res.body.id)!);
  }
  const afterSeen = await settle(api, [...after.keys()], 20_000);
  const notRun = [...afterSeen].filter(([id, d]) => d?.status !== 'succeeded' || d.stdout !== after.get(id)).map(([id, d]) => `${id} ${d?.status} ${JSON.stringify(d?.stdout)}`);
  if (notRun.length) t.diagnostic(logTails(stack));
  assert.deepEqual(notRun, [], 'jobs submitted after the failover that did not run whole');
  const ranOn = new Set([...afterSeen.values()].map((d) => d!.worker));
  assert.equal(ranOn.size, 2, `jobs after the failover ran on ${[...ranOn].join(', ')} only`);
  for (const w of stack.workers) assert.equal(w.child.exitCode, null, `${w.name} exited:\n${w.log().slice(-2000)}`);
});

/** One submission of `echo <line>`, given up after `ms` (a TimeoutError): a request held through the failover is a failure too. */
async function submitWithin(apiUrl: string, image: string, line: string, ms: number): Promise<{ status: number; id?: string }> {
  const res = await fetch(`${apiUrl}/v1/jobs`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ image, command: ['echo', line] }), signal: AbortSignal.timeout(ms),
  });
  const body = (await res.json().catch(() => ({}))) as { id?: string };
  return { status: res.status, id: body.id };
}

/** Each job's last state (null: 404), read until all are final or `timeoutMs` has passed. */
async function settle(api: typeof e2e.api, ids: string[], timeoutMs: number): Promise<Map<string, Seen | null>> {
  const seen = new Map<string, Seen | null>();
  await waitUntil(async () => {
    for (const id of ids) {
      const d = seen.get(id);
      if (d === null || (d && FINAL.includes(d.status))) continue;
      const res = await api.get(id, true).catch(() => null);
      seen.set(id, res?.status === 404 ? null
        : res?.status === 200 ? { status: res.body.status, error: res.body.error, stdout: res.body.output?.stdout ?? '', worker: res.body.worker }
        : { status: `unreadable (${res?.status ?? 'no answer'})`, error: null, stdout: '', worker: null });
    }
    return [...seen.values()].every((d) => d === null || FINAL.includes(d.status));
  }, timeoutMs, 'every job to be final').catch(() => {});
  return seen;
}

/** Where jobs left behind stand on the new master, and what the processes said of them. */
async function whereabouts(stack: typeof e2e.stack, master: string, ids: string[]): Promise<string> {
  const logs = Object.fromEntries([stack.api, ...stack.workers].map((p) => [p.name, p.log()]));
  const [host, port] = master.split(':');
  const client = new Redis(Number(port), host!, { maxRetriesPerRequest: 2 });
  client.on('error', () => {});
  try {
    return await jobsWhereabouts(client, ids, logs).catch((e: Error) => `where they stand could not be read: ${e.message}`);
  } finally {
    client.disconnect();
  }
}

function logTails(stack: typeof e2e.stack): string {
  return [stack.api, ...stack.workers].map((p) => `--- ${p.name}\n${p.log().slice(-3000)}`).join('\n');
}
