/**
 * An API process stopped (SIGTERM: a rolling restart) while clients wait on it. Before, it closed
 * Redis and exited within milliseconds: a `POST ?wait=true` in flight got no answer at all
 * (UND_ERR_SOCKET, "other side closed"), so the client never learnt the id of the job it had
 * started, which ran on; sent again, it ran twice. Now each wait answers 202 with the job as it
 * stands (api.md's answer once the wait cap passes, Location included) and each event stream ends,
 * to be resumed on another API process with Last-Event-ID.
 * `sbx run` whose API went away for good named no job (the job went on, found only by listing);
 * it now says which job goes on and how to follow or stop it.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, test } from 'node:test';
import { SbxClient } from '../../client/src/index.ts';
import { startApiProcess } from '../harness/api-process.ts';
import { waitUntil } from '../harness/redis.ts';
import { startStack, type Stack } from '../harness/stack.ts';

const SBX = new URL('../../cli/bin/sbx.js', import.meta.url).pathname;
let stack: Stack;
before(async () => {
  stack = await startStack();
});
after(async () => {
  await stack?.stop();
});

test('SIGTERM to an API with a ?wait=true and an event stream in flight: the wait answers 202 with the job, the stream ends, another API has the rest', { timeout: 90_000 }, async () => {
  const api = await startApiProcess({ ...stack.env, SBX_API_PORT: '0' });
  const body = JSON.stringify({ image: stack.images.busybox, command: ['sh', '-c', 'sleep 2; echo done'] });
  const waiting = fetch(`${api.url}/v1/jobs?wait=true`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  const followed = await new SbxClient(api.url).submit({ image: stack.images.busybox, command: ['sh', '-c', 'echo early; sleep 2; echo late'] });
  const stream = await fetch(`${api.url}/v1/jobs/${followed.id}/events`);
  const reader = stream.body!.getReader();
  let streamed = '';
  const read = (async () => {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      streamed += Buffer.from(value).toString();
    }
  })();
  await waitUntil(async () => streamed.includes('early'), 20_000, 'the stream\'s first output');
  await api.kill('SIGTERM');
  assert.equal(api.child.exitCode, 0, api.log());

  const answer = await waiting;
  assert.equal(answer.status, 202, 'the wait answered with the job as it stands');
  const doc = (await answer.json()) as { id: string; status: string };
  assert.equal(answer.headers.get('location'), `/v1/jobs/${doc.id}`);
  assert.ok(['queued', 'pulling', 'running'].includes(doc.status), doc.status);
  await read; // the stream ended (not reset)
  const lastId = [...streamed.matchAll(/^id: (\S+)$/gm)].at(-1)?.[1];
  assert.ok(lastId, streamed);

  // Another API process has the rest: the waited job's end, the stream's remainder from its last id.
  const other = new SbxClient(stack.apiUrl);
  assert.equal((await other.wait(doc.id, { timeoutMs: 30_000, output: true })).output?.stdout, 'done\n');
  const rest = await (await fetch(`${stack.apiUrl}/v1/jobs/${followed.id}/events`, { headers: { 'last-event-id': lastId } })).text();
  assert.match(rest, /^data: \{"data":"late\\n"\}$/m);
  assert.doesNotMatch(rest, /^data: \{"data":"early\\n"\}$/m, 'resumed after what was sent');
});

test('sbx run whose API goes away for good: it says which job goes on and how to follow it (exit 125)', { timeout: 90_000 }, async () => {
  const api = await startApiProcess({ ...stack.env, SBX_API_PORT: '0' });
  const sbx = spawn(process.execPath, [SBX, 'run', stack.images.busybox, 'sh', '-c', 'echo started; sleep 30'], { env: { ...process.env, SBX_HOST: api.url }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  sbx.stdout.on('data', (d: Buffer) => (out += d.toString()));
  sbx.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((r) => sbx.once('exit', (code) => r(code)));
  await waitUntil(async () => out.includes('started'), 30_000, 'the job\'s first output');
  await api.kill('SIGKILL');
  assert.equal(await exited, 125, err);
  const id = /sbx: lost the output of job (j_[0-9A-Z]{26}), which goes on: follow it with "sbx logs -f \1", stop it with "sbx kill \1"/.exec(err)?.[1];
  assert.ok(id, err);
  const job = await new SbxClient(stack.apiUrl).get(id);
  assert.equal(job.status, 'running', 'the job it names goes on');
  await new SbxClient(stack.apiUrl).cancel(id);
});
