/**
 * Attach sockets against a real API process, from clients that misbehave:
 *  - refused frames sent faster than their answers are read: the connection is dropped once the
 *    answers would hold more than a bound (before: 2M one-byte frames held 750 MiB of the API);
 *  - sockets on a job whose stdin stream is full (it does not read): each socket has at most one
 *    heartbeat in flight, and none retried while the stream is full (before: every beat retried
 *    every 100 ms until there was room, so Redis calls grew without bound);
 *  - sockets reset just after the 101: no subscription to the job's channel is left behind (before:
 *    one in four stayed subscribed until the API restarted).
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { test } from 'node:test';
import WebSocket from 'ws';
import type { JobDocument } from '../../../core/src/job-spec.ts';
import { RedisKeys } from '../../../core/src/redis-keys.ts';
import { useApiProcess } from '../../../test/harness/api-process.ts';
import { waitUntil } from '../../../test/harness/redis.ts';

const stack = useApiProcess();
const IMAGE = '127.0.0.1:5000/test/busybox:latest';

/** An interactive job that stays queued (no worker here): attach sockets to it stay open. */
async function interactiveJob(extra: Record<string, unknown> = {}): Promise<string> {
  const res = await fetch(`${stack.api.url}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ image: IMAGE, command: ['cat'], openStdin: true, ...extra }) });
  assert.equal(res.status, 202, await res.clone().text());
  return ((await res.json()) as JobDocument).id;
}

const wsUrl = (id: string) => `${stack.api.url.replace(/^http/, 'ws')}/v1/jobs/${id}/attach`;

async function evalCalls(): Promise<number> {
  const info = await stack.redis.client().info('commandstats');
  return [...info.matchAll(/cmdstat_(?:evalsha|eval):calls=(\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
}

test('a client sending refused frames without reading the answers is dropped once they pass the bound', async (ctx) => {
  const id = await interactiveJob();
  const ws = new WebSocket(wsUrl(id), ['sbx.v1']);
  ctx.after(() => ws.terminate());
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  ws.on('error', () => {}); // the reset
  const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
  // It never reads: its answers (about 100 bytes each, 30 MB in all) fill the kernel's buffers, then the API's.
  (ws as unknown as { _socket: { pause(): void } })._socket.pause();
  for (let i = 0; i < 300_000; i++) ws.send('x'); // each refused: "text frames are JSON objects"
  // And it goes on sending (a socket that reads nothing learns of the drop when it writes next).
  const more = setInterval(() => ws.readyState === WebSocket.OPEN && ws.send('x'), 200);
  ctx.after(() => clearInterval(more));
  const code = await Promise.race([closed, new Promise<string>((r) => setTimeout(() => r('still open after 60 s'), 60_000))]);
  assert.equal(code, 1006, 'dropped (before: every refusal answered and kept until read, for as long as the client sent)');
  assert.equal(stack.api.child.exitCode, null);
  const ok = await fetch(`${stack.api.url}/healthz`);
  assert.equal(ok.status, 200);
});

test('sockets attached to a job whose stdin stream is full keep one heartbeat in flight each, not a growing pile of retries', async () => {
  // Beats every 333 ms (idleTimeoutMs / 3); queued with no worker, nothing reads the stream: it fills.
  const id = await interactiveJob({ limits: { idleTimeoutMs: 1000 } });
  const sockets = await Promise.all(Array.from({ length: 8 }, async () => {
    const ws = new WebSocket(wsUrl(id), ['sbx.v1']);
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    return ws;
  }));
  try {
    const stdin = new RedisKeys().jobStdin(id);
    await waitUntil(async () => (await stack.redis.client().xlen(stdin)) >= 64, 20_000, 'the stream to fill with heartbeats');
    await new Promise((r) => setTimeout(r, 2000)); // a pile of retries, if any, builds up
    const before = await evalCalls();
    await new Promise((r) => setTimeout(r, 2000));
    const calls = (await evalCalls()) - before;
    // 8 sockets beating 3 times a second: at most 48 scripts in 2 s. Before: about 2,000 and growing.
    assert.ok(calls <= 100, `${calls} Redis scripts in 2 s while the stream was full`);
  } finally {
    for (const ws of sockets) ws.terminate();
  }
});

test('attach sockets reset just after the 101 leave no subscription to the job\'s channel', async () => {
  const id = await interactiveJob();
  const { hostname, port } = new URL(stack.api.url);
  const request = `GET /v1/jobs/${id}/attach HTTP/1.1\r\nHost: sbx\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: sbx.v1\r\n\r\n`;
  for (let i = 0; i < 100; i++) {
    await new Promise<void>((resolve) => {
      const socket = connect(Number(port), hostname, () => socket.write(request));
      socket.once('data', () => socket.resetAndDestroy()); // the 101
      socket.on('error', () => {});
      socket.on('close', () => resolve());
    });
  }
  const channel = new RedisKeys().jobNotify(id);
  const subscribed = async () => (await stack.redis.client().pubsub('CHANNELS', channel)) as string[];
  await waitUntil(async () => (await subscribed()).length === 0, 5000, 'the job\'s channel no longer subscribed (before: about one socket in four left its subscription)');
});

test('a text frame that is not a JSON object is refused naming the forms, not with a JavaScript error', async () => {
  const id = await interactiveJob();
  const ws = new WebSocket(wsUrl(id), ['sbx.v1']);
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  const answers: unknown[] = [];
  ws.on('message', (data, binary) => void (binary || answers.push(JSON.parse(data.toString()))));
  for (const text of ['null', '[]', '5', 'x', '"eof"']) ws.send(text);
  await waitUntil(async () => answers.filter((a) => (a as { type?: string }).type === 'error').length === 5, 5000, 'five refusals');
  ws.terminate();
  for (const a of answers.filter((x) => (x as { type?: string }).type === 'error')) {
    assert.deepEqual(a, { type: 'error', code: 'invalid_request', message: 'text frames are JSON objects: {"type":"eof"|"resize"|"signal",...}' }, 'before: "Cannot read properties of null (reading \'type\')" for null');
  }
});
