/**
 * P47 against a real API process: a client's WebSocket message on /attach is bounded. One over
 * MAX_CLIENT_MESSAGE_BYTES closes the socket with 1009 as soon as its length is announced, so no
 * attach socket holds more than that of the API's memory. ws's default (100 MiB per message) let
 * 8 sockets sending 64 MiB each grow the API by 760 MiB. Messages up to the bound pass, and the
 * client library splits larger writes so that they do. Tiny messages are merged into few frames
 * (api/src/attach-input.ts), so a flood of them holds little.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { WebSocket } from 'undici';
import { attachJob } from '../../../client/src/attach.ts';
import type { JobDocument } from '../../../core/src/job-spec.ts';
import { RedisKeys } from '../../../core/src/redis-keys.ts';
import { useApiProcess } from '../../../test/harness/api-process.ts';
import { waitUntil } from '../../../test/harness/redis.ts';
import { MAX_CLIENT_MESSAGE_BYTES } from './jobs-attach.ts';

const MiB = 2 ** 20;
const keys = new RedisKeys();
const stack = useApiProcess();

const rssMiB = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${stack.api.pid}/status`, 'utf8'))![1]) / 1024;

/** An interactive job that stays queued (no worker here): attach sockets to it stay open. */
async function interactiveJob(): Promise<string> {
  const res = await fetch(`${stack.api.url}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ image: '127.0.0.1:5000/test/busybox:latest', command: ['cat'], openStdin: true }) });
  assert.equal(res.status, 202, await res.clone().text());
  return ((await res.json()) as JobDocument).id;
}

async function open(id: string): Promise<{ ws: WebSocket; closed: Promise<number> }> {
  const ws = new WebSocket(`${stack.api.url.replace(/^http/, 'ws')}/v1/jobs/${id}/attach`, ['sbx.v1']);
  const closed = new Promise<number>((resolve) => ws.addEventListener('close', (e) => resolve(e.code)));
  await new Promise((resolve, reject) => {
    ws.addEventListener('open', resolve, { once: true });
    ws.addEventListener('error', reject, { once: true });
  });
  return { ws, closed };
}

/** The stdin bytes waiting for the job in its Redis stream. */
async function stdinBytes(id: string): Promise<number> {
  const rows = await stack.redis.client().xrangeBuffer(keys.jobStdin(id), '-', '+');
  return rows.filter(([, f]) => f[1]?.toString() === 'd').reduce((n, [, f]) => n + (f[3]?.length ?? 0), 0);
}

test('a message over the bound closes its socket with 1009 before the API buffers it; 8 sockets of 64 MiB each leave the API\'s memory as it was', async () => {
  const id = await interactiveJob();
  const before = rssMiB();
  const sockets = await Promise.all(Array.from({ length: 8 }, () => open(id)));
  for (const { ws } of sockets) {
    const message = Buffer.alloc(64 * MiB, 0x61);
    message[0] = 0; // the stdin channel
    ws.send(message);
  }
  const codes = await Promise.all(sockets.map((s) => Promise.race([s.closed, new Promise<string>((r) => setTimeout(() => r('still open after 10 s'), 10_000))])));
  const grown = rssMiB() - before;
  for (const { ws } of sockets) ws.close();
  assert.ok(grown < 150, `the API grew by ${grown.toFixed(0)} MiB`);
  assert.deepEqual(codes, Array(8).fill(1009), 'each socket is closed with 1009 (message too big)');
  assert.equal(await stdinBytes(id), 0, 'none of it reached the job');
});

test('a message at the bound passes, and the client library splits a larger write into messages under it', async () => {
  const id = await interactiveJob();
  const { ws, closed } = await open(id);
  const atBound = Buffer.alloc(MAX_CLIENT_MESSAGE_BYTES, 0x62);
  atBound[0] = 0;
  ws.send(atBound);
  await waitUntil(async () => (await stdinBytes(id)) === MAX_CLIENT_MESSAGE_BYTES - 1, 10_000, 'the message at the bound to reach the job\'s stdin');
  ws.close();
  assert.equal(await closed, 1005, 'the socket stayed open until the client closed it');

  const other = await interactiveJob();
  const attachment = await attachJob(other, { baseUrl: stack.api.url, onOutput: () => {} });
  await attachment.write(Buffer.alloc(MiB, 0x63));
  await waitUntil(async () => (await stdinBytes(other)) === MiB, 10_000, 'a 1 MiB write to reach the job\'s stdin');
  attachment.close();
});

test('many tiny messages are merged in order into few stdin frames, and hold the API\'s memory and Redis\' attention bounded while the job does not read', async () => {
  const id = await interactiveJob();
  const { ws } = await open(id);
  // In order, merged: 2,000 small messages sent at once become far fewer frames. How many depends
  // on how the API's reads interleave with its appends; past 64 unread frames the stream is full,
  // so this test reads and deletes them as the job's worker would (stdin-stream.ts).
  let sent = '';
  for (let i = 0; i < 2000; i++) {
    const text = `${i},`;
    sent += text;
    ws.send(Buffer.concat([Buffer.from([0]), Buffer.from(text)]));
  }
  const redis = stack.redis.client();
  const frames: Buffer[] = [];
  const received = () => frames.reduce((n, f) => n + f.length, 0);
  await waitUntil(async () => {
    for (const [entry, f] of await redis.xrangeBuffer(keys.jobStdin(id), '-', '+')) {
      if (f[1]?.toString() === 'd') frames.push(f[3]!);
      await redis.xdel(keys.jobStdin(id), entry.toString());
    }
    return received() === sent.length;
  }, 10_000, 'the messages to reach the job\'s stdin');
  assert.equal(Buffer.concat(frames).toString(), sent, 'every byte, in order');
  assert.ok(frames.length < 2000, `${frames.length} frames for 2,000 messages: merged`);

  // A flood of one-byte messages to a job that never reads: the stream fills (64 frames), the API
  // stops reading the socket, and holds little. Each message used to hold ~680 bytes: 300,000 of
  // them grew the API by 194 MiB.
  const before = rssMiB();
  const one = Buffer.from([0, 0x61]);
  for (let i = 0; i < 300_000; i++) {
    ws.send(one);
    if (i % 10_000 === 0) await new Promise((r) => setImmediate(r));
  }
  await new Promise((r) => setTimeout(r, 3000));
  const grown = rssMiB() - before;
  assert.ok(grown < 80, `the API grew by ${grown.toFixed(0)} MiB`);
  // While the stream stays full, the API looks again at most every 100 ms, not every 5 ms.
  const appends = async () => Number(/cmdstat_evalsha:calls=(\d+)/.exec(await stack.redis.client().info('commandstats'))?.[1] ?? 0);
  const from = await appends();
  await new Promise((r) => setTimeout(r, 2000));
  const looks = (await appends()) - from;
  assert.ok(looks <= 60, `${looks} appends tried in 2 s on a full stream`);
  ws.close(); // its close frame waits behind the unread messages: the API is killed after this test
});
