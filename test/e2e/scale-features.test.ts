/**
 * Every user-facing feature with the requests of one user spread over two API processes (as behind a
 * load balancer) and the jobs over two workers, Redis the only shared state.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { attachJob, SbxClient, type Job } from '../../client/src/index.ts';
import { waitUntil } from '../harness/redis.ts';
import { startApi, startStack, type ManagedProcess, type Stack } from '../harness/stack.ts';
import { startWebhookReceiver, type WebhookReceiver } from '../harness/webhook-receiver.ts';

const SECRET = 'whsec-scale-0123456789abcdefghijklmnop';
let stack: Stack;
let secondApi: ManagedProcess;
let a: SbxClient;
let b: SbxClient;
let receiver: WebhookReceiver;

before(async () => {
  receiver = await startWebhookReceiver({ '/hook': [200] });
  stack = await startStack({
    workers: 2,
    egressAllow: [`127.0.0.1:${receiver.port}`],
    env: { SBX_WORKER_SLOTS: '2', SBX_WEBHOOK_SECRETS: `*:${SECRET}` },
  });
  const second = await startApi('api-2', stack.env);
  secondApi = second.process;
  a = new SbxClient({ baseUrl: stack.apiUrl });
  b = new SbxClient({ baseUrl: second.url });
});
after(async () => {
  await a?.close();
  await b?.close();
  await secondApi?.kill();
  await stack?.stop();
  await receiver?.stop();
});

const ids = (lines: string) => [...lines.matchAll(/^id: (\S+)$/gm)].map((m) => m[1]!);

test('?wait=true answers with the output wherever the job runs', async () => {
  const runs = await Promise.all(Array.from({ length: 6 }, (_, i) => (i % 2 ? a : b).submit({ image: stack.images.busybox, command: ['sh', '-c', `sleep 0.3; echo w${i}`] }, { wait: true })));
  for (const [i, r] of runs.entries()) {
    assert.equal(r.status, 'succeeded');
    assert.equal(r.output?.stdout, `w${i}\n`);
  }
});

test('an event stream cut on one API resumes on the other with Last-Event-ID: every event once', async () => {
  const job = await a.submit({ image: stack.images.busybox, command: ['sh', '-c', 'for i in 1 2 3 4 5 6; do echo l$i; sleep 0.2; done'] });
  const abort = new AbortController();
  const first = await fetch(`${stack.apiUrl}/v1/jobs/${job.id}/events`, { signal: abort.signal });
  const reader = first.body!.getReader();
  let text = '';
  while (!/data: \{"data":"l2\\n"\}/.test(text)) text += Buffer.from((await reader.read()).value!).toString();
  abort.abort();
  // Up to the last complete event.
  text = text.slice(0, text.lastIndexOf('\n\n') + 2);
  const last = ids(text).at(-1)!;
  const rest = await (await fetch(`${b.baseUrl}/v1/jobs/${job.id}/events`, { headers: { 'last-event-id': last } })).text();
  const all = text + rest;
  const out = [...all.matchAll(/^data: \{"data":"(l\d)\\n"\}$/gm)].map((m) => m[1]);
  assert.deepEqual(out, ['l1', 'l2', 'l3', 'l4', 'l5', 'l6'], all);
  const every = ids(all);
  assert.equal(new Set(every.filter((x, i) => every.indexOf(x) === i)).size, new Set(every).size);
  assert.match(rest, /^event: exit$/m);
});

test('POST ?stream=true on one API, the job read on the other', async () => {
  const { id, events } = await b.follow({ image: stack.images.busybox, command: ['sh', '-c', 'echo s1; sleep 0.2; echo s2'] });
  let out = '';
  for await (const e of events) if (e.type === 'stdout') out += e.data;
  assert.equal(out, 's1\ns2\n');
  assert.equal((await a.get(id)).status, 'succeeded');
});

test('DELETE ?graceMs on the API that did not accept the job: the command gets its signal and time, output kept', async () => {
  const job = await a.submit({ image: stack.images.busybox, command: ['sh', '-c', 'trap "echo got TERM; sleep 0.3; echo bye; exit 0" TERM; echo ready; while :; do sleep 0.1; done'] });
  for await (const e of b.events(job.id)) if (e.type === 'stdout' && e.data.includes('ready')) break;
  const answer = await b.cancel(job.id, { graceMs: 5000 });
  assert.ok(['running', 'cancelled'].includes(answer.status), answer.status);
  const end = await a.wait(job.id, { output: true, timeoutMs: 20_000 });
  assert.equal(end.status, 'cancelled');
  assert.equal(end.output?.stdout, 'ready\ngot TERM\nbye\n');
});

test('DELETE of a queued job on the other API: it never starts', async () => {
  // Fill every slot (2 workers x 2), then one more waits.
  // Long enough that no slot frees before the cancel, however slow this machine is; cancelled after.
  const fill = await Promise.all(Array.from({ length: 4 }, () => a.submit({ image: stack.images.busybox, command: ['sleep', '60'] })));
  await waitUntil(async () => (await Promise.all(fill.map((f) => a.get(f.id)))).every((d) => d.status === 'running'), 20_000, 'the slots to fill');
  const queued = await a.submit({ image: stack.images.busybox, command: ['echo', 'never'] });
  const cancelled = await b.cancel(queued.id);
  assert.equal(cancelled.status, 'cancelled');
  await Promise.all(fill.map((f) => b.cancel(f.id)));
  await Promise.all(fill.map((f) => a.wait(f.id)));
  const doc = await a.get(queued.id, { output: true });
  assert.equal(doc.status, 'cancelled');
  assert.equal(doc.output?.stdout, '');
});

test('the same idempotencyKey on both APIs at once: one job, every answer names it', async () => {
  for (let round = 0; round < 3; round++) {
    const key = `scale-key-${round}-${Date.now()}`;
    const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).submit({ image: stack.images.busybox, command: ['echo', 'once'], idempotencyKey: key }, { wait: i < 4 })));
    const distinct = new Set(answers.map((x) => x.id));
    assert.equal(distinct.size, 1, `round ${round}: ${[...distinct].join(', ')}`);
  }
});

test('?wait=true with an idempotencyKey replayed on the other API answers as soon as the job ends', async () => {
  const key = `wait-replay-${Date.now()}`;
  const job = { image: stack.images.busybox, command: ['sh', '-c', 'sleep 1; echo done'], idempotencyKey: key };
  const first = a.submit(job, { wait: true });
  await new Promise((r) => setTimeout(r, 200));
  const t0 = Date.now();
  const second = await b.submit(job, { wait: true });
  const took = Date.now() - t0;
  const firstDoc = await first;
  assert.equal(second.id, firstDoc.id);
  assert.equal(second.status, 'succeeded');
  assert.equal(second.output?.stdout, 'done\n');
  assert.ok(took < 4500, `the replay answered ${took} ms after it was sent (the job takes ~1 s; a 5 s poll would answer after 5 s)`);
});

test('two clients attached through different APIs both get all output; stdin from either reaches the job', async () => {
  const job = await a.submit({ image: stack.images.busybox, openStdin: true, command: ['sh', '-c', 'read x; echo "x=$x"; read y; echo "y=$y"'] });
  const outA: string[] = [];
  const outB: string[] = [];
  const atA = await attachJob(job.id, { baseUrl: stack.apiUrl, logs: true, onOutput: (_s, d) => outA.push(d.toString()) });
  const atB = await attachJob(job.id, { baseUrl: b.baseUrl, logs: true, onOutput: (_s, d) => outB.push(d.toString()) });
  await atA.write('one\n');
  await waitUntil(async () => outA.join('').includes('x=one') && outB.join('').includes('x=one'), 20_000, 'the first echo on both');
  await atB.write('two\n');
  const [endA, endB] = await Promise.all([atA.ended, atB.ended]);
  assert.equal(endA?.status, 'succeeded');
  assert.equal(endB?.status, 'succeeded');
  assert.equal(outA.join(''), 'x=one\ny=two\n');
  assert.equal(outB.join(''), 'x=one\ny=two\n');
});

test('GET /v1/jobs cursors made by one API page on through the other: every job once', async () => {
  const made = await Promise.all(Array.from({ length: 7 }, () => a.submit({ image: stack.images.busybox, command: ['true'] })));
  const seen: string[] = [];
  let cursor: string | undefined;
  let page = 0;
  do {
    const p = await (page++ % 2 ? a : b).list({ limit: 3, cursor });
    seen.push(...p.items.map((j) => j.id));
    cursor = p.nextCursor ?? undefined;
  } while (cursor);
  assert.equal(new Set(seen).size, seen.length, 'no job twice');
  for (const m of made) assert.ok(seen.includes(m.id), `${m.id} listed`);
});

test('a webhook is delivered once, not once per API or per worker', async () => {
  const jobs: Job[] = [];
  for (let i = 0; i < 6; i++) jobs.push(await (i % 2 ? a : b).submit({ image: stack.images.busybox, command: ['echo', `h${i}`], callbackUrl: receiver.url('/hook') }));
  await Promise.all(jobs.map((j) => a.wait(j.id, { timeoutMs: 20_000 })));
  await waitUntil(async () => jobs.every((j) => receiver.on('/hook').some((r) => r.headers['sbx-webhook-id'] === j.id)), 20_000, 'every webhook');
  await new Promise((r) => setTimeout(r, 1500));
  for (const j of jobs) assert.equal(receiver.on('/hook').filter((r) => r.headers['sbx-webhook-id'] === j.id).length, 1, j.id);
});

test('/v1/workers and /v1/images are the same from both APIs', async () => {
  const [wa, wb] = await Promise.all([a.workers(), b.workers()]);
  assert.deepEqual(wa.map((w) => w.id).sort(), wb.map((w) => w.id).sort());
  assert.equal(wa.length, 2);
  const [ia, ib] = await Promise.all([a.images(), b.images()]);
  assert.deepEqual(ia.map((i) => `${i.image}@${i.digest}:${[...i.workers].sort()}`).sort(), ib.map((i) => `${i.image}@${i.digest}:${[...i.workers].sort()}`).sort());
});
