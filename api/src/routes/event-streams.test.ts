/**
 * P45 against a real redis-server: one tenant's event streams cannot take the API from the others.
 * Followers of one job share each read of its stream (one XRANGE per wake-up, not one per
 * follower), and each tenant holds at most its quota of open event streams and attach sockets on an
 * API process (`streams`, SBX_TENANT_STREAMS); one more is 429 rate_limited and creates nothing.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { serve, type ServerType } from '@hono/node-server';
import { parseServerSentEvents } from '../../../client/src/sse.ts';
import type { JobDocument } from '../../../core/src/job-spec.ts';
import { createTestApp, startAsWorker, type TestApp } from '../../../test/harness/api-app.ts';
import { startRedis, type RunningRedis } from '../../../test/harness/redis.ts';
import { injectWebSockets } from './jobs-attach.ts';

setFlagsFromString('--expose-gc'); // heap measured after a full collection (the handshake test)

const image = '127.0.0.1:5000/test/busybox:latest';
const key = (tenant: string) => `key-${tenant}-${'s'.repeat(20)}`;

let redis: RunningRedis;
before(async () => {
  redis = await startRedis();
});
after(async () => {
  await redis?.stop();
});

function auth(tenant?: string): Record<string, string> {
  return tenant ? { authorization: `Bearer ${key(tenant)}` } : {};
}

async function submit(t: TestApp, tenant?: string, query = ''): Promise<Response> {
  return t.app.request(`/v1/jobs${query}`, {
    method: 'POST',
    headers: { ...auth(tenant), 'content-type': 'application/json' },
    body: JSON.stringify({ image, command: ['true'] }),
  });
}

async function submitOk(t: TestApp, tenant?: string): Promise<JobDocument> {
  const res = await submit(t, tenant);
  assert.equal(res.status, 202, await res.clone().text());
  return (await res.json()) as JobDocument;
}

/** A follower: reads the stream in the background, keeping every event it got. */
function follow(res: Response) {
  assert.equal(res.status, 200);
  const got: Array<{ event?: string; data: string }> = [];
  const reader = res.body!;
  const done = (async () => {
    for await (const e of parseServerSentEvents(reader)) got.push({ event: e.event, data: e.data });
  })();
  return { got, done };
}

async function until(what: string, ok: () => boolean | Promise<boolean>, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > deadline) assert.fail(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function xrangeCalls(): Promise<number> {
  const info = await redis.client().info('commandstats');
  return Number(/cmdstat_xrange:calls=(\d+)/.exec(info)?.[1] ?? 0);
}

describe('followers of one job share its reads (anonymous mode: no stream quota)', () => {
  let t: TestApp;
  before(() => {
    t = createTestApp(redis);
  });
  after(async () => {
    await t?.close();
  });

  test('24 followers of 12 output batches cost Redis a read per batch, not one per follower; each gets every line once, in order, without waiting for the 5 s liveness look', async () => {
    const FOLLOWERS = 24;
    const BATCHES = 12;
    const doc = await submitOk(t);
    await startAsWorker(t.deps, doc);
    const followers = await Promise.all(Array.from({ length: FOLLOWERS }, async () => follow(await t.app.request(`/v1/jobs/${doc.id}/events`))));
    await until('every follower has the replayed running status', () => followers.every((f) => f.got.some((e) => e.event === 'status' && e.data.includes('running'))));

    const before = await xrangeCalls();
    for (let i = 1; i <= BATCHES; i++) {
      assert.ok(await t.deps.store.appendOutput(doc.id, 1, [{ type: 'stdout', data: `line ${i}\n` }]), `line ${i} appended`);
      // Under the 5 s liveness look: a follower that missed the ping would only get it then.
      await until(`every follower has line ${i}`, () => followers.every((f) => f.got.some((e) => e.data.includes(`line ${i}\\n`))));
    }
    const reads = (await xrangeCalls()) - before;
    // One shared read per ping, plus a few by followers that woke after a read had gone out (they
    // must not join it, it may predate their ping). One read per follower per batch would be 288.
    assert.ok(reads <= BATCHES * 4, `${reads} XRANGE calls for ${FOLLOWERS} followers of ${BATCHES} batches`);

    const ended = { ...doc, status: 'succeeded' as const, worker: 'w-test', exitCode: 0 };
    assert.equal(await t.deps.store.transition(ended, ['running'], 'exit'), 'ok');
    await Promise.all(followers.map((f) => f.done));
    const expected = Array.from({ length: BATCHES }, (_, i) => JSON.stringify({ data: `line ${i + 1}\n` }));
    for (const [n, f] of followers.entries()) {
      assert.deepEqual(f.got.filter((e) => e.event === 'stdout').map((e) => e.data), expected, `follower ${n}`);
      assert.equal(f.got.at(-1)?.event, 'exit', `follower ${n} ends with the exit event`);
    }
  });
});

describe('open event streams and attach sockets per tenant (quota streams)', () => {
  const LIMIT = 3;
  let t: TestApp;
  let server: ServerType;
  let port: number;
  before(async () => {
    const keys = JSON.stringify([
      { key: key('alpha'), tenant: 'alpha' },
      { key: key('beta'), tenant: 'beta' },
      { key: key('gamma'), tenant: 'gamma', quota: { streams: 1 } },
    ]);
    t = createTestApp(redis, { SBX_API_KEYS: keys, SBX_TENANT_STREAMS: String(LIMIT) });
    server = serve({ fetch: t.app.fetch, hostname: '127.0.0.1', port: 0 });
    injectWebSockets(t.app, server);
    await new Promise<void>((resolve) => (server.listening ? resolve() : server.once('listening', () => resolve())));
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    (server as Server | undefined)?.closeAllConnections();
    await new Promise((r) => server?.close(r));
    await t?.close();
  });

  async function rateLimited(res: Response, message: RegExp): Promise<void> {
    if (res.status !== 429) await res.body?.cancel(); // an event stream: never read to its end here
    assert.equal(res.status, 429, 'one stream too many is refused');
    const body = (await res.json()) as { error: { code: string; message: string } };
    assert.equal(body.error.code, 'rate_limited');
    assert.match(body.error.message, message);
    assert.ok(Number(res.headers.get('retry-after')) >= 1);
  }

  /** A WebSocket upgrade of /attach over a real connection: the 101's socket (held open), or the refusal. */
  function attach(tenant: string, id: string, wsKey = randomBytes(16).toString('base64'), headers: Record<string, string> = {}): Promise<{ socket: Socket } | { status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const req = httpRequest({
        host: '127.0.0.1', port, path: `/v1/jobs/${id}/attach`, agent: false,
        headers: { ...auth(tenant), connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-key': wsKey, 'sec-websocket-version': '13', ...headers },
      });
      req.on('upgrade', (_res, socket) => resolve({ socket }));
      req.on('response', (res: IncomingMessage) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      });
      req.on('error', reject);
      req.end();
    });
  }

  test(`a tenant holds at most ${LIMIT}: one more GET /events is 429, POST ?stream=true is 429 and creates no job; closing one gives its place back; other tenants are not affected`, async () => {
    const doc = await submitOk(t, 'alpha');
    const open = await Promise.all(Array.from({ length: LIMIT }, () => t.app.request(`/v1/jobs/${doc.id}/events`, { headers: auth('alpha') })));
    for (const res of open) assert.equal(res.status, 200);
    assert.equal(t.deps.streams.held('alpha'), LIMIT);

    await rateLimited(await t.app.request(`/v1/jobs/${doc.id}/events`, { headers: auth('alpha') }), /alpha already has 3 event streams and attach sockets open.*streams: 3/);
    const jobsBefore = await t.deps.redis.zcard(t.deps.keys.tenantJobs('alpha'));
    await rateLimited(await submit(t, 'alpha', '?stream=true'), /streams: 3/);
    assert.equal(await t.deps.redis.zcard(t.deps.keys.tenantJobs('alpha')), jobsBefore, 'the refused ?stream=true created no job');
    assert.equal(t.deps.streams.held('alpha'), LIMIT, 'a refusal holds no place');

    // Another tenant, on the same process: its own streams, and a submit-and-follow.
    const betaDoc = await submitOk(t, 'beta');
    const beta = await t.app.request(`/v1/jobs/${betaDoc.id}/events`, { headers: auth('beta') });
    assert.equal(beta.status, 200);
    const betaFollow = await submit(t, 'beta', '?stream=true');
    assert.equal(betaFollow.status, 200, betaFollow.status === 200 ? '' : await betaFollow.text());

    // A client going away gives its place back (the stream's loop ends on the abort).
    await open[0]!.body!.cancel();
    await until('alpha has a place again', () => t.deps.streams.held('alpha') === LIMIT - 1);
    const again = await t.app.request(`/v1/jobs/${doc.id}/events`, { headers: auth('alpha') });
    assert.equal(again.status, 200);

    for (const res of [...open.slice(1), again, beta, betaFollow]) await res.body!.cancel();
    await until('every place is given back', () => t.deps.streams.held('alpha') === 0 && t.deps.streams.held('beta') === 0);
  });

  test('a key\'s own quota.streams wins over SBX_TENANT_STREAMS; attach sockets count too, until their connection closes, whether or not the handshake completed', async () => {
    const doc = await submitOk(t, 'gamma');
    const first = await attach('gamma', doc.id);
    assert.ok('socket' in first, `the first attach is upgraded: ${'status' in first ? first.status : ''}`);
    assert.equal(t.deps.streams.held('gamma'), 1);
    const second = await attach('gamma', doc.id);
    // Refused before the upgrade (the WebSocket library answers a refused upgrade with its status alone).
    assert.ok('status' in second && second.status === 429, `the second attach is refused: ${'status' in second ? second.status : 'it was upgraded'}`);
    if ('socket' in second) (second.socket as Socket).destroy();
    await rateLimited(await t.app.request(`/v1/jobs/${doc.id}/events`, { headers: auth('gamma') }), /streams: 1/);

    first.socket.destroy();
    await until('the closed attach gives its place back', () => t.deps.streams.held('gamma') === 0);

    // A handshake the WebSocket server refuses (a malformed Sec-WebSocket-Key) holds nothing after.
    for (let i = 0; i < 3; i++) {
      const bad = await attach('gamma', doc.id, 'not-a-key');
      assert.ok('status' in bad && bad.status === 400, `a malformed handshake is refused: ${'status' in bad ? bad.status : 'it was upgraded'}`);
    }
    await until('refused handshakes hold no place', () => t.deps.streams.held('gamma') === 0);
    const third = await attach('gamma', doc.id);
    assert.ok('socket' in third, `attach works again: ${'status' in third ? third.status : ''}`);
    third.socket.destroy();
    await until('and gives its place back', () => t.deps.streams.held('gamma') === 0);
  });

  test('handshakes the WebSocket server would refuse leave nothing behind in the API (@hono/node-ws keeps a waiter per upgrade it is handed)', async () => {
    const doc = await submitOk(t, 'beta');
    const malformed: Array<[string, Record<string, string>]> = [
      ['not-a-key', {}],
      [randomBytes(16).toString('base64'), { 'sec-websocket-version': '12' }],
      [randomBytes(16).toString('base64'), { 'sec-websocket-protocol': 'sbx.v1, sbx.v1' }],
      [randomBytes(16).toString('base64'), { 'sec-websocket-protocol': 'sbx v1' }],
    ];
    const gc = runInNewContext('gc') as () => void;
    const heapMiB = () => {
      gc();
      return process.memoryUsage().heapUsed / 2 ** 20;
    };
    const refuseAll = async (n: number) => {
      for (let i = 0; i < n; i++) {
        const [wsKey, headers] = malformed[i % malformed.length]!;
        const res = await attach('beta', doc.id, wsKey, headers);
        assert.ok('status' in res && res.status === 400, `malformed handshake ${i % malformed.length} is refused: ${'status' in res ? res.status : 'upgraded'}`);
      }
    };
    await refuseAll(200); // warm-up: the JIT, the connection machinery
    const before = heapMiB();
    await refuseAll(2000);
    const grown = heapMiB() - before;
    // Each handshake handed to upgradeWebSocket and then refused kept about 10 KB: 2,000 of them ≈ 20 MiB.
    assert.ok(grown < 6, `the API's heap grew by ${grown.toFixed(1)} MiB over 2,000 refused handshakes`);
    const good = await attach('beta', doc.id);
    assert.ok('socket' in good, 'a valid handshake still upgrades');
    (good.socket as Socket).destroy();
    await until('its place is given back', () => t.deps.streams.held('beta') === 0);
  });
});
