import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigError, DEFAULT_REGISTRY_CERTS_DIR, defaultJobsMemoryBytes, defaultJobsPids, loadConfig } from './config.ts';

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

test('SBX_REGISTRY_CERTS_DIR: the default may be missing; a set directory must exist and be readable', (t) => {
  assert.equal(loadConfig({}).env.SBX_REGISTRY_CERTS_DIR, DEFAULT_REGISTRY_CERTS_DIR);
  const dir = mkdtempSync(join(tmpdir(), 'sbx-config-certs-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  assert.equal(loadConfig({ SBX_REGISTRY_CERTS_DIR: dir }).env.SBX_REGISTRY_CERTS_DIR, dir);

  const file = join(dir, 'file');
  writeFileSync(file, '');
  const problem = (value: string): string => {
    try {
      loadConfig({ SBX_REGISTRY_CERTS_DIR: value });
    } catch (e) {
      assert.ok(e instanceof ConfigError);
      assert.equal(e.problems.length, 1, e.problems.join('\n'));
      return e.problems[0]!;
    }
    return assert.fail(`${value} was accepted`);
  };
  assert.match(problem(join(dir, 'missing')), /^SBX_REGISTRY_CERTS_DIR=".*\/missing": does not exist; create it or leave the variable unset/);
  assert.match(problem(file), /^SBX_REGISTRY_CERTS_DIR=".*\/file": is not a directory$/);
  assert.match(problem('certs.d'), /^SBX_REGISTRY_CERTS_DIR="certs.d": must be an absolute path$/);
});

test('SBX_REGISTRY_CERTS_DIR: an unreadable directory is refused', { skip: process.getuid?.() === 0 ? 'root reads any directory' : false }, (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sbx-config-certs-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  chmodSync(dir, 0o000);
  assert.throws(() => loadConfig({ SBX_REGISTRY_CERTS_DIR: dir }), /SBX_REGISTRY_CERTS_DIR=.*: is not readable by this process/);
});

test('job posture settings: aggregate limits, file locks, core scheduling', () => {
  const d = loadConfig({});
  assert.equal(d.env.SBX_JOB_FILE_LOCKS, 'allow');
  assert.equal(d.env.SBX_CORE_SCHEDULING, true);
  assert.equal(d.env.SBX_JOBS_PIDS, defaultJobsPids());
  const pidMax = Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8'));
  assert.ok(d.env.SBX_JOBS_PIDS <= pidMax / 2, `the default aggregate pids cap ${d.env.SBX_JOBS_PIDS} leaves half of pid_max ${pidMax} to the host`);
  assert.equal(defaultJobsPids(32_768), 16_384);
  assert.equal(defaultJobsPids(null), 16_384);
  assert.equal(d.env.SBX_JOBS_MEMORY_BYTES, defaultJobsMemoryBytes());
  assert.equal(defaultJobsMemoryBytes(24 * 2 ** 30), 24 * 2 ** 30 - Math.floor((24 * 2 ** 30) / 10));
  assert.equal(defaultJobsMemoryBytes(2 * 2 ** 30), 1.5 * 2 ** 30);
  const c = loadConfig({ SBX_JOB_FILE_LOCKS: 'deny', SBX_CORE_SCHEDULING: 'false', SBX_JOBS_PIDS: '500', SBX_JOBS_MEMORY_BYTES: String(2 ** 30) });
  assert.deepEqual([c.env.SBX_JOB_FILE_LOCKS, c.env.SBX_CORE_SCHEDULING, c.env.SBX_JOBS_PIDS, c.env.SBX_JOBS_MEMORY_BYTES], ['deny', false, 500, 2 ** 30]);
  assert.throws(() => loadConfig({ SBX_JOB_FILE_LOCKS: 'maybe', SBX_CORE_SCHEDULING: 'on', SBX_JOBS_PIDS: '3', SBX_JOBS_MEMORY_BYTES: '1000' }), (e: unknown) => {
    assert.ok(e instanceof ConfigError);
    const text = e.problems.join('\n');
    assert.match(text, /SBX_JOB_FILE_LOCKS="maybe": must be allow or deny/);
    assert.match(text, /SBX_CORE_SCHEDULING="on": must be true or false/);
    assert.match(text, /SBX_JOBS_PIDS="3": must be >= 16/);
    assert.match(text, /SBX_JOBS_MEMORY_BYTES="1000": must be >= 67108864/);
    return true;
  });
});
