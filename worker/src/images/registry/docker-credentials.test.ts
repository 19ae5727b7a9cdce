/**
 * The worker's own registry credentials file (SBX_DOCKER_CONFIG), read at start by
 * loadWorkerDockerConfig(): a file that cannot be used is a ConfigError with one problem naming the
 * variable, the path and what is wrong, and never the file's secrets. (The worker process itself:
 * worker/src/main-start-checks.test.ts.)
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ConfigError } from '../../../../core/src/config.ts';
import { dockerConfigProblems, loadWorkerDockerConfig, parseDockerConfig } from './docker-credentials.ts';

const dir = mkdtempSync(join(tmpdir(), 'sbx-docker-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const SECRET = Buffer.from('robot:s3cr3t-pa55').toString('base64');
let n = 0;
function file(text: string): string {
  const path = join(dir, `config-${++n}.json`);
  writeFileSync(path, text);
  return path;
}

/** The one problem loadWorkerDockerConfig(path) refuses it with. */
async function refusal(path: string): Promise<string> {
  const e = await loadWorkerDockerConfig(path).then(() => null, (err: unknown) => err);
  assert.ok(e instanceof ConfigError, `${path} was accepted`);
  assert.equal(e.problems.length, 1, e.message);
  const [problem] = e.problems;
  assert.ok(problem!.startsWith(`SBX_DOCKER_CONFIG=${JSON.stringify(path)}: `), problem);
  assert.doesNotMatch(problem!, /\n/);
  assert.ok(!problem!.includes(SECRET) && !problem!.includes('s3cr3t'), `a secret in: ${problem}`);
  return problem!.slice(`SBX_DOCKER_CONFIG=${JSON.stringify(path)}: `.length);
}

test('a valid config.json gives the same credentials as parseDockerConfig', async () => {
  const text = JSON.stringify({
    auths: {
      'https://index.docker.io/v1/': { auth: SECRET },
      'registry.example.com:5000': { username: 'u', password: 'p' },
      'acr.example.io': { identitytoken: 'refresh-token' },
    },
  });
  const creds = await loadWorkerDockerConfig(file(text));
  assert.deepEqual([...creds], [...parseDockerConfig(text)]);
  assert.deepEqual(creds.get('docker.io'), { username: 'robot', password: 's3cr3t-pa55' });
  assert.deepEqual(await loadWorkerDockerConfig(file('{}')), new Map());
  assert.deepEqual(await loadWorkerDockerConfig(file('{"auths": {}, "HttpHeaders": {"X": "y"}}')), new Map());
});

test('a missing or unreadable file is refused (not silently "no credentials")', async () => {
  assert.equal(await refusal(join(dir, 'nope.json')), 'no such file (ENOENT); unset it for no registry credentials');
  const sub = join(dir, 'a-dir');
  mkdirSync(sub);
  assert.equal(await refusal(sub), 'cannot be read (EISDIR)');
  if (process.getuid?.() !== 0) {
    const locked = file('{}');
    chmodSync(locked, 0o000);
    assert.equal(await refusal(locked), 'cannot be read (EACCES)');
  }
});

test('a file that is not JSON is refused, saying where and not what', async () => {
  assert.match(await refusal(file(`{"auths": {"r.example": {"auth": "${SECRET}"}`)), /^is not valid JSON( \(at character \d+\))?; a Docker config\.json is expected$/);
  // V8 quotes the text around some faults (the secret here): never passed on.
  assert.match(await refusal(file(`{"auths": {"r.example": {"auth": ${SECRET}}}}`)), /^is not valid JSON( \(at character \d+\))?; a Docker config\.json is expected$/);
  assert.equal(await refusal(file(`{"auths": {"r.example": {"auth": "${SECRET}"} x}}`)), `is not valid JSON (at character ${`{"auths": {"r.example": {"auth": "${SECRET}"} `.length}); a Docker config.json is expected`);
  assert.equal(await refusal(file('')), 'is not valid JSON (empty); a Docker config.json is expected');
  assert.equal(await refusal(file('  \n')), 'is not valid JSON (empty); a Docker config.json is expected');
});

test('a JSON file of the wrong shape is refused, naming the registry and field', async () => {
  assert.equal(await refusal(file('[]')), 'not a Docker config.json: must be a JSON object ({"auths": {"registry": {...}}}), not an array');
  assert.equal(await refusal(file('null')), 'not a Docker config.json: must be a JSON object ({"auths": {"registry": {...}}}), not null');
  assert.equal(await refusal(file('"x"')), 'not a Docker config.json: must be a JSON object ({"auths": {"registry": {...}}}), not string');
  assert.equal(await refusal(file('{"auths": []}')), 'not a Docker config.json: "auths" must be an object of registries');
  assert.equal(await refusal(file('{"auths": {"r.example": "user:pw"}}')), 'not a Docker config.json: auths["r.example"] must be an object');
  assert.equal(await refusal(file('{"auths": {"r.example": {"username": "u", "password": 5}}}')), 'not a Docker config.json: auths["r.example"]: password must be a string');
  assert.equal(await refusal(file(`{"auths": {"r.example": {"auth": "${Buffer.from('no-colon').toString('base64')}"}}}`)), 'not a Docker config.json: auths["r.example"].auth is not base64 of "user:password"');
  assert.equal(await refusal(file('{"auths": {"r.example": {"username": "u"}}}')), 'not a Docker config.json: auths["r.example"] holds no credentials (auth, username + password, or identitytoken)');
  assert.equal(
    await refusal(file('{"auths": {"r.example": {}}, "credsStore": "desktop"}')),
    'not a Docker config.json: auths["r.example"] holds no credentials (auth, username + password, or identitytoken); the worker runs no credential helpers (credsStore)',
  );
  const many = Object.fromEntries(['a', 'b', 'c', 'd', 'e'].map((r) => [`${r}.example`, 1]));
  assert.equal(
    await refusal(file(JSON.stringify({ auths: many }))),
    'not a Docker config.json: auths["a.example"] must be an object; auths["b.example"] must be an object; auths["c.example"] must be an object; and 2 more',
  );
});

test('dockerConfigProblems: every problem, [] for a usable config', () => {
  assert.deepEqual(dockerConfigProblems({ auths: { 'a.example': { auth: SECRET }, 'b.example': { identitytoken: 't', username: 'u' } } }), []);
  assert.deepEqual(dockerConfigProblems({ auths: { 'a.example': { auth: 1, username: [] } } }), ['auths["a.example"]: auth, username must be strings']);
});
