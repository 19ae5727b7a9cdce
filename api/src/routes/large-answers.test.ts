/**
 * P48 against a real API process: no answer holds much of the API's memory for a client that does
 * not read it. A job's output in a JSON answer (`GET ?output=true`, `POST ?wait=true`) is written as
 * the client takes it, a page at a time: assembled whole, 50 such clients of one 16 MiB output held
 * 2 GB of the API. The streamed body is the same document: every byte of both streams, in order,
 * escaped as JSON. A page of `GET /v1/jobs` holds about 1 MiB of documents (a job's command may be
 * up to the body limit: 100 such documents made one 82 MiB answer).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { JobStore } from '../../../core/src/job-store.ts';
import type { JobDocument } from '../../../core/src/job-spec.ts';
import { RedisKeys } from '../../../core/src/redis-keys.ts';
import { monitorRedis } from '../../../test/harness/redis-monitor.ts';
import { useApiProcess } from '../../../test/harness/api-process.ts';
import { finishedJob, growthUnderIdleReaders, type OutputChunk } from '../../../test/harness/idle-readers.ts';

const MiB = 2 ** 20;
const stack = useApiProcess();

test('a long output comes whole and exact, interleaved streams apart, every character escaped', async () => {
  const odd = 'quote " backslash \\ tab \t nul \u0000 bell \u0007 é 😀 \u2028 </script>\n';
  const chunks: OutputChunk[] = [];
  let stdout = '';
  let stderr = '';
  for (let i = 0; i < 3000; i++) {
    const type = i % 3 === 2 ? 'stderr' : 'stdout';
    const data = `${i} ${odd}`.repeat(1 + (i % 40));
    chunks.push({ type, data });
    if (type === 'stdout') stdout += data;
    else stderr += data;
  }
  assert.ok(stdout.length + stderr.length > 2 * MiB, 'long enough to be streamed');
  const doc = await finishedJob(stack, chunks);
  const res = await fetch(`${stack.api.url}/v1/jobs/${doc.id}?output=true`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
  const got = (await res.json()) as JobDocument;
  assert.equal(got.output?.stdout, stdout);
  assert.equal(got.output?.stderr, stderr);
  assert.equal(got.id, doc.id);
  assert.equal(got.status, 'succeeded');
  assert.equal(got.exitCode, 0);

  // A short one is answered as before, in one piece.
  const short = await finishedJob(stack, [{ type: 'stdout', data: 'hi\n' }, { type: 'stderr', data: 'oops\n' }]);
  const shortRes = await fetch(`${stack.api.url}/v1/jobs/${short.id}?output=true`);
  assert.ok(shortRes.headers.get('content-length'), 'a short output has its length');
  assert.deepEqual(((await shortRes.json()) as JobDocument).output, { stdout: 'hi\n', stderr: 'oops\n' });
});

/** The job's answer with its output, and where each XRANGE of its event stream the API sent started. */
async function answerAndReads(id: string): Promise<{ doc: JobDocument; starts: string[] }> {
  const events = new RedisKeys().jobEvents(id);
  const starts: string[] = [];
  const monitor = await monitorRedis(stack.redis.url, ({ args }) => {
    if (args[0]?.toLowerCase() === 'xrange' && args[1] === events) starts.push(args[2]!);
  });
  try {
    const res = await fetch(`${stack.api.url}/v1/jobs/${id}?output=true`);
    assert.equal(res.status, 200);
    const doc = (await res.json()) as JobDocument;
    // MONITOR reports a command as Redis runs it: the last read ran before the answer ended.
    return { doc, starts };
  } finally {
    await monitor.stop();
  }
}

test('a long stdout with a short stderr is read from Redis once; a long stderr again only from its first event', async () => {
  const line = (i: number) => `${i} "quoted" \\ tab\t ${'z'.repeat(20 * 1024)}\n`;
  const stdoutOnly = Array.from({ length: 150 }, (_, i) => ({ type: 'stdout' as const, data: line(i) }));
  const short = await finishedJob(stack, [...stdoutOnly.slice(0, 75), { type: 'stderr', data: 'warning: "x"\n' }, ...stdoutOnly.slice(75), { type: 'stderr', data: 'done\n' }]);
  const once = await answerAndReads(short.id);
  assert.equal(once.doc.output?.stdout, stdoutOnly.map((c) => c.data).join(''));
  assert.equal(once.doc.output?.stderr, 'warning: "x"\ndone\n');
  // The short look (64 events), then one pass from the start; before, a second pass for stderr.
  assert.deepEqual(once.starts.filter((s) => s === '-'), ['-', '-'], `reads from the start: ${once.starts.join(' ')}`);

  // stderr past what is held (about 256 KiB), starting after 100 stdout events: read again from there.
  const errLines = Array.from({ length: 30 }, (_, i) => ({ type: 'stderr' as const, data: `err ${i} ${'e'.repeat(16 * 1024)}\n` }));
  const long = await finishedJob(stack, [...stdoutOnly.slice(0, 100), ...errLines, ...stdoutOnly.slice(100)]);
  const all = await new JobStore(stack.redis.client(), new RedisKeys(), 3600).readEvents(long.id, '0', 1000);
  const beforeFirstErr = all[all.findIndex((e) => e.type === 'stderr') - 1]!.id;
  const again = await answerAndReads(long.id);
  assert.equal(again.doc.output?.stdout, stdoutOnly.map((c) => c.data).join(''));
  assert.equal(again.doc.output?.stderr, errLines.map((c) => c.data).join(''));
  assert.deepEqual(again.starts.filter((s) => s === '-'), ['-', '-'], `reads from the start: ${again.starts.join(' ')}`);
  assert.ok(again.starts.includes(`(${beforeFirstErr}`), `stderr read again from its first event: ${again.starts.join(' ')}`);
});

test('60 clients asking for a 16 MiB output and never reading the answer leave the API\'s memory bounded', async () => {
  const chunk = 'x'.repeat(32 * 1024) + '\n';
  const count = Math.floor(16 * MiB / chunk.length);
  const doc = await finishedJob(stack, Array.from({ length: count }, () => ({ type: 'stdout' as const, data: chunk })));
  const grown = await growthUnderIdleReaders(stack.api, Array(60).fill(`/v1/jobs/${doc.id}?output=true`));
  assert.ok(grown < 500, `the API grew by ${grown.toFixed(0)} MiB`);
  // And it still answers.
  const res = await fetch(`${stack.api.url}/v1/jobs/${doc.id}?output=true`);
  assert.equal(((await res.json()) as JobDocument).output?.stdout, chunk.repeat(count));
});

test('a page of jobs holds about 1 MiB of documents: large ones come a few a page, and paging on lists each job once', async () => {
  const arg = 'a'.repeat(120 * 1024);
  const ids: string[] = [];
  for (let i = 0; i < 12; i++) {
    const command = i % 3 === 0 ? ['echo', String(i)] : [...Array(6).fill(arg), String(i)];
    const res = await fetch(`${stack.api.url}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ image: '127.0.0.1:5000/test/busybox:latest', command }) });
    assert.equal(res.status, 202, await res.clone().text());
    ids.push(((await res.json()) as JobDocument).id);
  }
  const first = (await (await fetch(`${stack.api.url}/v1/jobs?limit=100`)).json()) as { items: JobDocument[]; nextCursor: string | null };
  assert.ok(first.items.length >= 1 && first.items.length <= 3, `${first.items.length} documents of 720 KiB in one page`);
  assert.ok(first.nextCursor, 'a page cut short has a nextCursor');
  const listed: string[] = [];
  let cursor: string | null = null;
  do {
    const page = (await (await fetch(`${stack.api.url}/v1/jobs?limit=100${cursor ? `&cursor=${cursor}` : ''}`)).json()) as { items: JobDocument[]; nextCursor: string | null };
    listed.push(...page.items.map((j) => j.id));
    cursor = page.nextCursor;
  } while (cursor);
  const mine = listed.filter((id) => ids.includes(id));
  assert.deepEqual(mine, [...ids].reverse(), 'every job once, newest first');

  const grown = await growthUnderIdleReaders(stack.api, Array(60).fill('/v1/jobs?limit=100'));
  assert.ok(grown < 300, `the API grew by ${grown.toFixed(0)} MiB`);
});

test('40 clients following 40 jobs\' 8 MiB event streams, or attached to them, without reading hold about a page each', async () => {
  const chunk = 'y'.repeat(64 * 1024);
  const jobs = [];
  for (let i = 0; i < 40; i++) jobs.push(await finishedJob(stack, Array.from({ length: 128 }, () => ({ type: 'stdout' as const, data: chunk }))));
  // A page of 1,000 events was all of each job's 8 MiB, held per reader.
  const grown = await growthUnderIdleReaders(stack.api, jobs.map((j) => `/v1/jobs/${j.id}/events`));
  assert.ok(grown < 250, `the API grew by ${grown.toFixed(0)} MiB`);
  // The same through attach sockets that replay the output (?logs=true) and are never read.
  const upgrade = 'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n';
  const grownAttach = await growthUnderIdleReaders(stack.api, jobs.map((j) => `/v1/jobs/${j.id}/attach?logs=true`), upgrade);
  assert.ok(grownAttach < 250, `attach: the API grew by ${grownAttach.toFixed(0)} MiB`);
  // A reader that reads gets every event.
  const res = await fetch(`${stack.api.url}/v1/jobs/${jobs[0]!.id}/events`);
  const text = await res.text();
  assert.equal(text.split('event: stdout').length - 1, 128);
  assert.match(text, /event: exit/);
});
