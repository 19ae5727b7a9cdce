/**
 * The egress policy against real servers (issue 9 item 4): an image reference, a blob redirect or a
 * token realm naming a loopback, link-local or private address is refused before any connection,
 * with one message whatever the port and whatever listens there (no port scanner), also when a
 * name resolves to such an address; an allow-listed registry still works; registry error text is
 * bounded and sanitised before it reaches a job's error.
 */
import { test, before, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type { SbxError } from '../../../../core/src/errors.ts';
import { egressAllowList } from '../../../../core/src/egress/egress-allow.ts';
import { busyboxImage } from '../../../../test/fixtures/build-images.ts';
import { startFakeRegistry, type FakeRegistry } from '../../../../test/fixtures/fake-registry.ts';
import type { BuiltImage } from '../../../../test/fixtures/oci-builder.ts';
import { freePort } from '../../../../test/harness/registry.ts';
import { startRedis, type RunningRedis } from '../../../../test/harness/redis.ts';
import { ImageStore, type ImageStoreOptions } from '../image-store.ts';
import { TempImageStores } from '../../../../test/harness/temp-image-store.ts';

const it = (name: string, fn: (t: TestContext) => Promise<void>) => test(name, { timeout: 60_000 }, fn);

let image: BuiltImage;
let fake: FakeRegistry;
let redis: RunningRedis;

before(async () => {
  image = await busyboxImage();
  fake = await startFakeRegistry();
  fake.add('lib/busybox', 'latest', image);
  redis = await startRedis();
});

after(async () => {
  await stores.cleanup();
  await fake.stop();
  await redis.stop();
});

const stores = new TempImageStores('sbx-images-egress-');
const store = (opts: Partial<ImageStoreOptions> = {}): Promise<ImageStore> => stores.make({ egressAllow: [], retry: { attempts: 2, baseDelayMs: 5, maxDelayMs: 20, deadlineMs: 2_000 }, ...opts });

/** A store that may reach the fake registry (and nothing else that is not public). */
const allowingFake = () => store({ egressAllow: egressAllowList(fake.host) });

/** Connections the redis-server has accepted so far (INFO stats), through one long-lived client. */
async function redisConnections(): Promise<number> {
  const info = await redisClient().info('stats');
  return Number(/total_connections_received:(\d+)/.exec(info)?.[1]);
}
let client: ReturnType<RunningRedis['client']> | undefined;
const redisClient = () => (client ??= redis.client());

/** The error an acquire fails with (it must fail). */
async function failure(s: ImageStore, reference: string): Promise<SbxError> {
  try {
    await s.acquire(reference);
  } catch (e) {
    return e as SbxError;
  }
  assert.fail(`${reference} was pulled`);
}

it('loopback registries are refused by default with one message whatever the port or what listens there', async () => {
  const s = await store();
  const closed = await freePort();
  const connectionsBefore = await redisConnections();
  const requestsBefore = fake.requests.length;
  const targets = {
    redis: `127.0.0.1:${redis.port}/x:y`,
    closed: `127.0.0.1:${closed}/x:y`,
    'a working registry': `${fake.host}/lib/busybox:latest`,
  };
  const errors: Record<string, string> = {};
  for (const [what, reference] of Object.entries(targets)) {
    const e = await failure(s, reference);
    assert.equal(e.code, 'egress_refused', `${what}: ${e.code}: ${e.message}`);
    assert.equal(e.retryable, false);
    errors[what] = e.message;
  }
  assert.equal(new Set(Object.values(errors)).size, 1, `one message for every port:\n${JSON.stringify(errors, null, 2)}`);
  assert.doesNotMatch(errors.redis!, new RegExp(`${redis.port}|${closed}`), 'the message names no port');
  assert.equal(await redisConnections(), connectionsBefore + 0, 'redis-server accepted no connection from the worker');
  assert.equal(fake.requests.length, requestsBefore, 'the registry on loopback got no request');
});

it('names resolving to loopback and IPv4-mapped / IPv6 loopback literals are refused too', async () => {
  const s = await store();
  const port = fake.host.split(':')[1];
  const requestsBefore = fake.requests.length;
  for (const registry of [`localhost:${port}`, `LOCALHOST:${port}`, `[::ffff:127.0.0.1]:${port}`, `[::1]:${port}`, `0.0.0.0:${port}`]) {
    const e = await failure(s, `${registry}/lib/busybox:latest`);
    assert.equal(e.code, 'egress_refused', `${registry}: ${e.code}: ${e.message}`);
  }
  assert.equal(fake.requests.length, requestsBefore, 'the registry got no request');
});

it('an allow-listed registry is pulled from; other ports of the same host stay refused', async () => {
  const s = await allowingFake();
  const acquired = await s.acquire(`${fake.host}/lib/busybox:latest`);
  assert.equal(acquired.pulled, true);
  acquired.release();
  const e = await failure(s, `127.0.0.1:${redis.port}/x:y`);
  assert.equal(e.code, 'egress_refused', `${e.code}: ${e.message}`);
});

it('a blob redirect to redis on loopback or to 169.254.169.254 is refused', async () => {
  for (const location of [`http://127.0.0.1:${redis.port}/`, 'http://169.254.169.254/latest/meta-data/iam/security-credentials/']) {
    const name = `redirect${Date.now()}`;
    fake.add(name, 'latest', image);
    const layer = `/v2/${name}/blobs/${image.layers[0]!.digest}`;
    fake.hook = (req, res) => {
      if (req.url !== layer) return false;
      res.writeHead(307, { location });
      res.end();
      return true;
    };
    const connectionsBefore = await redisConnections();
    try {
      const e = await failure(await allowingFake(), `${fake.host}/${name}:latest`);
      assert.equal(e.code, 'egress_refused', `${location}: ${e.code}: ${e.message}`);
      assert.equal(await redisConnections(), connectionsBefore, 'redis-server accepted no connection');
    } finally {
      fake.hook = null;
    }
  }
});

it('a token realm on a loopback redis port is refused (not asked for a token)', async () => {
  fake.hook = (req, res) => {
    res.writeHead(401, { 'www-authenticate': `Bearer realm="http://127.0.0.1:${redis.port}/token",service="fake"` });
    res.end('{"errors":[{"code":"UNAUTHORIZED","message":"auth required"}]}');
    return true;
  };
  const connectionsBefore = await redisConnections();
  try {
    const e = await failure(await allowingFake(), `${fake.host}/lib/busybox:latest`);
    assert.equal(e.code, 'egress_refused', `${e.code}: ${e.message}`);
    assert.equal(await redisConnections(), connectionsBefore, 'redis-server accepted no connection');
  } finally {
    fake.hook = null;
  }
});

/** Control characters, ANSI/OSC escapes, bidi overrides and other non-printables. */
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]/;
const HOSTILE = `\u001b[2J\u001b[31mpwned\u001b[0m\u001b]0;title\u0007 \u202egnp.exe\r\nX-Injected: 1\u0000${'A'.repeat(5000)}`;

it('registry error text is bounded and sanitised (JSON message, plain body, token server body)', async () => {
  const bodies: Array<[number, Record<string, string>, string]> = [
    [500, { 'content-type': 'application/json' }, JSON.stringify({ errors: [{ code: 'UNKNOWN', message: HOSTILE }] })],
    [400, { 'content-type': 'text/plain' }, HOSTILE],
    [404, { 'content-type': 'application/json' }, JSON.stringify({ errors: [{ code: `MANIFEST_UNKNOWN\u001b[1m`, message: HOSTILE }] })],
  ];
  for (const [status, headers, body] of bodies) {
    fake.hook = (_req, res) => {
      res.writeHead(status, headers);
      res.end(body);
      return true;
    };
    try {
      const e = await failure(await allowingFake(), `${fake.host}/lib/busybox:latest`);
      assert.ok(!UNPRINTABLE.test(e.message), `HTTP ${status}: ${JSON.stringify(e.message.slice(0, 300))}`);
      assert.ok(e.message.length < 400, `HTTP ${status}: ${e.message.length} characters: ${e.message.slice(0, 300)}`);
      if (status !== 404) assert.match(e.message, /pwned/, 'the visible text is kept');
    } finally {
      fake.hook = null;
    }
  }
  // The token server's refusal (its body is echoed into registry_unauthorized).
  fake.hook = (req, res) => {
    if (req.url?.startsWith('/token')) {
      res.writeHead(401, { 'content-type': 'text/plain' });
      res.end(HOSTILE);
      return true;
    }
    res.writeHead(401, { 'www-authenticate': `Bearer realm="${fake.url}/token",service="fake"` });
    res.end();
    return true;
  };
  try {
    const e = await failure(await allowingFake(), `${fake.host}/lib/busybox:latest`);
    assert.equal(e.code, 'registry_unauthorized');
    assert.ok(!UNPRINTABLE.test(e.message), JSON.stringify(e.message.slice(0, 300)));
    assert.ok(e.message.length < 400, `${e.message.length} characters: ${e.message.slice(0, 300)}`);
  } finally {
    fake.hook = null;
  }
});
