/**
 * P46: a client that trickles its request cannot hold a connection of a real API process past
 * SBX_API_HEADERS_TIMEOUT_MS (headers) / SBX_API_REQUEST_TIMEOUT_MS (the whole request): it gets 408
 * and the connection closes. Node's defaults held such a connection 90 s (headers) and 300 s (body).
 * Responses are not bounded: an event stream outlives the request timeout.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { test } from 'node:test';
import { useApiProcess } from '../../test/harness/api-process.ts';

const HEADERS_MS = 1000;
const REQUEST_MS = 2000;
/** Far under Node's own 90 s / 300 s, far over the bounds plus their 1 s look on a busy host. */
const GIVE_UP_MS = 20_000;

const stack = useApiProcess({ SBX_API_HEADERS_TIMEOUT_MS: String(HEADERS_MS), SBX_API_REQUEST_TIMEOUT_MS: String(REQUEST_MS) });

/** Sends `first`, then `drip` every 200 ms; resolves with what the server answered once it closed the connection, and after how long. */
function trickle(first: string, drip: string): Promise<{ answer: string; body: string; ms: number }> {
  const { hostname, port } = new URL(stack.api.url);
  return new Promise((resolve, reject) => {
    const started = Date.now();
    let answer = '';
    const socket = connect(Number(port), hostname, () => socket.write(first));
    const dripping = setInterval(() => drip && !socket.destroyed && socket.write(drip), 200);
    const giveUp = setTimeout(() => {
      socket.destroy();
      reject(new Error(`the API still held the connection after ${GIVE_UP_MS} ms`));
    }, GIVE_UP_MS);
    socket.on('data', (d: Buffer) => (answer += d.toString()));
    socket.on('error', () => {});
    socket.on('close', () => {
      clearInterval(dripping);
      clearTimeout(giveUp);
      resolve({ answer: answer.split('\r\n')[0] ?? '', body: answer.slice(answer.indexOf('\r\n\r\n') + 4), ms: Date.now() - started });
    });
  });
}

test('headers trickled a byte at a time: 408 and closed once SBX_API_HEADERS_TIMEOUT_MS has passed', async () => {
  const { answer, body, ms } = await trickle('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ', 'a');
  assert.equal(answer, 'HTTP/1.1 408 Request Timeout');
  assert.equal((JSON.parse(body) as { error: { code: string } }).error.code, 'request_timeout'); // the API's error body (P58)
  assert.ok(ms >= HEADERS_MS, `closed after ${ms} ms, before the bound`);
});

test('a connection that sends nothing is closed too', async () => {
  const { ms } = await trickle('', '');
  assert.ok(ms >= HEADERS_MS, `closed after ${ms} ms`);
});

test('a body trickled a byte at a time: 408 and closed once SBX_API_REQUEST_TIMEOUT_MS has passed', async () => {
  const head = 'POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"image":"';
  const { answer, body, ms } = await trickle(head, 'a');
  assert.equal(answer, 'HTTP/1.1 408 Request Timeout');
  assert.equal((JSON.parse(body) as { error: { code: string } }).error.code, 'request_timeout');
  assert.ok(ms >= REQUEST_MS, `closed after ${ms} ms, before the bound`);
});

test('responses are not bounded: an event stream stays open past the request timeout', async () => {
  const created = await fetch(`${stack.api.url}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ image: '127.0.0.1:5000/test/busybox:latest', command: ['true'] }) });
  assert.equal(created.status, 202);
  const { id } = (await created.json()) as { id: string };
  const events = await fetch(`${stack.api.url}/v1/jobs/${id}/events`);
  assert.equal(events.status, 200);
  const reader = events.body!.getReader();
  let text = '';
  const until = Date.now() + REQUEST_MS * 2;
  // The job stays queued (no worker): the stream sends its status and queue position, then waits.
  while (Date.now() < until) {
    const next = await Promise.race([reader.read(), new Promise<null>((r) => setTimeout(() => r(null), until - Date.now()))]);
    if (next === null) break;
    assert.equal(next.done, false, `the stream ended after ${REQUEST_MS * 2 - (until - Date.now())} ms: ${text}`);
    text += Buffer.from(next.value).toString();
  }
  assert.match(text, /event: status/);
  await reader.cancel();
});
