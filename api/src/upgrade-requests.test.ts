/**
 * Requests that carry Upgrade, and requests that go away early, against a real API process:
 *  - a client that resets its connection during a WebSocket handshake does not end the API;
 *  - only a WebSocket upgrade of GET /v1/jobs/{id}/attach is one: any other request with Upgrade
 *    (curl --http2 sends `Upgrade: h2c` on every request) is served as itself, method, body and
 *    streaming included (before: answered as a GET of its URL, buffered whole);
 *  - an event stream whose connection closes before its first byte, or a HEAD of one, gives its
 *    tenant's stream place back (before: held until the API restarted, then 429 for good);
 *  - an Expect other than 100-continue is served (before: Node's empty 417).
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { test } from 'node:test';
import { useApiProcess } from '../../test/harness/api-process.ts';
import { waitUntil } from '../../test/harness/redis.ts';

const KEY = 'key-alpha-uuuuuuuuuuuuuuuuuuuu';
const STREAMS = 3;
const IMAGE = '127.0.0.1:5000/test/busybox:latest';
const stack = useApiProcess({ SBX_API_KEYS: `${KEY}:alpha`, SBX_TENANT_STREAMS: String(STREAMS), SBX_TENANT_REQUESTS_PER_SECOND: '0', SBX_TENANT_SUBMITS_PER_SECOND: '0' });
const auth = { authorization: `Bearer ${KEY}` };
const WS = 'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n';
const H2C = 'Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n';

/** A queued job (no worker runs here: it stays queued). */
async function queuedJob(): Promise<string> {
  const res = await fetch(`${stack.api.url}/v1/jobs`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ image: IMAGE, command: ['true'] }) });
  assert.equal(res.status, 202, await res.clone().text());
  return ((await res.json()) as { id: string }).id;
}

/** Sends `data` on a fresh connection and resets it `afterMs` later. */
function sendThenReset(data: string, afterMs: number): Promise<void> {
  const { hostname, port } = new URL(stack.api.url);
  return new Promise((resolve) => {
    const socket = connect(Number(port), hostname, () => {
      socket.write(data);
      setTimeout(() => socket.resetAndDestroy(), afterMs);
    });
    socket.on('error', () => {});
    socket.on('close', () => resolve());
  });
}

/** Sends `data` on a fresh connection: the status line and what came within `ms` (or until closed). */
function rawAnswer(data: string, ms = 5000): Promise<{ status: number; text: string }> {
  const { hostname, port } = new URL(stack.api.url);
  return new Promise((resolve) => {
    let got = '';
    const socket = connect(Number(port), hostname, () => socket.write(data));
    const done = () => resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(got)?.[1] ?? 0), text: got });
    const timer = setTimeout(() => socket.destroy(), ms);
    socket.on('data', (d: Buffer) => (got += d.toString('latin1')));
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      done();
    });
  });
}

async function healthy(): Promise<void> {
  const res = await fetch(`${stack.api.url}/healthz`);
  assert.equal(res.status, 200);
  await res.body?.cancel();
}

test('a client that resets its connection during a WebSocket handshake does not end the API', async () => {
  const id = await queuedJob();
  const paths = ['/healthz', '/v1/jobs', `/v1/jobs/${id}/attach`, '/docs'];
  for (let round = 0; round < 10; round++) {
    for (const path of paths) await sendThenReset(`GET ${path} HTTP/1.1\r\nHost: sbx\r\nAuthorization: Bearer ${KEY}\r\n${WS}\r\n`, round % 3);
  }
  assert.equal(stack.api.child.exitCode, null, `the API exited:\n${stack.api.log().slice(-2000)}`);
  await healthy();
});

test('a request with Upgrade: h2c (curl --http2) is served as itself: a DELETE cancels, a POST submits', async () => {
  const id = await queuedJob();
  const cancel = await rawAnswer(`DELETE /v1/jobs/${id} HTTP/1.1\r\nHost: sbx\r\nAuthorization: Bearer ${KEY}\r\n${H2C}Connection: close\r\n\r\n`);
  assert.equal(cancel.status, 202, cancel.text);
  const after = (await (await fetch(`${stack.api.url}/v1/jobs/${id}`, { headers: auth })).json()) as { status: string };
  assert.equal(after.status, 'cancelled', 'the DELETE was a DELETE (before: answered as a GET, the job left queued)');
  const body = JSON.stringify({ image: IMAGE, command: ['echo', 'through-h2c'] });
  const submit = await rawAnswer(`POST /v1/jobs HTTP/1.1\r\nHost: sbx\r\nAuthorization: Bearer ${KEY}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${H2C}\r\n${body}`, 3000);
  assert.equal(submit.status, 202, submit.text);
  assert.match(submit.text, /"command":\["echo","through-h2c"\]/, 'a job was made of the body (before: the job list)');
});

test('an event stream asked for with Upgrade: websocket streams (its first event at once), not buffered until its job ends', async () => {
  const id = await queuedJob();
  const res = await rawAnswer(`GET /v1/jobs/${id}/events HTTP/1.1\r\nHost: sbx\r\nAuthorization: Bearer ${KEY}\r\n${WS}\r\n`, 3000);
  assert.equal(res.status, 200, res.text);
  assert.match(res.text, /event: status\r?\n/, 'the queued job\'s first event came while it is still queued');
});

/**
 * Waits until the tenant's STREAMS event streams of `id` are answered 200 at once: places are given
 * back as each stream notices its closed connection, soon, not never. Each try's streams are closed
 * again; a try that fails waits before the next, so tries do not themselves keep the places taken.
 */
async function streamPlacesComeBack(id: string, after: string): Promise<void> {
  let last: number[] = [];
  await waitUntil(async () => {
    const held = Array.from({ length: STREAMS }, () => new AbortController());
    const answers = await Promise.all(held.map((h) => fetch(`${stack.api.url}/v1/jobs/${id}/events`, { headers: auth, signal: h.signal })));
    held.forEach((h) => h.abort());
    last = answers.map((r) => r.status);
    if (last.every((s) => s === 200)) return true;
    await new Promise((r) => setTimeout(r, 200));
    return false;
  }, 10_000, `${STREAMS} event streams at once answered 200 after ${after} (before: 429 until the API restarted); the last try: ${last.join(', ')}`);
}

test('event streams closed before their first byte, and HEADs of them, give the tenant\'s stream places back', async () => {
  const id = await queuedJob();
  for (let i = 0; i < STREAMS * 3; i++) await sendThenReset(`GET /v1/jobs/${id}/events HTTP/1.1\r\nHost: sbx\r\nAuthorization: Bearer ${KEY}\r\n\r\n`, i % 2);
  await streamPlacesComeBack(id, `${STREAMS * 3} connections reset`);
  // One after another: each HEAD's place is given back as its answer ends, so none is refused.
  for (let i = 0; i < STREAMS * 2; i++) {
    const head = await fetch(`${stack.api.url}/v1/jobs/${id}/events`, { method: 'HEAD', headers: auth });
    assert.equal(head.status, 200, `HEAD ${i + 1} of ${STREAMS * 2}: the places of the HEADs before it were not given back`);
  }
  await streamPlacesComeBack(id, `${STREAMS * 2} HEADs`);
});

test('an Expect other than 100-continue is served, not answered with an empty 417', async () => {
  const res = await rawAnswer('GET /healthz HTTP/1.1\r\nHost: sbx\r\nExpect: something-else\r\nConnection: close\r\n\r\n');
  assert.equal(res.status, 200, res.text);
});
