import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RegistryUnauthorizedError } from '../../../../core/src/errors.ts';
import { parseWwwAuthenticate, RegistryAuth } from './registry-auth.ts';
import { normaliseRegistryKey, parseDockerConfig } from './docker-credentials.ts';

test('parses WWW-Authenticate challenges', () => {
  assert.deepEqual(parseWwwAuthenticate('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"'), [
    { scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/busybox:pull' } },
  ]);
  assert.deepEqual(parseWwwAuthenticate('Basic realm="sbx test"'), [{ scheme: 'basic', params: { realm: 'sbx test' } }]);
  assert.deepEqual(parseWwwAuthenticate('Basic realm="a\\"b", Bearer realm=http://x/token , error=invalid_token'), [
    { scheme: 'basic', params: { realm: 'a"b' } },
    { scheme: 'bearer', params: { realm: 'http://x/token', error: 'invalid_token' } },
  ]);
  assert.deepEqual(parseWwwAuthenticate(''), []);
});

/** The OAuth2 transport of tests whose credentials have no identity token: never called. */
const noPost = async (): Promise<never> => assert.fail('no POST without an identity token');

test('bearer flow sends credentials to the realm and caches the token per scope', async () => {
  const calls: Array<{ url: string; auth: string | undefined }> = [];
  const auth = new RegistryAuth('r.example', { username: 'u', password: 'p' }, async (url, headers) => {
    calls.push({ url: url.toString(), auth: headers.authorization });
    return { status: 200, body: JSON.stringify({ token: 'T1', expires_in: 300 }) };
  }, noPost);
  const scope = 'repository:a/b:pull';
  assert.equal(auth.authorization(scope), undefined);
  assert.equal(await auth.answer('Bearer realm="https://auth.example/token",service="reg"', scope, undefined), true);
  assert.equal(auth.authorization(scope), 'Bearer T1');
  assert.equal(calls.length, 1);
  assert.equal(calls[0]!.url, 'https://auth.example/token?service=reg&scope=repository%3Aa%2Fb%3Apull');
  assert.equal(calls[0]!.auth, 'Basic ' + Buffer.from('u:p').toString('base64'));
  assert.equal(auth.authorization('repository:other:pull'), undefined);
});

test('a refused token or Basic without credentials is RegistryUnauthorizedError', async () => {
  const refusing = new RegistryAuth('r', undefined, async () => ({ status: 401, body: '{"details":"bad creds"}' }), noPost);
  await assert.rejects(refusing.answer('Bearer realm="http://t/token"', 's', undefined), (e: unknown) => e instanceof RegistryUnauthorizedError && /anonymous access.*bad creds/.test(e.message));
  const basic = new RegistryAuth('r', undefined, async () => ({ status: 200, body: '{}' }), noPost);
  await assert.rejects(basic.answer('Basic realm="x"', 's', undefined), /requires credentials/);
});

test('reads Docker config.json credentials', () => {
  const creds = parseDockerConfig(
    JSON.stringify({
      auths: {
        'https://index.docker.io/v1/': { auth: Buffer.from('hub:secret:with:colons').toString('base64') },
        'http://127.0.0.1:5000': { username: 'u', password: 'p' },
        'ghcr.io': {},
      },
    }),
  );
  assert.deepEqual(creds.get('docker.io'), { username: 'hub', password: 'secret:with:colons' });
  assert.deepEqual(creds.get('127.0.0.1:5000'), { username: 'u', password: 'p' });
  assert.equal(creds.has('ghcr.io'), false);
  assert.equal(normaliseRegistryKey('https://registry-1.docker.io/v2/'), 'docker.io');
});

test('reads identitytoken from Docker config.json, with the username (and a password only if there is one)', () => {
  const creds = parseDockerConfig(
    JSON.stringify({
      auths: {
        'myregistry.azurecr.io': { auth: Buffer.from('00000000-0000-0000-0000-000000000000:').toString('base64'), identitytoken: 'refresh-1' },
        'both.example': { auth: Buffer.from('u:p').toString('base64'), identitytoken: 'refresh-2' },
        'token-only.example': { identitytoken: 'refresh-3' },
        'named.example': { username: 'n', identitytoken: 'refresh-4' },
        'empty-token.example': { auth: Buffer.from('u:p').toString('base64'), identitytoken: '' },
      },
    }),
  );
  assert.deepEqual(creds.get('myregistry.azurecr.io'), { identityToken: 'refresh-1', username: '00000000-0000-0000-0000-000000000000' });
  assert.deepEqual(creds.get('both.example'), { identityToken: 'refresh-2', username: 'u', password: 'p' });
  assert.deepEqual(creds.get('token-only.example'), { identityToken: 'refresh-3' });
  assert.deepEqual(creds.get('named.example'), { identityToken: 'refresh-4', username: 'n' });
  assert.deepEqual(creds.get('empty-token.example'), { username: 'u', password: 'p' });
});

test('identity tokens: POST form with repeated scopes, access_token + expires_in cached, 401 is RegistryUnauthorizedError', async () => {
  const posts: Array<{ url: string; headers: Record<string, string>; body: string }> = [];
  let now = 1_000_000;
  const realNow = Date.now;
  Date.now = () => now;
  try {
    const auth = new RegistryAuth(
      'r.example',
      { identityToken: 'RT', username: 'u' },
      async () => assert.fail('no GET with an identity token'),
      async (url, headers, body) => {
        posts.push({ url: url.toString(), headers, body });
        return { status: 200, body: JSON.stringify({ access_token: `A${posts.length}`, expires_in: 120 }) };
      },
    );
    const scope = 'repository:a/b:pull';
    assert.equal(await auth.answer('Bearer realm="https://auth.example/oauth2/token",service="reg",scope="repository:a/b:pull repository:c/d:pull"', scope, undefined), true);
    assert.equal(auth.authorization(scope), 'Bearer A1');
    assert.equal(posts[0]!.url, 'https://auth.example/oauth2/token');
    assert.equal(posts[0]!.headers['content-type'], 'application/x-www-form-urlencoded');
    assert.equal(posts[0]!.headers.authorization, undefined);
    assert.equal(posts[0]!.body, 'grant_type=refresh_token&refresh_token=RT&service=reg&scope=repository%3Aa%2Fb%3Apull&scope=repository%3Ac%2Fd%3Apull&client_id=sbx');
    now += 110_000;
    assert.equal(auth.authorization(scope), 'Bearer A1', 'still valid 110 s into 120 s');
    now += 6_000;
    assert.equal(auth.authorization(scope), undefined, 'renewed a little before expires_in');
  } finally {
    Date.now = realNow;
  }

  const refused = new RegistryAuth('r.example', { identityToken: 'bad' }, async () => assert.fail('no GET'), async () => ({ status: 401, body: '{"error":"invalid_grant","error_description":"refresh token expired"}' }));
  await assert.rejects(refused.answer('Bearer realm="http://t/token"', 's', undefined), (e: unknown) => e instanceof RegistryUnauthorizedError && /r\.example.*refused the identity token \(HTTP 401: refresh token expired\)/.test(e.message));
});

test('GET flow: token or access_token; expires_in honoured, 60 s without it', async () => {
  let now = 5_000_000;
  const realNow = Date.now;
  Date.now = () => now;
  try {
    const bodies = [{ access_token: 'X' }, { token: 'Y', expires_in: 600 }];
    const auth = new RegistryAuth('r', undefined, async () => ({ status: 200, body: JSON.stringify(bodies.shift()) }), noPost);
    await auth.answer('Bearer realm="http://t/token"', 's1', undefined);
    assert.equal(auth.authorization('s1'), 'Bearer X');
    now += 54_000;
    assert.equal(auth.authorization('s1'), 'Bearer X');
    now += 2_000;
    assert.equal(auth.authorization('s1'), undefined, 'default 60 s, renewed 5 s early');
    await auth.answer('Bearer realm="http://t/token"', 's2', undefined);
    now += 500_000;
    assert.equal(auth.authorization('s2'), 'Bearer Y');
  } finally {
    Date.now = realNow;
  }
});

test('a token server answering JSON that is not an object (null, a number, a string) is RegistryUnauthorizedError, not a TypeError', async () => {
  for (const body of ['null', '0', '"token"', 'true']) {
    for (const credentials of [undefined, { identityToken: 'refresh' }] as const) {
      const auth = new RegistryAuth('r', credentials, async () => ({ status: 200, body }), async () => ({ status: 200, body }));
      await assert.rejects(
        auth.answer('Bearer realm="https://t/token",service="reg"', 'repository:a:pull', undefined),
        (e: unknown) => e instanceof RegistryUnauthorizedError && /its token server answered without a token/.test(e.message),
        `body ${body}`,
      );
    }
  }
});
