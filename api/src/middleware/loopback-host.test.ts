/**
 * DNS rebinding into an API without keys (P64), through real API processes: a browser's script on a
 * page whose domain now resolves to 127.0.0.1 sends the page's name as `Host`, so every request it
 * makes is refused (403 forbidden, the API's error body), WebSocket upgrades too, and nothing is
 * created. Local clients (127.0.0.1, localhost, [::1], names under .localhost) are served, and the
 * names SBX_API_ALLOWED_HOSTS lists. With API keys `Host` is not looked at. Before the fix the
 * rebound page's POST /v1/jobs was 202 and its GET /v1/jobs listed every job.
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { describe, test } from 'node:test';
import { useApiProcess } from '../../../test/harness/api-process.ts';

const IMAGE = '127.0.0.1:5000/test/busybox:latest';

interface Answer {
  status: number;
  body: string;
}

/** One request to `url`'s server with `host` as its Host header (what a browser sends after DNS rebinding). */
function send(url: string, host: string, method: string, path: string, opts: { body?: string; headers?: Record<string, string> } = {}): Promise<Answer> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request({ hostname, port, method, path, headers: { host, ...(opts.body ? { 'content-type': 'application/json' } : {}), ...opts.headers } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

const submit = JSON.stringify({ image: IMAGE, command: ['true'] });
const upgrade = { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' };

describe('an API without keys, on loopback', () => {
  const stack = useApiProcess();

  test('a request addressed to another name (a rebound web page) is refused, whatever it asks; nothing is created', async () => {
    const url = stack.api.url;
    const port = new URL(url).port;
    for (const host of [`evil.example:${port}`, 'evil.example', `127.0.0.1.evil.example:${port}`, `localhost.evil.example:${port}`]) {
      for (const [method, path, opts] of [['POST', '/v1/jobs', { body: submit }], ['GET', '/v1/jobs', {}], ['GET', '/metrics', {}], ['GET', '/v1/workers', {}], ['DELETE', `/v1/images/sha256:${'a'.repeat(64)}`, {}], ['GET', '/v1/jobs/j_x/attach', { headers: upgrade }]] as const) {
        const res = await send(url, host, method, path, opts);
        const what = `${method} ${path} with Host ${JSON.stringify(host)}`;
        assert.equal(res.status, 403, `${what}: ${res.body.slice(0, 200)}`);
        const error = (JSON.parse(res.body) as { error: { code: string; message: string } }).error;
        assert.equal(error.code, 'forbidden', what);
        assert.match(error.message, /answers only requests addressed to this machine .*DNS rebinding; configure SBX_API_KEYS, or name the host in SBX_API_ALLOWED_HOSTS/, what);
      }
    }
    const listed = await send(url, `127.0.0.1:${port}`, 'GET', '/v1/jobs');
    assert.equal(listed.status, 200, listed.body);
    assert.deepEqual((JSON.parse(listed.body) as { items: unknown[] }).items, [], 'no job was created');
  });

  test('local clients are served: 127.0.0.1, localhost, [::1], a name under .localhost, with or without a port', async () => {
    const url = stack.api.url;
    const port = new URL(url).port;
    for (const host of [`127.0.0.1:${port}`, '127.0.0.1', `localhost:${port}`, 'LOCALHOST', `[::1]:${port}`, `127.9.8.7:${port}`, `app.localhost:${port}`, 'localhost.']) {
      const res = await send(url, host, 'POST', '/v1/jobs', { body: submit });
      assert.equal(res.status, 202, `Host ${host}: ${res.body.slice(0, 200)}`);
    }
  });
});

describe('an API with keys', () => {
  const key = 'key-alpha-rrrrrrrrrrrrrrrrrrrr';
  const stack = useApiProcess({ SBX_API_KEYS: `${key}:alpha` });

  test('Host is not looked at: the key is what admits a caller', async () => {
    const url = stack.api.url;
    const withKey = await send(url, 'api.example.com', 'GET', '/v1/jobs', { headers: { authorization: `Bearer ${key}` } });
    assert.equal(withKey.status, 200, withKey.body);
    const without = await send(url, 'api.example.com', 'GET', '/v1/jobs');
    assert.equal(without.status, 401, without.body);
  });
});

describe('an API without keys behind a loopback-only port mapping (SBX_ALLOW_ANONYMOUS), serving one more name', () => {
  const stack = useApiProcess({ SBX_ALLOW_ANONYMOUS: 'true', SBX_API_ALLOWED_HOSTS: 'sbx.internal, API.Example.com.' });

  test('the names SBX_API_ALLOWED_HOSTS lists are served, any port; others are refused as without it', async () => {
    for (const host of ['sbx.internal:8080', 'api.example.com', '127.0.0.1:8080']) {
      const res = await send(stack.api.url, host, 'GET', '/v1/jobs');
      assert.equal(res.status, 200, `${host}: ${res.body}`);
    }
    for (const host of ['evil.example:8080', 'sbx.internal.evil.example']) {
      const res = await send(stack.api.url, host, 'GET', '/v1/jobs');
      assert.equal(res.status, 403, `${host}: ${res.body}`);
    }
  });
});

describe("an API without keys that answers any name (SBX_API_ALLOWED_HOSTS='*')", () => {
  const stack = useApiProcess({ SBX_ALLOW_ANONYMOUS: 'true', SBX_API_ALLOWED_HOSTS: '*' });

  test('Host is not looked at', async () => {
    const res = await send(stack.api.url, 'anything.example:1', 'GET', '/v1/jobs');
    assert.equal(res.status, 200, res.body);
  });
});
