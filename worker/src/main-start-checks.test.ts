/**
 * What the worker process (worker/src/main.ts, started as `npm run worker` starts it) checks before
 * it registers and takes jobs, each refusal an exit 2 with one line naming the variable:
 * - SBX_WORKER_METRICS_PORT: the metrics listener listens first; a port held by someone else stops
 *   the start (before: "sbx worker ready", registered, took jobs, then died of an unhandled
 *   EADDRINUSE, exit 1);
 * - SBX_DOCKER_CONFIG: read and parsed at start; a missing file or one that is not a Docker
 *   config.json stops the start (before: a missing file was "no credentials", a broken one ended
 *   every job that pulled `internal`).
 * A worker given a usable config and a free port (0) starts, registers and answers /metrics.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { createServer, type Server } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Redis } from 'ioredis';
import { RedisKeys } from '../../core/src/redis-keys.ts';
import { startRedis, waitUntil, type RunningRedis } from '../../test/harness/redis.ts';
import { spawnSbx, type ManagedProcess } from '../../test/harness/stack.ts';
import { removeCgroupTree } from './cgroup-parent.ts';

const runId = randomBytes(4).toString('hex');
const CGROUP_PARENT = `sbx-test-${runId}`;
const keys = new RedisKeys('sbx');
const scratch = mkdtempSync(join(tmpdir(), 'sbx-worker-start-'));
let redis: RunningRedis;
let client: Redis;
const workers: ManagedProcess[] = [];

before(async () => {
  redis = await startRedis();
  client = redis.client();
});
after(async () => {
  await Promise.all(workers.map((w) => w.kill('SIGKILL')));
  await redis?.stop();
  removeCgroupTree(CGROUP_PARENT);
  rmSync(scratch, { recursive: true, force: true });
});

interface Started {
  id: string;
  worker: ManagedProcess;
  stderr: () => string;
}

let count = 0;
function startWorker(env: Record<string, string>): Started {
  const id = `start-checks-${runId}/${++count}`;
  const worker = spawnSbx(`worker-${count}`, 'worker/src/main.ts', {
    SBX_REDIS_URL: redis.url,
    SBX_STATE_DIR: mkdtempSync(join(scratch, 'state-')),
    SBX_CGROUP_PARENT: CGROUP_PARENT,
    SBX_WORKER_ID: id,
    SBX_HEARTBEAT_MS: '500',
    SBX_LOG_LEVEL: 'info',
    ...env,
  });
  workers.push(worker);
  let stderr = '';
  worker.child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  return { id, worker, stderr: () => stderr };
}

const isRegistered = async (id: string): Promise<boolean> => (await client.zscore(keys.workers(), id)) !== null || (await client.exists(keys.worker(id))) === 1;
const exited = (w: ManagedProcess): boolean => w.child.exitCode !== null || w.child.signalCode !== null;

/** Waits until the worker exits or registers (then it is stopped); its exit code and whether it ever registered. */
async function outcome(s: Started): Promise<{ code: number | null; registered: boolean }> {
  let registered = false;
  await waitUntil(async () => {
    if (exited(s.worker)) return true;
    registered = await isRegistered(s.id);
    return registered;
  }, 120_000, `worker ${s.id} to exit or register`);
  if (!exited(s.worker)) await s.worker.kill('SIGKILL');
  registered ||= (await client.zscore(keys.workers(), s.id)) !== null;
  return { code: s.worker.child.exitCode, registered };
}

/** The refusal: exit 2, exactly one line naming `variable` (returned), no stack trace, never registered. */
async function assertRefused(s: Started, variable: string): Promise<string> {
  const { code, registered } = await outcome(s);
  assert.deepEqual({ code, registered }, { code: 2, registered: false }, `exit code, registered (log:\n${s.worker.log()})`);
  const named = s.stderr().split('\n').filter((l) => l.includes(variable));
  assert.equal(named.length, 1, `one line naming ${variable} on stderr:\n${s.worker.log()}`);
  assert.doesNotMatch(s.stderr(), /\n\s+at /, 'a stack trace');
  assert.doesNotMatch(s.worker.log(), /sbx worker ready/);
  assert.deepEqual(await client.zrange(keys.workers(), 0, -1), [], 'the workers index');
  return named[0]!;
}

test('SBX_WORKER_METRICS_PORT on a port another process listens on: exit 2 naming it, before registering', async () => {
  const holder: Server = createServer();
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
  const port = (holder.address() as { port: number }).port;
  try {
    const line = await assertRefused(startWorker({ SBX_WORKER_METRICS_PORT: String(port) }), 'SBX_WORKER_METRICS_PORT');
    assert.equal(line, `  SBX_WORKER_METRICS_PORT="${port}": cannot listen on 127.0.0.1:${port}: the port is in use (EADDRINUSE); free it or choose another (0 = a free port)`);
  } finally {
    await new Promise((r) => holder.close(r));
  }
});

test('SBX_DOCKER_CONFIG that is not JSON: exit 2 naming it and what is wrong, before registering', async () => {
  const path = join(scratch, 'broken-config.json');
  writeFileSync(path, `{"auths": {"registry.example:5000": {"auth": "${Buffer.from('u:secret-pw').toString('base64')}"}`);
  const line = await assertRefused(startWorker({ SBX_DOCKER_CONFIG: path }), 'SBX_DOCKER_CONFIG');
  assert.match(line, new RegExp(`^  SBX_DOCKER_CONFIG="${path}": is not valid JSON( \\(at character \\d+\\))?; a Docker config\\.json is expected$`));
});

test('SBX_DOCKER_CONFIG naming no file: exit 2 naming it', async () => {
  const path = join(scratch, 'no-such-config.json');
  const line = await assertRefused(startWorker({ SBX_DOCKER_CONFIG: path }), 'SBX_DOCKER_CONFIG');
  assert.equal(line, `  SBX_DOCKER_CONFIG="${path}": no such file (ENOENT); unset it for no registry credentials`);
});

test('SBX_DOCKER_CONFIG of the wrong shape: exit 2 naming the registry', async () => {
  const path = join(scratch, 'shape-config.json');
  writeFileSync(path, JSON.stringify({ auths: { 'registry.example:5000': 'u:pw' } }));
  const line = await assertRefused(startWorker({ SBX_DOCKER_CONFIG: path }), 'SBX_DOCKER_CONFIG');
  assert.equal(line, `  SBX_DOCKER_CONFIG="${path}": not a Docker config.json: auths["registry.example:5000"] must be an object`);
});

test('a usable SBX_DOCKER_CONFIG and a free metrics port (0): the worker starts, registers, answers /metrics, stops with 0', async () => {
  const path = join(scratch, 'good-config.json');
  writeFileSync(path, JSON.stringify({ auths: { 'registry.example:5000': { username: 'u', password: 'pw' } } }));
  const s = startWorker({ SBX_DOCKER_CONFIG: path, SBX_WORKER_METRICS_PORT: '0' });
  const { registered } = await outcome({ ...s, worker: { ...s.worker, kill: async () => {} } });
  assert.equal(registered, true, `the worker did not register:\n${s.worker.log()}`);
  assert.ok(!exited(s.worker), `the worker exited:\n${s.worker.log()}`);
  const logged = s.worker.log().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { msg?: string; port?: number; registries?: string[] });
  assert.deepEqual(logged.find((l) => l.msg === 'registry credentials loaded')?.registries, ['registry.example:5000']);
  const port = logged.find((l) => l.msg === 'worker metrics listening')?.port;
  assert.ok(port, 'the metrics port is logged');
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  assert.equal(res.status, 200);
  assert.match(await res.text(), /^# HELP /m);
  await s.worker.kill('SIGTERM');
  assert.equal(s.worker.child.exitCode, 0, s.worker.log());
  assert.equal(await isRegistered(s.id), false, 'still in the workers index after stopping');
});

/** GET http://127.0.0.1:`port``path` with `host` as its Host header; the status. */
function statusWithHost(address: string, port: number, host: string, path = '/metrics'): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ hostname: address, port, path, headers: { host } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

test('SBX_WORKER_METRICS_HOST=0.0.0.0 (a pod, scraped at its address): a Host that is an IP address is answered, a name other than localhost is not (DNS rebinding)', async () => {
  const s = startWorker({ SBX_WORKER_METRICS_PORT: '0', SBX_WORKER_METRICS_HOST: '0.0.0.0' });
  await waitUntil(async () => exited(s.worker) || s.worker.log().includes('worker metrics listening'), 60_000, 'the metrics listener');
  const line = s.worker.log().split('\n').find((l) => l.includes('worker metrics listening'))!;
  const { host, port } = JSON.parse(line) as { host: string; port: number };
  assert.equal(host, '0.0.0.0');
  assert.equal(await statusWithHost('127.0.0.1', port, `10.1.2.3:${port}`), 200, 'scraped as a pod is, by its address');
  assert.equal(await statusWithHost('127.0.0.1', port, `[fd00::1]:${port}`), 200);
  assert.equal(await statusWithHost('127.0.0.1', port, `localhost:${port}`), 200);
  assert.equal(await statusWithHost('127.0.0.1', port, `rebound.example:${port}`), 403);
  // Off loopback for real where this machine has such an address.
  const outside = Object.values(networkInterfaces()).flat().find((i) => i && !i.internal && i.family === 'IPv4');
  if (outside) assert.equal(await statusWithHost(outside.address, port, `${outside.address}:${port}`), 200, `by ${outside.address}`);
  await s.worker.kill('SIGTERM');
});

test('by default the metrics listener is on loopback: an IP address of another machine as Host is refused', async () => {
  const s = startWorker({ SBX_WORKER_METRICS_PORT: '0' });
  await waitUntil(async () => exited(s.worker) || s.worker.log().includes('worker metrics listening'), 60_000, 'the metrics listener');
  const line = s.worker.log().split('\n').find((l) => l.includes('worker metrics listening'))!;
  const { host, port } = JSON.parse(line) as { host: string; port: number };
  assert.equal(host, '127.0.0.1');
  assert.equal(await statusWithHost('127.0.0.1', port, `127.0.0.1:${port}`), 200);
  assert.equal(await statusWithHost('127.0.0.1', port, `10.1.2.3:${port}`), 403);
  await s.worker.kill('SIGTERM');
});

test('SBX_WORKER_METRICS_HOST that is not an IP address: exit 2 naming it', async () => {
  const line = await assertRefused(startWorker({ SBX_WORKER_METRICS_PORT: '0', SBX_WORKER_METRICS_HOST: 'metrics.internal' }), 'SBX_WORKER_METRICS_HOST');
  assert.equal(line, '  SBX_WORKER_METRICS_HOST="metrics.internal": must be an IP address, e.g. 127.0.0.1, 0.0.0.0 or ::');
});

test('two workers on this host: by default each gets host uids of its own; given the same SBX_UID_BASE, the second refuses to start (exit 2) naming the first', async () => {
  const readyLine = async (s: Started) => {
    await waitUntil(async () => exited(s.worker) || s.worker.log().includes('sbx worker ready'), 120_000, `worker ${s.id} to be ready`);
    const ready = s.worker.log().split('\n').find((l) => l.includes('sbx worker ready'));
    if (!ready) throw new Error(`worker ${s.id} did not start:\n${s.worker.log()}`);
    return JSON.parse(ready) as { hostUids: string };
  };
  const a = startWorker({ SBX_WORKER_SLOTS: '2' });
  const b = startWorker({ SBX_WORKER_SLOTS: '2' });
  const [ua, ub] = (await Promise.all([readyLine(a), readyLine(b)])).map((l) => l.hostUids.split('-').map(Number) as [number, number]);
  assert.ok(ua![1] < ub![0] || ub![1] < ua![0], `distinct ranges: ${JSON.stringify([ua, ub])}`);
  await Promise.all([a.worker.kill('SIGTERM'), b.worker.kill('SIGTERM')]);
  // A range no auto claim of this machine's tests reaches, and another run of this suite on the
  // same host (claims are host-wide) most likely does not hold: one of 15,000 by this process's pid,
  // all below SBX_UID_BASE's bound of 4,000,000,000 (of 16,384, a pid past 15,258 gave one over it).
  const base = 3_000_000_000 + (process.pid % 15_000) * 65_536;
  const fixed = { SBX_WORKER_SLOTS: '1', SBX_UID_BASE: String(base) };
  const first = startWorker(fixed);
  await readyLine(first);
  const second = startWorker(fixed);
  assert.deepEqual(await outcome(second), { code: 2, registered: false }, second.worker.log());
  const named = second.stderr().split('\n').filter((l) => l.includes('SBX_UID_BASE'));
  assert.equal(named.length, 1, second.worker.log());
  const line = named[0]!;
  assert.match(line, new RegExp(`^  SBX_UID_BASE="${base}": its host uids ${base}–${base + 65_535} \\(1 slots\\) overlap those of another worker on this host: worker ${first.id.replace(/[/.]/g, '\\$&')} \\(pid ${first.worker.child.pid}\\) holds ${base}–${base + 65_535}; jobs of both would run as the same host users`));
  await first.worker.kill('SIGTERM');
});
