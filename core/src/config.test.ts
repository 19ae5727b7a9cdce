import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigError, DEFAULT_REGISTRY_CERTS_DIR, defaultJobsMemoryBytes, defaultJobsPids, loadConfig, webhookSecretFor } from './config.ts';
import { runWithoutDacOverride } from '../../test/harness/without-dac-override.ts';

/** The problems loadConfig reports for `env` (it must refuse it). */
function problemsOf(env: Record<string, string>): string {
  try {
    loadConfig(env);
  } catch (e) {
    assert.ok(e instanceof ConfigError);
    return e.problems.join('\n');
  }
  return assert.fail('accepted');
}

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

test('numbers are decimal digits: no hex, no exponent; a blank value is unset, not 0 (which is "no limit" for some)', () => {
  assert.match(problemsOf({ SBX_WAIT_CAP_MS: '0x10' }), /SBX_WAIT_CAP_MS="0x10": must be a number in decimal digits/);
  assert.match(problemsOf({ SBX_HEARTBEAT_MS: '1e3' }), /SBX_HEARTBEAT_MS="1e3": must be a number in decimal digits/);
  assert.match(problemsOf({ SBX_DEFAULT_CPUS: '.5' }), /SBX_DEFAULT_CPUS="\.5": must be a number in decimal digits/);
  const blank = loadConfig({ SBX_TENANT_ACTIVE_JOBS: ' ', SBX_API_PORT: '  ' });
  assert.equal(blank.env.SBX_TENANT_ACTIVE_JOBS, loadConfig({}).env.SBX_TENANT_ACTIVE_JOBS, 'the default, not 0');
  assert.equal(blank.env.SBX_API_PORT, 8080);
  const spaced = loadConfig({ SBX_HEARTBEAT_MS: ' 1500 ', SBX_DEFAULT_CPUS: '0.5' });
  assert.equal(spaced.env.SBX_HEARTBEAT_MS, 1500);
  assert.equal(spaced.env.SBX_DEFAULT_CPUS, 0.5);
});

test('Redis settings are checked at start: the URL, its database, host:port lists; Sentinels and a cluster not both; a password never shown', () => {
  assert.match(problemsOf({ SBX_REDIS_URL: 'redis://:hunter2@host:port' }), /SBX_REDIS_URL="redis:\/\/\(hidden\)@host:port": must be a URL like/);
  assert.doesNotMatch(problemsOf({ SBX_REDIS_URL: 'http://:hunter2@x' }), /hunter2/);
  // Passwords with characters a URL reserves, not percent-encoded (openssl rand -base64 gives / and +): the URL does not parse, and none of it is shown.
  for (const [url, password] of [['redis://:Ab3/Xy9+Qz==@127.0.0.1:6390', 'Xy9'], ['redis://sbx:pw/with/slash@h:6390/0', 'slash'], ['redis://:p@ss@h:6390/x', 'ss@'], [':hunter2@h:6379', 'hunter2']] as const) {
    const said = problemsOf({ SBX_REDIS_URL: url });
    assert.match(said, /SBX_REDIS_URL=".*\(hidden\)@h?[^"]*":/, said);
    assert.ok(!said.includes(password), said);
  }
  assert.match(problemsOf({ SBX_REDIS_URL: 'redis://127.0.0.1:6379/abc' }), /its path must be a database number/);
  assert.equal(loadConfig({ SBX_REDIS_URL: 'rediss://u:p@redis.internal:6380/3' }).env.SBX_REDIS_URL, 'rediss://u:p@redis.internal:6380/3');
  assert.match(problemsOf({ SBX_REDIS_SENTINELS: 'junk' }), /SBX_REDIS_SENTINELS="junk": entry "junk" is not host:port/);
  assert.match(problemsOf({ SBX_REDIS_CLUSTER_NODES: 'a:1,b:70000' }), /entry "b:70000" is not host:port/);
  assert.deepEqual(loadConfig({ SBX_REDIS_SENTINELS: 's1:26379, [fd00::1]:26379' }).env.SBX_REDIS_SENTINELS, ['s1:26379', '[fd00::1]:26379']);
  assert.match(problemsOf({ SBX_REDIS_SENTINELS: 's1:26379', SBX_REDIS_CLUSTER_NODES: 'n1:7000' }), /SBX_REDIS_SENTINELS and SBX_REDIS_CLUSTER_NODES are both set/);
  // The Sentinels' own settings: only with Sentinels, a user with its password, never the password shown, and not sent in the clear where the URL asks for TLS.
  assert.match(problemsOf({ SBX_REDIS_SENTINEL_PASSWORD: 'pw', SBX_REDIS_SENTINEL_TLS: 'true' }), /SBX_REDIS_SENTINEL_PASSWORD, SBX_REDIS_SENTINEL_TLS set without SBX_REDIS_SENTINELS/);
  assert.match(problemsOf({ SBX_REDIS_SENTINELS: 's1:26379', SBX_REDIS_SENTINEL_USERNAME: 'sbx' }), /SBX_REDIS_SENTINEL_USERNAME is set without SBX_REDIS_SENTINEL_PASSWORD/);
  assert.match(problemsOf({ SBX_REDIS_SENTINELS: 's1:26379', SBX_REDIS_SENTINEL_TLS: 'maybe' }), /SBX_REDIS_SENTINEL_TLS="maybe": must be true or false/);
  const inClear = problemsOf({ SBX_REDIS_URL: 'rediss://:m@h', SBX_REDIS_SENTINELS: 's1:26379', SBX_REDIS_SENTINEL_PASSWORD: 'sentinel-secret' });
  assert.match(inClear, /SBX_REDIS_SENTINEL_PASSWORD would go to the Sentinels in plain TCP while SBX_REDIS_URL asks for TLS \(rediss:\/\/\): set SBX_REDIS_SENTINEL_TLS=true/);
  assert.doesNotMatch(inClear, /sentinel-secret/);
  const sentinelEnv = (more: Record<string, string>) => loadConfig({ SBX_REDIS_URL: 'rediss://:m@h', SBX_REDIS_SENTINELS: 's1:26379', SBX_REDIS_SENTINEL_PASSWORD: 'pw', ...more }).env;
  assert.equal(sentinelEnv({ SBX_REDIS_SENTINEL_TLS: 'true' }).SBX_REDIS_SENTINEL_TLS, true);
  assert.equal(sentinelEnv({ SBX_REDIS_SENTINEL_TLS: 'false' }).SBX_REDIS_SENTINEL_TLS, false);
  assert.equal(loadConfig({ SBX_REDIS_SENTINELS: 's1:26379', SBX_REDIS_SENTINEL_PASSWORD: 'pw' }).env.SBX_REDIS_SENTINEL_PASSWORD, 'pw');
  // A cluster has database 0 only: a URL naming another was ignored without a word.
  assert.match(problemsOf({ SBX_REDIS_URL: 'redis://h/2', SBX_REDIS_CLUSTER_NODES: 'n1:7000' }), /SBX_REDIS_URL names database 2, but a Redis Cluster has database 0 only/);
  assert.deepEqual(loadConfig({ SBX_REDIS_URL: 'redis://h/0', SBX_REDIS_CLUSTER_NODES: 'n1:7000' }).env.SBX_REDIS_CLUSTER_NODES, ['n1:7000']);
  // V8's JSON message quotes the text around the fault: the keys. Only where it is.
  const keys = problemsOf({ SBX_API_KEYS: '[{"tenant":"a","key":SUPERSECRETKEY1234567890}]' });
  assert.match(keys, /SBX_API_KEYS=\(hidden\): is not valid JSON/);
  assert.doesNotMatch(keys, /SUPERSECRE/);
});

test('a webhook retry window longer than a job record lives is refused (its retries would stop silently when the record expires)', () => {
  assert.match(problemsOf({ SBX_JOB_TTL_SECONDS: '60', SBX_WEBHOOK_RETRY_MS: '3600000' }), /SBX_WEBHOOK_RETRY_MS \(3600000\) is longer than a job's record lives \(SBX_JOB_TTL_SECONDS=60\)/);
  assert.equal(loadConfig({ SBX_JOB_TTL_SECONDS: '60', SBX_WEBHOOK_RETRY_MS: '60000' }).env.SBX_WEBHOOK_RETRY_MS, 60_000);
});

test('SBX_CGROUP_PARENT names a group: no . or .. in it; a tenant or a registry given twice is refused', () => {
  assert.match(problemsOf({ SBX_CGROUP_PARENT: 'sbx/..' }), /SBX_CGROUP_PARENT="sbx\/\.\.": must not have \. or \.\. in it/);
  assert.match(problemsOf({ SBX_CGROUP_PARENT: './sbx' }), /must not have \. or \.\./);
  assert.equal(loadConfig({ SBX_CGROUP_PARENT: 'system.slice/sbx.d' }).env.SBX_CGROUP_PARENT, 'system.slice/sbx.d');
  const secret = (c: string) => c.repeat(32);
  assert.match(problemsOf({ SBX_WEBHOOK_SECRETS: `a:${secret('x')},a:${secret('y')}` }), /SBX_WEBHOOK_SECRETS=\(hidden\): tenant a is given twice/);
  assert.match(problemsOf({ SBX_REGISTRY_MIRRORS: 'docker.io=m1:5000=junk' }), /SBX_REGISTRY_MIRRORS=.*registry=mirror/);
  assert.match(problemsOf({ SBX_REGISTRY_MIRRORS: 'docker.io=m1:5000,docker.io=m2:5000' }), /registry docker\.io is given twice/);
});

test('a default above its maximum is refused', () => {
  assert.throws(() => loadConfig({ SBX_DEFAULT_TIMEOUT_MS: '5000', SBX_MAX_TIMEOUT_MS: '1000' }), /default timeoutMs \(5000\) is above its maximum \(1000\)/);
});

test('API keys map to tenants, with a role (tenant by default) and the default quota', () => {
  const c = loadConfig({ SBX_API_KEYS: 'aaaaaaaaaaaaaaaa1:team-a, bbbbbbbbbbbbbbbb2:team-b:admin, cccccccccccccccc3:team-c:tenant' });
  assert.deepEqual(c.env.SBX_API_KEYS, [
    { key: 'aaaaaaaaaaaaaaaa1', tenant: 'team-a', role: 'tenant' },
    { key: 'bbbbbbbbbbbbbbbb2', tenant: 'team-b', role: 'admin' },
    { key: 'cccccccccccccccc3', tenant: 'team-c', role: 'tenant' },
  ]);
  assert.deepEqual(c.quotas.get('team-a'), { activeJobs: 1000, submitsPerSecond: 100, submitBurst: 200, streams: 100, requests: 256, requestsPerSecond: 1000, requestBurst: 2000, storedBytesPerHour: 1024 * 2 ** 20, jobEgress: true, limits: {} });
  assert.equal(loadConfig({}).quotas.size, 0, 'anonymous mode: no quotas');
  assert.throws(() => loadConfig({ SBX_API_KEYS: 'aaaaaaaaaaaaaaaa1:team-a:root' }), /SBX_API_KEYS=\(hidden\): each entry must be <key>:<tenant>\[:<role>\]/);
});

test('API keys with quotas: JSON inline or in SBX_API_KEYS_FILE, merged; bad entries named by path', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sbx-config-keys-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'keys.json');
  writeFileSync(file, JSON.stringify([
    { key: 'ffffffffffffffff1', tenant: 'team-f', quota: { activeJobs: 5, submitsPerSecond: 2, limits: { memoryBytes: 64 * 2 ** 20 } } },
    { key: 'ffffffffffffffff2', tenant: 'team-f' },
    { key: 'gggggggggggggggg1', tenant: 'ops', role: 'admin', quota: { activeJobs: null, submitsPerSecond: null, streams: null, requests: null, requestsPerSecond: null, storedBytesPerHour: null } },
  ]));
  const c = loadConfig({ SBX_API_KEYS: '[{"key":"eeeeeeeeeeeeeeee1","tenant":"team-e","quota":{"submitBurst":7,"streams":5,"requests":9,"requestsPerSecond":2.5,"storedBytesPerHour":65536}}]', SBX_API_KEYS_FILE: file, SBX_TENANT_ACTIVE_JOBS: '0' });
  assert.deepEqual(c.env.SBX_API_KEYS.map((k) => `${k.tenant}/${k.role}`), ['team-e/tenant', 'team-f/tenant', 'team-f/tenant', 'ops/admin']);
  assert.deepEqual(c.quotas.get('team-e'), { activeJobs: null, submitsPerSecond: 100, submitBurst: 7, streams: 5, requests: 9, requestsPerSecond: 2.5, requestBurst: 5, storedBytesPerHour: 65536, jobEgress: true, limits: {} });
  assert.deepEqual(c.quotas.get('team-f'), { activeJobs: 5, submitsPerSecond: 2, submitBurst: 4, streams: 100, requests: 256, requestsPerSecond: 1000, requestBurst: 2000, storedBytesPerHour: 1024 * 2 ** 20, jobEgress: true, limits: { memoryBytes: 64 * 2 ** 20 } });
  assert.deepEqual(c.quotas.get('ops'), { activeJobs: null, submitsPerSecond: null, submitBurst: 1, streams: null, requests: null, requestsPerSecond: null, requestBurst: 1, storedBytesPerHour: null, jobEgress: true, limits: {} });
  // SBX_TENANT_STREAMS=0: no bound for keys that do not set their own.
  assert.equal(loadConfig({ SBX_API_KEYS: 'eeeeeeeeeeeeeeee1:team-e', SBX_TENANT_STREAMS: '0' }).quotas.get('team-e')?.streams, null);
  assert.equal(loadConfig({ SBX_API_KEYS: 'eeeeeeeeeeeeeeee1:team-e', SBX_TENANT_REQUESTS: '0' }).quotas.get('team-e')?.requests, null);
  assert.equal(loadConfig({ SBX_API_KEYS: 'eeeeeeeeeeeeeeee1:team-e', SBX_TENANT_REQUESTS_PER_SECOND: '0' }).quotas.get('team-e')?.requestsPerSecond, null);
  assert.equal(loadConfig({ SBX_API_KEYS: 'eeeeeeeeeeeeeeee1:team-e', SBX_TENANT_STORED_BYTES_PER_HOUR: '0' }).quotas.get('team-e')?.storedBytesPerHour, null);

  const problems = problemsOf;
  const bad = problems({ SBX_API_KEYS: '[{"key":"short","tenant":"Team","role":"root","quota":{"activeJobs":0,"burst":3,"streams":0.5,"requests":0,"requestsPerSecond":0,"requestBurst":0.5,"storedBytesPerHour":100}}]' });
  assert.match(bad, /SBX_API_KEYS=\(hidden\): \[0\]\.key: must be >= 16 chars/);
  assert.match(bad, /\[0\]\.tenant: must be 1-63 of \[a-z0-9_-\]/);
  assert.match(bad, /\[0\]\.role: must be tenant or admin/);
  assert.match(bad, /\[0\]\.quota\.activeJobs: must be >= 1 \(or null: no limit\)/);
  assert.match(bad, /\[0\]\.quota: Unrecognized key: "burst"/);
  assert.match(bad, /\[0\]\.quota\.streams: must be a whole number/);
  assert.match(bad, /\[0\]\.quota\.requests: must be >= 1/);
  assert.match(bad, /\[0\]\.quota\.requestsPerSecond: must be > 0 \(or null: no limit\)/);
  assert.match(bad, /\[0\]\.quota\.requestBurst: must be a whole number/);
  assert.match(bad, /\[0\]\.quota\.storedBytesPerHour: must be >= 1024 \(or null: no limit\)/);
  assert.match(problems({ SBX_TENANT_STREAMS: '-1' }), /SBX_TENANT_STREAMS="-1"/);
  assert.match(problems({ SBX_TENANT_REQUESTS: 'many' }), /SBX_TENANT_REQUESTS="many"/);
  assert.match(problems({ SBX_TENANT_REQUESTS_PER_SECOND: '-5' }), /SBX_TENANT_REQUESTS_PER_SECOND="-5"/);
  assert.doesNotMatch(bad, /short/, 'keys are never echoed');
  assert.match(problems({ SBX_API_KEYS: '[{"key":' }), /SBX_API_KEYS=\(hidden\): is not valid JSON/);
  assert.match(problems({ SBX_API_KEYS_FILE: join(dir, 'missing.json') }), /SBX_API_KEYS_FILE=".*missing.json": cannot be read \(ENOENT\)/);
  assert.match(problems({ SBX_API_KEYS: 'aaaaaaaaaaaaaaaa1:a,aaaaaaaaaaaaaaaa1:b' }), /one key is listed twice \(tenants a and b\)/);
  assert.match(problems({ SBX_API_KEYS: '[{"key":"aaaaaaaaaaaaaaaa1","tenant":"a","quota":{"activeJobs":1}},{"key":"aaaaaaaaaaaaaaaa2","tenant":"a","quota":{"activeJobs":2}}]' }), /tenant a: its keys give different quotas/);
  assert.match(problems({ SBX_API_KEYS: '[{"key":"aaaaaaaaaaaaaaaa1","tenant":"a","quota":{"limits":{"pids":1000000000}}}]' }), /tenant a: quota\.limits\.pids \(1000000000\) is above the server maximum \(\d+\)/);
  // A ceiling under the launcher's own minimum would make every job of the tenant end `error`, not 400.
  const tooLow = problems({ SBX_API_KEYS: '[{"key":"aaaaaaaaaaaaaaaa1","tenant":"a","quota":{"limits":{"pids":1,"cpus":0.001}}}]' });
  assert.match(tooLow, /tenant a: quota\.limits\.pids \(1\) is below the smallest value a job can run with \(2\)/);
  assert.match(tooLow, /tenant a: quota\.limits\.cpus \(0\.001\) is below the smallest value a job can run with \(0\.01\)/);
  assert.match(problems({ SBX_TENANT_ACTIVE_JOBS: '-1', SBX_TENANT_SUBMITS_PER_SECOND: 'fast' }), /SBX_TENANT_ACTIVE_JOBS="-1": must be >= 0[\s\S]*SBX_TENANT_SUBMITS_PER_SECOND="fast": must be a number/);
});

test('registry mirrors parse per registry, in order; a malformed list is refused', () => {
  const c = loadConfig({ SBX_REGISTRY_MIRRORS: 'docker.io=10.0.0.5:5000;mirror.local, ghcr.io=[::1]:5001' });
  assert.deepEqual(c.env.SBX_REGISTRY_MIRRORS, { 'docker.io': ['10.0.0.5:5000', 'mirror.local'], 'ghcr.io': ['[::1]:5001'] });
  assert.throws(() => loadConfig({ SBX_REGISTRY_MIRRORS: 'docker.io' }), /SBX_REGISTRY_MIRRORS=.*registry=mirror/);
});

test('SBX_API_ALLOWED_HOSTS: none by default; names are lowercased without a trailing dot; * is any; a bad name is refused by name', () => {
  assert.deepEqual(loadConfig({}).env.SBX_API_ALLOWED_HOSTS, []);
  assert.deepEqual(loadConfig({ SBX_API_ALLOWED_HOSTS: 'Sbx.Internal., api.example.com,*' }).env.SBX_API_ALLOWED_HOSTS, ['sbx.internal', 'api.example.com', '*']);
  assert.throws(() => loadConfig({ SBX_API_ALLOWED_HOSTS: 'ok.example,http://x.example' }), /SBX_API_ALLOWED_HOSTS=.*"http:\/\/x\.example" is not a host name/);
  assert.throws(() => loadConfig({ SBX_API_ALLOWED_HOSTS: 'host:8080' }), /"host:8080" is not a host name/);
});

test('registries in the configuration are spelt as image references spell them, so they match; a host no URL can name is refused', () => {
  // An image reference `127.1:5000/x` or `Ghcr.IO/x` names 127.0.0.1:5000 and ghcr.io (core/src/image-ref.ts).
  const c = loadConfig({ SBX_REGISTRY_MIRRORS: 'Index.Docker.IO=0x7f.1:5000;Mirror.Local, Ghcr.IO=[0::1]:5001', SBX_INSECURE_REGISTRIES: 'Registry.Local:5000,127.1:5001' });
  assert.deepEqual(c.env.SBX_REGISTRY_MIRRORS, { 'docker.io': ['127.0.0.1:5000', 'mirror.local'], 'ghcr.io': ['[::1]:5001'] });
  assert.deepEqual(c.env.SBX_INSECURE_REGISTRIES, ['registry.local:5000', '127.0.0.1:5001']);
  assert.throws(() => loadConfig({ SBX_REGISTRY_MIRRORS: 'docker.io=1.2.3.256:5000' }), /SBX_REGISTRY_MIRRORS=.*registry host "1\.2\.3\.256" is not a valid host name or address/);
  assert.throws(() => loadConfig({ SBX_REGISTRY_MIRRORS: 'docker.io=mirror.local:0' }), /SBX_REGISTRY_MIRRORS=.*registry port "0"/);
  assert.throws(() => loadConfig({ SBX_INSECURE_REGISTRIES: 'ok.local,[fe80::1%eth0]:5000' }), /SBX_INSECURE_REGISTRIES=.*"\[fe80::1%eth0\]:5000" is not a valid IPv6 address/);
});

test('SBX_EGRESS_ALLOW: empty by default; host, host:port, IP:port and CIDR entries; a bad entry is named', () => {
  assert.deepEqual(loadConfig({}).env.SBX_EGRESS_ALLOW, []);
  const entries = loadConfig({ SBX_EGRESS_ALLOW: '127.0.0.1:5000, Registry.Internal., [::1]:5001, 10.0.0.0/8' }).env.SBX_EGRESS_ALLOW;
  assert.deepEqual(entries.map((e) => (e.kind === 'name' ? [e.name, e.port] : [[...e.network].join('.'), e.prefix, e.port])), [
    ['127.0.0.1', 32, 5000],
    ['registry.internal', null],
    ['0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1', 128, 5001],
    ['10.0.0.0', 8, null],
  ]);
  assert.throws(() => loadConfig({ SBX_EGRESS_ALLOW: '127.0.0.1:5000,10.0.0.0/33' }), /SBX_EGRESS_ALLOW=.*entry "10\.0\.0\.0\/33" is not host, host:port, IP, IP:port, \[IPv6\]:port or CIDR/);
  assert.throws(() => loadConfig({ SBX_EGRESS_ALLOW: 'http://x' }), /SBX_EGRESS_ALLOW=.*entry "http:\/\/x" is not/);
});

test('jobs\' egress: on by default, ports 80 and 443, 64 connections; SBX_JOB_EGRESS_ALLOW apart from SBX_EGRESS_ALLOW; bad values named', () => {
  const env = loadConfig({ SBX_EGRESS_ALLOW: 'registry.internal' }).env;
  assert.equal(env.SBX_JOB_EGRESS, true);
  assert.deepEqual(env.SBX_JOB_EGRESS_ALLOW, [], 'what the service may reach is not open to jobs');
  assert.equal(env.SBX_JOB_EGRESS_PORTS.text, '80,443');
  assert.deepEqual([80, 443, 22, 8080].map((p) => env.SBX_JOB_EGRESS_PORTS.has(p)), [true, true, false, false]);
  assert.equal(env.SBX_JOB_EGRESS_CONNECTIONS, 64);
  assert.equal(env.SBX_JOB_EGRESS_BYTES, 2 ** 30);
  assert.equal(loadConfig({ SBX_JOB_EGRESS_BYTES: '0' }).env.SBX_JOB_EGRESS_BYTES, 0);
  assert.match(problemsOf({ SBX_JOB_EGRESS_BYTES: '-1' }), /SBX_JOB_EGRESS_BYTES/);
  assert.equal(env.SBX_JOB_EGRESS_REFUSALS, 1000);
  assert.equal(loadConfig({ SBX_JOB_EGRESS_REFUSALS: '0' }).env.SBX_JOB_EGRESS_REFUSALS, 0);
  assert.match(problemsOf({ SBX_JOB_EGRESS_REFUSALS: 'many' }), /SBX_JOB_EGRESS_REFUSALS="many": must be a number/);
  const custom = loadConfig({ SBX_JOB_EGRESS: 'false', SBX_JOB_EGRESS_PORTS: ' 443, 8000-8999 ', SBX_JOB_EGRESS_ALLOW: '10.0.0.5:8080' }).env;
  assert.equal(custom.SBX_JOB_EGRESS, false);
  assert.deepEqual([443, 8000, 8999, 9000, 80].map((p) => custom.SBX_JOB_EGRESS_PORTS.has(p)), [true, true, true, false, false]);
  assert.equal(custom.SBX_JOB_EGRESS_ALLOW.length, 1);
  assert.equal(loadConfig({ SBX_JOB_EGRESS_PORTS: '*' }).env.SBX_JOB_EGRESS_PORTS.has(22), true);
  for (const bad of ['0', '65536', '443,', '90-80', 'http', '80;443']) {
    assert.match(problemsOf({ SBX_JOB_EGRESS_PORTS: bad }), /SBX_JOB_EGRESS_PORTS=.*must be '\*' or a comma list of ports and ranges/, JSON.stringify(bad));
  }
  assert.match(problemsOf({ SBX_JOB_EGRESS_ALLOW: 'http://x' }), /SBX_JOB_EGRESS_ALLOW=.*entry "http:\/\/x" is not/);
  assert.match(problemsOf({ SBX_JOB_EGRESS_CONNECTIONS: '0' }), /SBX_JOB_EGRESS_CONNECTIONS/);
  // Per tenant: a key's quota may keep its jobs off the network; the default is the server's.
  const keys = (quota: unknown) => JSON.stringify([{ key: 'tenant-key-0123456789abc', tenant: 'graders', quota }, { key: 'tenant-key-0123456789xyz', tenant: 'ci' }]);
  const quotas = loadConfig({ SBX_API_KEYS: keys({ jobEgress: false }) }).quotas;
  assert.deepEqual([quotas.get('graders')!.jobEgress, quotas.get('ci')!.jobEgress], [false, true]);
  assert.match(problemsOf({ SBX_API_KEYS: keys({ jobEgress: 'no' }) }), /quota\.jobEgress.*must be true or false/);
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

test('SBX_REGISTRY_CERTS_DIR: an unreadable directory is refused', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sbx-config-certs-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  chmodSync(dir, 0o000);
  // In a child without the capabilities that let root read anything (CI runs as root).
  const config = new URL('./config.ts', import.meta.url).pathname;
  const r = runWithoutDacOverride(`import { loadConfig } from ${JSON.stringify(config)};
    try { loadConfig({ SBX_REGISTRY_CERTS_DIR: ${JSON.stringify(dir)} }); console.log('accepted'); } catch (e) { console.log(e.message); }`);
  assert.match(r.stdout, /SBX_REGISTRY_CERTS_DIR=.*: is not readable by this process/, r.stderr);
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

test('pooled setups are made ahead only with 10 % of the CPUs idle by default; 0 makes them always', () => {
  assert.equal(loadConfig({}).env.SBX_POOL_MIN_IDLE_PERCENT, 10);
  assert.equal(loadConfig({ SBX_POOL_MIN_IDLE_PERCENT: '0' }).env.SBX_POOL_MIN_IDLE_PERCENT, 0);
  for (const [bad, why] of [['101', /must be <= 100/], ['-1', /must be >= 0/], ['2.5', /must be a whole number/], ['lots', /must be a number/]] as const)
    assert.throws(() => loadConfig({ SBX_POOL_MIN_IDLE_PERCENT: bad }), (e: unknown) => e instanceof ConfigError && e.problems.some((p) => p.startsWith(`SBX_POOL_MIN_IDLE_PERCENT="${bad}"`) && why.test(p)));
});

test('placement settings: cache-aware on by default, the hand-off wait bounded', () => {
  const d = loadConfig({});
  assert.deepEqual([d.env.SBX_PLACEMENT_CACHE_AWARE, d.env.SBX_PLACEMENT_MAX_WAIT_MS], [true, 1000]);
  const c = loadConfig({ SBX_PLACEMENT_CACHE_AWARE: 'false', SBX_PLACEMENT_MAX_WAIT_MS: '250' });
  assert.deepEqual([c.env.SBX_PLACEMENT_CACHE_AWARE, c.env.SBX_PLACEMENT_MAX_WAIT_MS], [false, 250]);
  assert.throws(() => loadConfig({ SBX_PLACEMENT_CACHE_AWARE: 'sometimes', SBX_PLACEMENT_MAX_WAIT_MS: '10' }), (e: unknown) => {
    assert.ok(e instanceof ConfigError);
    const text = e.problems.join('\n');
    assert.match(text, /SBX_PLACEMENT_CACHE_AWARE="sometimes": must be true or false/);
    assert.match(text, /SBX_PLACEMENT_MAX_WAIT_MS="10": must be >= 50/);
    return true;
  });
});

test('job limit settings stay within the launcher bounds (core/src/launch-bounds.ts)', () => {
  for (const [name, value, message] of [
    ['SBX_MAX_PIDS', '1', /SBX_MAX_PIDS="1": must be >= 2/],
    ['SBX_MAX_PIDS', '4194305', /must be <= 4194304/],
    ['SBX_DEFAULT_CPUS', '0.001', /SBX_DEFAULT_CPUS="0.001": must be >= 0.01/],
    ['SBX_MAX_TIMEOUT_MS', String(2 ** 31), /must be <= 2147483647/],
    ['SBX_MAX_OPEN_FILES', '7', /must be >= 8/],
    ['SBX_MAX_OPEN_FILES', '1048577', /must be <= 1048576/],
  ] as const) {
    assert.throws(() => loadConfig({ [name]: value }), message, `${name}=${value}`);
  }
});

test('SBX_ALLOW_ANONYMOUS is a boolean, false by default', () => {
  assert.equal(loadConfig({}).env.SBX_ALLOW_ANONYMOUS, false);
  assert.equal(loadConfig({ SBX_ALLOW_ANONYMOUS: 'true' }).env.SBX_ALLOW_ANONYMOUS, true);
  assert.throws(() => loadConfig({ SBX_ALLOW_ANONYMOUS: 'maybe' }), /SBX_ALLOW_ANONYMOUS="maybe": must be true or false/);
});

test('SBX_SECRETS_KEY: 32 bytes as hex or base64; a bad one is refused without being echoed', () => {
  const hex = 'ab'.repeat(32);
  assert.equal(loadConfig({ SBX_SECRETS_KEY: hex }).env.SBX_SECRETS_KEY, hex);
  assert.equal(loadConfig({}).env.SBX_SECRETS_KEY, undefined);
  assert.throws(() => loadConfig({ SBX_SECRETS_KEY: 'too-short-secret-value' }), (e: unknown) => {
    assert.ok(e instanceof ConfigError);
    assert.match(e.message, /SBX_SECRETS_KEY=\(hidden\): must be 32 random bytes as 64 hex digits or 44 base64 characters/);
    assert.ok(!e.message.includes('too-short-secret-value'));
    return true;
  });
});

test('image cache references: 1000 by default, 0 for no limit, a bad value is refused', () => {
  assert.equal(loadConfig({}).env.SBX_IMAGE_CACHE_REFERENCES, 1000);
  assert.equal(loadConfig({ SBX_IMAGE_CACHE_REFERENCES: '0' }).env.SBX_IMAGE_CACHE_REFERENCES, 0);
  assert.throws(() => loadConfig({ SBX_IMAGE_CACHE_REFERENCES: '-1' }), (err: unknown) => err instanceof ConfigError && /SBX_IMAGE_CACHE_REFERENCES="-1": must be >= 0/.test(err.problems.join('\n')));
});

test('pull bounds: concurrency, deadline and stall rule have defaults; bad values are refused', () => {
  const d = loadConfig({}).env;
  assert.deepEqual([d.SBX_PULL_CONCURRENCY, d.SBX_PULL_TIMEOUT_MS, d.SBX_PULL_STALL_MS, d.SBX_PULL_STALL_BYTES], [4, 600_000, 30_000, 65_536]);
  const e = loadConfig({ SBX_PULL_CONCURRENCY: '2', SBX_PULL_TIMEOUT_MS: '60000', SBX_PULL_STALL_MS: '5000', SBX_PULL_STALL_BYTES: '1024' }).env;
  assert.deepEqual([e.SBX_PULL_CONCURRENCY, e.SBX_PULL_TIMEOUT_MS, e.SBX_PULL_STALL_MS, e.SBX_PULL_STALL_BYTES], [2, 60_000, 5_000, 1024]);
  assert.throws(() => loadConfig({ SBX_PULL_CONCURRENCY: '0', SBX_PULL_TIMEOUT_MS: '10', SBX_PULL_STALL_MS: 'soon', SBX_PULL_STALL_BYTES: '0' }), (err: unknown) => {
    assert.ok(err instanceof ConfigError);
    const text = err.problems.join('\n');
    assert.match(text, /SBX_PULL_CONCURRENCY="0": must be >= 1/);
    assert.match(text, /SBX_PULL_TIMEOUT_MS="10": must be >= 1000/);
    assert.match(text, /SBX_PULL_STALL_MS="soon": must be a number/);
    assert.match(text, /SBX_PULL_STALL_BYTES="0": must be >= 1/);
    return true;
  });
});

test('webhook secrets: per tenant or * (SBX_WEBHOOK_SECRETS), or webhookSecret in a key entry; bad values named, never shown', () => {
  const c = loadConfig({
    SBX_WEBHOOK_SECRETS: '*:fallback-secret-0123456789abcdef,team-b:team-b-secret-0123456789abcdef',
    SBX_API_KEYS: '[{"key":"aaaaaaaaaaaaaaaa1","tenant":"team-a","webhookSecret":"team-a-secret-0123456789abcdef"}]',
  });
  assert.equal(webhookSecretFor(c.env, 'team-a'), 'team-a-secret-0123456789abcdef');
  assert.equal(webhookSecretFor(c.env, 'team-b'), 'team-b-secret-0123456789abcdef');
  assert.equal(webhookSecretFor(c.env, 'team-z'), 'fallback-secret-0123456789abcdef');
  assert.equal(webhookSecretFor(loadConfig({}).env, 'default'), null);
  assert.deepEqual([c.env.SBX_WEBHOOK_TIMEOUT_MS, c.env.SBX_WEBHOOK_RETRY_MS, c.env.SBX_WEBHOOK_BACKOFF_MS, c.env.SBX_WEBHOOK_BACKOFF_MAX_MS], [10_000, 3_600_000, 1_000, 300_000]);
  const problems = (env: Record<string, string>) => {
    try {
      loadConfig(env);
      return '';
    } catch (e) {
      return (e as Error).message;
    }
  };
  const short = problems({ SBX_WEBHOOK_SECRETS: 'team-a:tooshort' });
  assert.match(short, /SBX_WEBHOOK_SECRETS=\(hidden\): each entry must be <tenant>:<secret>/);
  assert.doesNotMatch(short, /tooshort/);
  assert.match(problems({ SBX_API_KEYS: '[{"key":"aaaaaaaaaaaaaaaa1","tenant":"a","webhookSecret":"x"}]' }), /\[0\]\.webhookSecret: must be 24-512 chars/);
  assert.match(problems({ SBX_WEBHOOK_SECRETS: 'a:aaaaaaaaaaaaaaaaaaaaaaaaaaaa', SBX_API_KEYS: '[{"key":"aaaaaaaaaaaaaaaa1","tenant":"a","webhookSecret":"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"}]' }), /tenant a: two different webhook secrets/);
  assert.match(problems({ SBX_WEBHOOK_BACKOFF_MS: '5000', SBX_WEBHOOK_BACKOFF_MAX_MS: '1000' }), /SBX_WEBHOOK_BACKOFF_MS \(5000\) is above SBX_WEBHOOK_BACKOFF_MAX_MS/);
  assert.match(problems({ SBX_WEBHOOK_TIMEOUT_MS: '5' }), /SBX_WEBHOOK_TIMEOUT_MS="5": must be >= 100/);
});

test('slow clients (P46): headers within 10 s, the whole request within 30 s by default; the headers bound may not exceed the request\'s', () => {
  const c = loadConfig({});
  assert.deepEqual([c.env.SBX_API_HEADERS_TIMEOUT_MS, c.env.SBX_API_REQUEST_TIMEOUT_MS], [10_000, 30_000]);
  assert.throws(() => loadConfig({ SBX_API_HEADERS_TIMEOUT_MS: '20000', SBX_API_REQUEST_TIMEOUT_MS: '5000' }), /SBX_API_HEADERS_TIMEOUT_MS \(20000\) is above SBX_API_REQUEST_TIMEOUT_MS \(5000\)/);
  assert.throws(() => loadConfig({ SBX_API_REQUEST_TIMEOUT_MS: '10' }), /SBX_API_REQUEST_TIMEOUT_MS="10": must be >= 1000/);
});

test('interactive idle limit: default 5 min, maximum 1 h; within bounds; default above maximum refused', () => {
  const c = loadConfig({});
  assert.deepEqual(c.limits.idle, { defaultMs: 300_000, maxMs: 3_600_000 });
  assert.deepEqual(loadConfig({ SBX_DEFAULT_IDLE_TIMEOUT_MS: '2000', SBX_MAX_IDLE_TIMEOUT_MS: '60000' }).limits.idle, { defaultMs: 2000, maxMs: 60_000 });
  assert.throws(() => loadConfig({ SBX_DEFAULT_IDLE_TIMEOUT_MS: '500' }), /SBX_DEFAULT_IDLE_TIMEOUT_MS="500": must be >= 1000/);
  assert.throws(() => loadConfig({ SBX_DEFAULT_IDLE_TIMEOUT_MS: '90000', SBX_MAX_IDLE_TIMEOUT_MS: '60000' }), /SBX_DEFAULT_IDLE_TIMEOUT_MS \(90000\) is above SBX_MAX_IDLE_TIMEOUT_MS \(60000\)/);
});

test('SBX_LOST_JOB_REQUEUES: a lost job is queued again once by default, 0 to 5 times', () => {
  assert.equal(loadConfig({}).env.SBX_LOST_JOB_REQUEUES, 1);
  assert.equal(loadConfig({ SBX_LOST_JOB_REQUEUES: '0' }).env.SBX_LOST_JOB_REQUEUES, 0);
  assert.throws(() => loadConfig({ SBX_LOST_JOB_REQUEUES: '6' }), /SBX_LOST_JOB_REQUEUES="6": must be <= 5/);
  assert.throws(() => loadConfig({ SBX_LOST_JOB_REQUEUES: 'once' }), /SBX_LOST_JOB_REQUEUES="once": must be a number/);
});

test('SBX_RECEIPT_KEY_FILE: an Ed25519 private key in PEM; a missing file, another kind of key or not a key is refused', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sbx-config-receipt-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const problems = (value: string): string => problemsOf({ SBX_RECEIPT_KEY_FILE: value });
  const file = (name: string, text: string | Buffer, mode = 0o600) => {
    writeFileSync(join(dir, name), text, { mode });
    chmodSync(join(dir, name), mode); // whatever the umask
    return join(dir, name);
  };
  const edPem = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' });
  const ed = file('ed.pem', edPem);
  assert.equal(loadConfig({ SBX_RECEIPT_KEY_FILE: ed }).env.SBX_RECEIPT_KEY_FILE?.asymmetricKeyType, 'ed25519');
  assert.equal(loadConfig({ SBX_RECEIPT_KEY_FILE: file('ed-400.pem', edPem, 0o400) }).env.SBX_RECEIPT_KEY_FILE?.asymmetricKeyType, 'ed25519');
  // A key others may read is refused (before: accepted, mode 0644 as openssl genpkey leaves it under umask 022).
  for (const mode of [0o644, 0o640, 0o604]) assert.match(problems(file(`ed-${mode.toString(8)}.pem`, edPem, mode)), new RegExp(`SBX_RECEIPT_KEY_FILE=".*ed-${mode.toString(8)}.pem": may be read by its group or others \\(mode 0${mode.toString(8)}\\): whoever reads it can sign receipts; chmod 600 it`));
  assert.equal(loadConfig({}).env.SBX_RECEIPT_KEY_FILE, undefined, 'unset: no receipts');
  assert.match(problems(join(dir, 'missing.pem')), /SBX_RECEIPT_KEY_FILE=".*missing.pem": cannot be read \(ENOENT\)/);
  const rsa = file('rsa.pem', generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
  assert.match(problems(rsa), /is a rsa key; receipts are signed with Ed25519/);
  assert.match(problems(file('junk.pem', 'not a key')), /is not a private key in PEM \(openssl genpkey -algorithm ed25519\)/);
  assert.match(problems('relative.pem'), /must be an absolute path/);
});

test('SBX_RECEIPT_KEY_FILE: the key is never in a config error, given where its path goes or in a file that is refused (before: the PEM printed whole)', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sbx-config-receipt-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const edPem = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const body = edPem.split('\n')[1]!; // the key's base64
  const bad = (value: string): string => {
    const said = problemsOf({ SBX_RECEIPT_KEY_FILE: value });
    assert.ok(!said.includes(body), `the key in: ${said}`);
    return said;
  };
  // The key itself in the variable (SBX_RECEIPT_KEY_FILE="$(cat receipt.pem)"), with or without its PEM lines.
  assert.equal(bad(edPem), 'SBX_RECEIPT_KEY_FILE=(hidden: not a path): must be an absolute path (of the key\'s file, not the key itself)');
  assert.match(bad(body), /^SBX_RECEIPT_KEY_FILE=\(hidden: not a path\): must be an absolute path/);
  // A path that names no file but holds PEM (a key pasted after a slash) is not shown either.
  assert.match(bad(`/${edPem}`), /^SBX_RECEIPT_KEY_FILE=\(hidden: PEM\): cannot be read \(ENOENT\)/);
  // A file refused for its mode or content: its path is shown, never what it holds.
  const open = join(dir, 'open.pem');
  writeFileSync(open, edPem, { mode: 0o644 });
  chmodSync(open, 0o644);
  assert.match(bad(open), /open\.pem": may be read by its group or others/);
  const mangled = join(dir, 'mangled.pem');
  writeFileSync(mangled, edPem.replace('PRIVATE KEY-----\n', 'PRIVATE KEY-----\n!'), { mode: 0o600 });
  assert.match(bad(mangled), /mangled\.pem": is not a private key in PEM/);
});

test('SBX_RECEIPT_PUBLIC_KEYS_FILE: Ed25519 public keys in PEM, one after another; a private key, no key or another kind is refused', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sbx-config-receipt-pub-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, text: string) => {
    writeFileSync(join(dir, name), text);
    return join(dir, name);
  };
  const pub = () => generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const two = file('two.pem', `# retired 2026-11\n${pub()}\n# current\n${pub()}`);
  assert.equal(loadConfig({ SBX_RECEIPT_PUBLIC_KEYS_FILE: two }).env.SBX_RECEIPT_PUBLIC_KEYS_FILE?.length, 2);
  const problems = (value: string): string => problemsOf({ SBX_RECEIPT_PUBLIC_KEYS_FILE: value });
  const priv = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  assert.match(problems(file('with-private.pem', pub() + priv)), /SBX_RECEIPT_PUBLIC_KEYS_FILE=".*with-private.pem": holds a private key: give only public keys/);
  assert.match(problems(file('empty.pem', '')), /holds no public key in PEM/);
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
  assert.match(problems(file('rsa.pem', pub() + rsa)), /key 2 is a rsa key; receipts are signed with Ed25519/);
  assert.match(problems(file('broken.pem', '-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n')), /key 1 is not a public key in PEM/);
  assert.match(problems(join(dir, 'missing.pem')), /cannot be read \(ENOENT\)/);
  assert.match(problems('relative.pem'), /must be an absolute path/);
});
