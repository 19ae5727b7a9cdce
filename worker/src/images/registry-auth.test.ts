import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RegistryUnauthorizedError } from '../../../core/src/errors.ts';
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

test('bearer flow sends credentials to the realm and caches the token per scope', async () => {
  const calls: Array<{ url: string; auth: string | undefined }> = [];
  const auth = new RegistryAuth('r.example', { username: 'u', password: 'p' }, async (url, headers) => {
    calls.push({ url: url.toString(), auth: headers.authorization });
    return { status: 200, body: JSON.stringify({ token: 'T1', expires_in: 300 }) };
  });
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
  const refusing = new RegistryAuth('r', undefined, async () => ({ status: 401, body: '{"details":"bad creds"}' }));
  await assert.rejects(refusing.answer('Bearer realm="http://t/token"', 's', undefined), (e: unknown) => e instanceof RegistryUnauthorizedError && /anonymous access.*bad creds/.test(e.message));
  const basic = new RegistryAuth('r', undefined, async () => ({ status: 200, body: '{}' }));
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
