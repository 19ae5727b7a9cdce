import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError, loadConfig } from './config.ts';

test('defaults load from an empty environment', () => {
  const c = loadConfig({});
  assert.equal(c.env.SBX_API_PORT, 8080);
  assert.equal(c.limits.defaults.memoryBytes, 256 * 1024 * 1024);
  assert.deepEqual(c.env.SBX_API_KEYS, []);
});

test('every bad variable is named with what to use instead', () => {
  assert.throws(
    () => loadConfig({ SBX_API_PORT: 'eighty', SBX_REDIS_URL: 'http://x', SBX_STATE_DIR: 'relative', SBX_API_KEYS: 'short:t' }),
    (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      const text = e.problems.join('\n');
      assert.match(text, /SBX_API_PORT="eighty": must be a number/);
      assert.match(text, /SBX_REDIS_URL="http:\/\/x": must be a redis:\/\/ or rediss:\/\/ URL/);
      assert.match(text, /SBX_STATE_DIR="relative": must be an absolute path/);
      assert.match(text, /SBX_API_KEYS=.*<key>:<tenant>/);
      assert.equal(e.problems.length, 4);
      return true;
    },
  );
});

test('a default above its maximum is refused', () => {
  assert.throws(() => loadConfig({ SBX_DEFAULT_TIMEOUT_MS: '5000', SBX_MAX_TIMEOUT_MS: '1000' }), /default timeoutMs \(5000\) is above its maximum \(1000\)/);
});

test('API keys map to tenants', () => {
  const c = loadConfig({ SBX_API_KEYS: 'aaaaaaaaaaaaaaaa1:team-a, bbbbbbbbbbbbbbbb2:team-b' });
  assert.deepEqual(c.env.SBX_API_KEYS, [{ key: 'aaaaaaaaaaaaaaaa1', tenant: 'team-a' }, { key: 'bbbbbbbbbbbbbbbb2', tenant: 'team-b' }]);
});

test('registry mirrors parse per registry, in order; a malformed list is refused', () => {
  const c = loadConfig({ SBX_REGISTRY_MIRRORS: 'docker.io=10.0.0.5:5000;mirror.local, ghcr.io=[::1]:5001' });
  assert.deepEqual(c.env.SBX_REGISTRY_MIRRORS, { 'docker.io': ['10.0.0.5:5000', 'mirror.local'], 'ghcr.io': ['[::1]:5001'] });
  assert.throws(() => loadConfig({ SBX_REGISTRY_MIRRORS: 'docker.io' }), /SBX_REGISTRY_MIRRORS=.*registry=mirror/);
});
