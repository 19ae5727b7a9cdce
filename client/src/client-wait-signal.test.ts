/**
 * wait() with the caller's signal and a timeout: a long-running program that passes one long-lived
 * signal (its shutdown) to every wait() keeps nothing of each call on it, and the timeout still ends a
 * wait the server never answers. Against a local HTTP server answering as the API does.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { signalHolds } from '../../test/harness/signal-holds.ts';
import { SbxClient } from './client.ts';

const done = { id: 'job-1', status: 'succeeded', exitCode: 0 };
let server: Server;
let client: SbxClient;

before(async () => {
  server = createServer((req, res) => {
    if (req.url?.startsWith('/v1/jobs/hang')) return; // never answered
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(done));
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  client = new SbxClient(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
});
after(() => {
  server.closeAllConnections();
  server.close();
});

test('300 waits with one long-lived signal and a timeout leave nothing on that signal', async () => {
  const shutdown = new AbortController();
  for (let i = 0; i < 300; i++) {
    const job = await client.wait('job-1', { signal: shutdown.signal, timeoutMs: 30_000 });
    assert.equal(job.status, 'succeeded');
  }
  assert.equal(signalHolds(shutdown.signal), 0, 'what 300 wait() calls left on the caller\'s signal');
});

test('the timeout still ends a wait the server never answers, and the caller\'s signal still cancels one', async () => {
  const shutdown = new AbortController();
  await assert.rejects(client.wait('hang', { signal: shutdown.signal, timeoutMs: 200 }), (e: Error) => e.name === 'TimeoutError' || /timeout|abort/i.test(e.message));
  const waiting = client.wait('hang', { signal: shutdown.signal, timeoutMs: 30_000 });
  shutdown.abort(new Error('shutting down'));
  await assert.rejects(waiting, /shutting down|abort/i);
  assert.equal(signalHolds(shutdown.signal), 0);
});
