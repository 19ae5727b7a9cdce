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
import { MANIFEST_ACCEPT } from './registry/media-types.ts';
import { RegistryAuth, type RegistryCredentials, type TokenFetcher, type TokenPoster } from './registry/registry-auth.ts';
import { parseDockerConfig } from './registry/docker-credentials.ts';
import { TempImageStores } from '../../../test/harness/temp-image-store.ts';

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
  await stores.cleanup();
  for (const c of cleanups.reverse()) await c();
});

const stores = new TempImageStores('sbx-images-auth-');
const store = (opts: Partial<ImageStoreOptions> = {}): Promise<ImageStore> => stores.make({ retry: { attempts: 1, baseDelayMs: 1, maxDelayMs: 1, deadlineMs: 1 }, ...opts });

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
  assert.deepEqual(
    tokens.requests.map((r) => ({ method: r.method, scope: r.scope, service: r.service, user: r.user, status: r.status, authorization: r.authorization })),
    [{ method: 'GET', scope: 'repository:public/busybox:pull', service: tokens.service, user: null, status: 200, authorization: false }],
  );
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

// The OAuth2 flow (POST realm, grant_type=refresh_token). These drive RegistryAuth directly with a
// fetch-based transport against the real registry and token server, the way RegistryClient drives
// it (request, answer the 401's challenge, retry with the new Authorization), to see each request;
// the last test goes through the image store (RegistryClient's undici transport).
const IDENTITY_TOKEN = 'refresh-0123456789';
const getToken: TokenFetcher = async (url, headers, signal) => {
  const res = await fetch(url, { headers, ...(signal ? { signal } : {}) });
  return { status: res.status, body: await res.text() };
};
const postToken: TokenPoster = async (url, headers, body, signal) => {
  const res = await fetch(url, { method: 'POST', headers, body, ...(signal ? { signal } : {}) });
  return { status: res.status, body: await res.text() };
};

/** GETs a manifest with `auth` answering challenges; returns the status and the Authorization headers sent. */
async function manifest(auth: RegistryAuth, registryUrl: string, repository: string): Promise<{ status: number; sent: Array<string | undefined> }> {
  const scope = `repository:${repository}:pull`;
  const sent: Array<string | undefined> = [];
  for (let attempt = 0; attempt < 3; attempt++) {
    const authorization = auth.authorization(scope);
    sent.push(authorization);
    const res = await fetch(`${registryUrl}/v2/${repository}/manifests/latest`, { headers: { accept: MANIFEST_ACCEPT, ...(authorization ? { authorization } : {}) } });
    await res.arrayBuffer();
    if (res.status !== 401) return { status: res.status, sent };
    if (!(await auth.answer(res.headers.get('www-authenticate') ?? undefined, scope, authorization))) return { status: res.status, sent };
  }
  return { status: 401, sent };
}

async function tokenRegistry(tokenOpts: Parameters<typeof startTokenServer>[0]) {
  const tokens = await startTokenServer(tokenOpts);
  cleanups.push(tokens.stop);
  const registry = await startRegistry({ token: { realm: tokens.realm, service: tokens.service, issuer: tokens.issuer, rootCertBundle: tokens.certPath } });
  cleanups.push(registry.stop);
  await pushImage(registry.url, 'acr/busybox', 'latest', image, { authorization: `Bearer ${tokens.tokenFor('repository:acr/busybox:pull,push', USER.username)}` });
  return { tokens, registry };
}

/** Credentials for `host` as `docker login` writes them for ACR: `auth` = "<user>:" plus identitytoken. */
function identityConfig(host: string, identityToken: string, password = ''): RegistryCredentials {
  const text = JSON.stringify({ auths: { [host]: { auth: Buffer.from(`${USER.username}:${password}`).toString('base64'), identitytoken: identityToken } } });
  const creds = parseDockerConfig(text).get(host);
  assert.ok(creds);
  return creds;
}

it('OAuth2 flow: a config.json identitytoken gets the token by POST; the registry only ever sees Bearer', async () => {
  const { tokens, registry } = await tokenRegistry({ users: { [USER.username]: USER.password }, refreshTokens: { [IDENTITY_TOKEN]: USER.username } });
  const creds = identityConfig(registry.host, IDENTITY_TOKEN);
  assert.deepEqual(creds, { identityToken: IDENTITY_TOKEN, username: USER.username });
  const auth = new RegistryAuth(registry.host, creds, getToken, postToken);

  const got = await manifest(auth, registry.url, 'acr/busybox');
  assert.equal(got.status, 200);
  assert.equal(got.sent[0], undefined);
  assert.match(got.sent[1] ?? '', /^Bearer /);
  assert.ok(got.sent.every((h) => !h?.startsWith('Basic')), 'no Basic header to the registry');
  assert.equal(tokens.requests.length, 1);
  const [post] = tokens.requests;
  assert.equal(post!.method, 'POST');
  assert.equal(post!.status, 200);
  assert.equal(post!.authorization, false, 'the refresh token goes in the form, not in a header');
  assert.equal(post!.content_type, 'application/x-www-form-urlencoded');
  assert.deepEqual(post!.form, {
    grant_type: ['refresh_token'],
    refresh_token: [IDENTITY_TOKEN],
    service: [tokens.service],
    scope: ['repository:acr/busybox:pull'],
    client_id: ['sbx'],
  });
  // Cached: the next request reuses the token.
  assert.equal((await manifest(auth, registry.url, 'acr/busybox')).status, 200);
  assert.equal(tokens.requests.length, 1);
});

it('OAuth2 flow: a refresh_token in the answer replaces the configured one for later requests', async () => {
  const { tokens, registry } = await tokenRegistry({ refreshTokens: { [IDENTITY_TOKEN]: USER.username, 'rotated-1': USER.username }, rotateRefreshTokenTo: 'rotated-1' });
  const auth = new RegistryAuth(registry.host, identityConfig(registry.host, IDENTITY_TOKEN), getToken, postToken);
  assert.equal((await manifest(auth, registry.url, 'acr/busybox')).status, 200);
  assert.equal((await manifest(auth, registry.url, 'acr/other')).status, 404); // another scope: a new POST, then no such manifest
  assert.deepEqual(tokens.requests.map((r) => r.form?.refresh_token?.[0]), [IDENTITY_TOKEN, 'rotated-1']);
});

it('OAuth2 flow: a wrong identity token is registry_unauthorized naming the registry and the server message', async () => {
  const { tokens, registry } = await tokenRegistry({ refreshTokens: { [IDENTITY_TOKEN]: USER.username } });
  const auth = new RegistryAuth(registry.host, identityConfig(registry.host, 'not-the-token'), getToken, postToken);
  await assert.rejects(
    manifest(auth, registry.url, 'acr/busybox'),
    assertUnauthorized(new RegExp(`${registry.host.replace(/\./g, '\\.')}.*token server .* refused the identity token \\(HTTP 401: invalid refresh token\\)`)),
  );
  assert.deepEqual(tokens.requests.map((r) => [r.method, r.status]), [['POST', 401]]);
});

for (const status of [404, 405] as const) {
  it(`OAuth2 flow: a token server answering ${status} to POST falls back to GET with username and password`, async () => {
    const { tokens, registry } = await tokenRegistry({ users: { [USER.username]: USER.password }, oauth: status });
    const auth = new RegistryAuth(registry.host, identityConfig(registry.host, IDENTITY_TOKEN, USER.password), getToken, postToken);
    const got = await manifest(auth, registry.url, 'acr/busybox');
    assert.equal(got.status, 200);
    assert.ok(got.sent.every((h) => !h?.startsWith('Basic')), 'Basic goes to the token server only');
    assert.deepEqual(tokens.requests.map((r) => [r.method, r.status, r.user, r.scope]), [
      ['POST', status, null, 'repository:acr/busybox:pull'],
      ['GET', 200, USER.username, 'repository:acr/busybox:pull'],
    ]);
    // Without a password there is nothing to fall back to: the 404/405 is the error.
    const noPassword = new RegistryAuth(registry.host, identityConfig(registry.host, IDENTITY_TOKEN), getToken, postToken);
    await assert.rejects(manifest(noPassword, registry.url, 'acr/busybox'), assertUnauthorized(new RegExp(`refused the identity token \\(HTTP ${status}`)));
  });
}

it('identitytoken through the image store: a config.json identitytoken pulls by the OAuth2 POST; a wrong one is registry_unauthorized', async () => {
  const { tokens, registry } = await tokenRegistry({ users: { [USER.username]: USER.password }, refreshTokens: { [IDENTITY_TOKEN]: USER.username } });
  const ref = `${registry.host}/acr/busybox:latest`;
  const dir = await mkdtemp(join(tmpdir(), 'sbx-docker-config-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const configPath = join(dir, 'config.json');
  const write = (token: string) => writeFile(configPath, JSON.stringify({ auths: { [registry.host]: { auth: Buffer.from(`${USER.username}:`).toString('base64'), identitytoken: token } } }));
  await write(IDENTITY_TOKEN);
  const pulled = await (await store({ dockerConfigPath: configPath })).acquire(ref);
  assert.equal(pulled.pulled, true);
  assert.deepEqual(tokens.requests.map((r) => [r.method, r.status, r.form?.grant_type?.[0], r.authorization]), [['POST', 200, 'refresh_token', false]]);

  await write('not-the-token');
  await assert.rejects((await store({ dockerConfigPath: configPath })).acquire(ref), assertUnauthorized(/refused the identity token \(HTTP 401: invalid refresh token\)/));
  // Per-job credentials with an identity token differ from the same username with another token:
  // the image pulled above is not handed to a job holding the wrong token.
  const shared = await store({ dockerConfigPath: configPath });
  await assert.rejects(shared.acquire(ref, { credentials: { identityToken: 'also-wrong', username: USER.username } }), assertUnauthorized(/refused the identity token/));
  assert.equal((await shared.acquire(ref, { credentials: { identityToken: IDENTITY_TOKEN, username: USER.username } })).pulled, true);
});
