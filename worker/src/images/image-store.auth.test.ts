/**
 * Registry auth against real Distribution: Basic (htpasswd) and the Bearer token flow (a token server
 * issuing ES256 JWTs the registry verifies), with credentials from options, a Docker config.json or
 * the call itself.
 */
import { test, before, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RegistryUnauthorizedError } from '../../../core/src/errors.ts';
import { startRegistry, type RunningRegistry } from '../../../test/harness/registry.ts';
import { startTokenServer, type RunningTokenServer } from '../../../test/harness/token-server.ts';
import { busyboxImage } from '../../../test/fixtures/build-images.ts';
import { pushImage, type BuiltImage } from '../../../test/fixtures/oci-builder.ts';
import { ImageStore, type ImageStoreOptions } from './image-store.ts';

/** Integration tests fail after a minute instead of stalling the suite. */
const it = (name: string, fn: (t: TestContext) => Promise<void>) => test(name, { timeout: 60_000 }, fn);

const USER = { username: 'sbx', password: 's3cret' };
const basic = (u: string, p: string) => 'Basic ' + Buffer.from(`${u}:${p}`).toString('base64');
const cleanups: Array<() => Promise<void>> = [];
let image: BuiltImage;

before(async () => {
  image = await busyboxImage();
});

after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function store(opts: Partial<ImageStoreOptions> = {}): Promise<ImageStore> {
  const root = await mkdtemp(join(tmpdir(), 'sbx-images-auth-'));
  const s = new ImageStore({ root, retry: { attempts: 1, baseDelayMs: 1, maxDelayMs: 1, deadlineMs: 1 }, ...opts });
  cleanups.push(async () => {
    await s.close();
    await rm(root, { recursive: true, force: true });
  });
  return s;
}

function assertUnauthorized(re: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof RegistryUnauthorizedError, String(e));
    assert.equal(e.code, 'registry_unauthorized');
    assert.match(e.message, re);
    return true;
  };
}

it('Basic auth (htpasswd): none → unauthorized; options, config.json and per-call credentials work', async () => {
  const registry: RunningRegistry = await startRegistry({ htpasswd: { user: USER.username, password: USER.password } });
  cleanups.push(registry.stop);
  await pushImage(registry.url, 'private/busybox', 'latest', image, { authorization: basic(USER.username, USER.password) });
  const ref = `${registry.host}/private/busybox:latest`;

  await assert.rejects((await store()).acquire(ref), assertUnauthorized(/requires credentials/));
  await assert.rejects((await store({ credentials: { [registry.host]: { username: 'sbx', password: 'wrong' } } })).acquire(ref), assertUnauthorized(/HTTP 401/));

  assert.equal((await (await store({ credentials: { [registry.host]: USER } })).acquire(ref)).pulled, true);

  const dir = await mkdtemp(join(tmpdir(), 'sbx-docker-config-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const configPath = join(dir, 'config.json');
  await writeFile(configPath, JSON.stringify({ auths: { [`http://${registry.host}`]: { auth: Buffer.from(`${USER.username}:${USER.password}`).toString('base64') } } }));
  assert.equal((await (await store({ dockerConfigPath: configPath })).acquire(ref)).pulled, true);

  const perCall = await store();
  const first = await perCall.acquire(ref, { credentials: USER });
  assert.equal(first.pulled, true);
  first.release();
  // Pulled with a job's own credentials, the cached image is not handed to anyone without them:
  // an anonymous request must pull, and the registry refuses it; by digest just the same.
  await assert.rejects(perCall.acquire(ref), assertUnauthorized(/requires credentials/));
  await assert.rejects(perCall.acquire(`${registry.host}/private/busybox@${first.digest}`), assertUnauthorized(/requires credentials/));
  await assert.rejects(perCall.acquire(ref, { credentials: { username: USER.username, password: 'wrong' } }), assertUnauthorized(/HTTP 401/));
  // The same credentials get the cache hit.
  assert.equal((await perCall.acquire(ref, { credentials: USER })).pulled, false);
});

it('Bearer token flow: anonymous pull gets a scoped token, cached across requests', async () => {
  const tokens: RunningTokenServer = await startTokenServer({ anonymousPull: true, users: { [USER.username]: USER.password } });
  cleanups.push(tokens.stop);
  const registry = await startRegistry({ token: { realm: tokens.realm, service: tokens.service, issuer: tokens.issuer, rootCertBundle: tokens.certPath } });
  cleanups.push(registry.stop);
  await pushImage(registry.url, 'public/busybox', 'latest', image, { authorization: `Bearer ${tokens.tokenFor('repository:public/busybox:pull,push', USER.username)}` });

  const s = await store();
  const acquired = await s.acquire(`${registry.host}/public/busybox:latest`);
  assert.equal(acquired.pulled, true);
  assert.deepEqual(tokens.requests, [{ scope: 'repository:public/busybox:pull', service: tokens.service, user: null, status: 200 }]);
  await s.acquire(`${registry.host}/public/busybox:latest`, { policy: 'always' });
  assert.equal(tokens.requests.length, 1, 'the token is reused until it expires');
});

it('Bearer token flow: private repositories need credentials, which go to the token server only', async () => {
  const tokens = await startTokenServer({ anonymousPull: false, users: { [USER.username]: USER.password } });
  cleanups.push(tokens.stop);
  const registry = await startRegistry({ token: { realm: tokens.realm, service: tokens.service, issuer: tokens.issuer, rootCertBundle: tokens.certPath } });
  cleanups.push(registry.stop);
  await pushImage(registry.url, 'team/busybox', 'latest', image, { authorization: `Bearer ${tokens.tokenFor('repository:team/busybox:pull,push', USER.username)}` });
  const ref = `${registry.host}/team/busybox:latest`;

  await assert.rejects((await store()).acquire(ref), assertUnauthorized(/HTTP 401/));
  await assert.rejects(
    (await store({ credentials: { [registry.host]: { username: 'sbx', password: 'nope' } } })).acquire(ref),
    assertUnauthorized(/token server .* refused user sbx \(HTTP 401: incorrect username or password\)/),
  );
  const before = tokens.requests.length;
  assert.equal((await (await store({ credentials: { [registry.host]: USER } })).acquire(ref)).pulled, true);
  assert.deepEqual(tokens.requests.slice(before).map((r) => [r.user, r.scope, r.status]), [[USER.username, 'repository:team/busybox:pull', 200]]);
});
