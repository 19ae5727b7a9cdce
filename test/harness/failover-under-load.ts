/**
 * A Redis failover while jobs are queued, pulling, running and streaming output, as the chaos tests
 * of each Redis mode run it (test/e2e/chaos-cluster-failover.test.ts, chaos-sentinel-kill.test.ts):
 * long jobs streaming, a client following one, a trickle of submissions, the failover; then every
 * job must end, and since the failover is within the heartbeat limit, succeed with all its output
 * (404 only for a job whose record the master took and never replicated); a submission meanwhile is
 * answered 202 or 503 within a bound; and the stack goes on taking and running jobs on both workers.
 */
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import type { SbxClient } from './api-client.ts';
import { waitUntil } from './redis.ts';
import type { Stack } from './stack.ts';

const FINAL = ['succeeded', 'failed', 'timeout', 'oom', 'cancelled', 'error'];

/** How long a submission may take during the failover: the API fails fast (503) while Redis cannot serve. */
const SUBMIT_BOUND_MS = 5000;

interface Seen {
  status: string;
  error: { code: string; message: string } | null;
  stdout: string;
  worker: string | null;
}

export interface FailoverUnderLoad {
  api: SbxClient;
  stack: Stack;
  /** The failover itself; resolves once the new master serves: the old and new master's addresses. */
  failover(): Promise<{ from: string; to: string }>;
  /** What was done to the master, for the diagnostics ("killed", "handed over"). */
  done: string;
  /** Where jobs left non-final stand in Redis (after the failover), for the diagnostics. */
  whereabouts(ids: string[], newMaster: string): Promise<string>;
}

export async function failoverUnderLoad(t: TestContext, o: FailoverUnderLoad): Promise<void> {
  const { api, stack } = o;
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
  const { from, to } = await o.failover();
  t.diagnostic(`master ${from} ${o.done}, ${to} serves ${Date.now() - started} ms later`);
  await new Promise((r) => setTimeout(r, 1000)); // submissions go on against the new master
  stop = true;
  await trickle;
  t.diagnostic(`submissions meanwhile answered ${JSON.stringify(Object.fromEntries(answers))}, the slowest in ${slowest} ms`);
  // No master is Redis unavailable (503, retry), not a bug of sbx (500), nor a reason to hold the client.
  assert.deepEqual([...answers.keys()].filter((s) => s !== '202' && s !== '503'), [], `submissions answered other than 202 or 503 (within ${SUBMIT_BOUND_MS} ms) during the failover`);

  const seen = await settle(api, [...expected.keys()], 30_000);
  const open = [...seen].filter(([, d]) => d && !FINAL.includes(d.status)).map(([id, d]) => `${id} ${d!.status}`);
  if (open.length) t.diagnostic(await o.whereabouts(open.slice(0, 5).map((l) => l.split(' ')[0]!), to));
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
    const key = d === null ? 'gone (created just before the failover, not replicated)' : d.status === 'error' ? `error/${d.error!.code}` : d.status;
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
}

/** One submission of `echo <line>`, given up after `ms` (a TimeoutError): a request held through the failover is a failure too. */
async function submitWithin(apiUrl: string, image: string, line: string, ms: number): Promise<{ status: number; id?: string }> {
  const res = await fetch(`${apiUrl}/v1/jobs`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ image, command: ['echo', line] }), signal: AbortSignal.timeout(ms),
  });
  const body = (await res.json().catch(() => ({}))) as { id?: string };
  return { status: res.status, id: body.id };
}

/** Each job's last state (null: 404), read until all are final or `timeoutMs` has passed. */
async function settle(api: SbxClient, ids: string[], timeoutMs: number): Promise<Map<string, Seen | null>> {
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

function logTails(stack: Stack): string {
  return [stack.api, ...stack.workers].map((p) => `--- ${p.name}\n${p.log().slice(-3000)}`).join('\n');
}
