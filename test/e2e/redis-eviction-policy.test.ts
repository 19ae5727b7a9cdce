/**
 * A Redis configured to evict keys when full (maxmemory-policy other than noeviction) loses a queue
 * entry, a job's record or its output without a word; BullMQ requires noeviction. The API and the
 * worker refuse to start against one: exit 2, one line on stderr naming maxmemory-policy and what
 * to set, a fatal log line, and the worker never registers (core/src/redis-eviction.ts). Before,
 * both started: the API answered /readyz 200 and the worker registered, and the only sign was
 * BullMQ's console line "IMPORTANT! Eviction policy is allkeys-lru. It should be "noeviction"".
 * With noeviction both start, and a later switch to an evicting policy is logged as an error, seen
 * on a reconnect or by the check every max(5 s, 5 heartbeats).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { RedisKeys } from '../../core/src/redis-keys.ts';
import { removeCgroupTree } from '../../worker/src/cgroup-parent.ts';
import { waitUntil } from '../harness/redis.ts';
import { useRedis } from '../harness/use-redis.ts';
import { spawnSbx, startApi, type ManagedProcess } from '../harness/stack.ts';

const runId = randomBytes(4).toString('hex');
const CGROUP_PARENT = `sbx-test-${runId}`;
const keys = new RedisKeys('sbx');
const scratch = mkdtempSync(join(tmpdir(), 'sbx-eviction-'));
const redis = useRedis();
const started: ManagedProcess[] = [];

after(async () => {
  await Promise.all(started.map((p) => p.kill('SIGKILL')));
  removeCgroupTree(CGROUP_PARENT);
  rmSync(scratch, { recursive: true, force: true });
});

const env = (): Record<string, string> => ({ SBX_REDIS_URL: redis.server.url, SBX_API_HOST: '127.0.0.1', SBX_LOG_LEVEL: 'info', SBX_STATE_DIR: mkdtempSync(join(scratch, 'state-')), SBX_CGROUP_PARENT: CGROUP_PARENT, SBX_HEARTBEAT_MS: '500' });

function spawn(name: string, entry: string, extra: Record<string, string> = {}): { p: ManagedProcess; stderr: () => string } {
  const p = spawnSbx(name, entry, { ...env(), ...extra });
  started.push(p);
  let stderr = '';
  p.child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  return { p, stderr: () => stderr };
}

const exited = (p: ManagedProcess) => p.child.exitCode !== null || p.child.signalCode !== null;

function assertRefusal(name: string, p: ManagedProcess, stderr: string): void {
  assert.equal(p.child.exitCode, 2, `${name} exit code (log:\n${p.log()})`);
  const lines = stderr.split('\n').filter((l) => l.includes('maxmemory-policy'));
  assert.equal(lines.length, 1, `one line naming maxmemory-policy on stderr:\n${p.log()}`);
  assert.match(lines[0]!, new RegExp(`^${name}: Redis has maxmemory-policy allkeys-lru, which evicts keys when memory is full: .*needs maxmemory-policy noeviction`));
  assert.doesNotMatch(stderr, /\n\s+at /, 'a stack trace');
  const fatal = p.log().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { level: number; setting?: string }).find((l) => l.level === 60);
  assert.equal(fatal?.setting, 'maxmemory-policy', 'a fatal log line naming the setting');
}

test('maxmemory-policy allkeys-lru: the API and the worker refuse to start, exit 2 naming the setting', async () => {
  await redis.client.config('SET', 'maxmemory-policy', 'allkeys-lru');
  try {
    const api = spawn('api', 'api/src/main.ts', { SBX_API_PORT: '0' });
    const worker = spawn('worker', 'worker/src/main.ts', { SBX_WORKER_ID: `eviction-${runId}/1` });
    await waitUntil(async () => exited(api.p) && exited(worker.p), 60_000, 'the API and the worker to exit');
    assertRefusal('sbx-api', api.p, api.stderr());
    assertRefusal('sbx-worker', worker.p, worker.stderr());
    assert.doesNotMatch(worker.p.log(), /sbx worker ready/);
    assert.deepEqual(await redis.client.zrange(keys.workers(), 0, -1), [], 'the worker never registered');
  } finally {
    await redis.client.config('SET', 'maxmemory-policy', 'noeviction');
  }
});

test('noeviction: the API starts and is ready; a reconnect to a server switched to volatile-lru is logged as an error', async () => {
  const { process: api, url } = await startApi('api-ok', env());
  started.push(api);
  assert.equal((await fetch(`${url}/readyz`)).status, 200);
  await redis.client.config('SET', 'maxmemory-policy', 'volatile-lru');
  try {
    await redis.client.client('KILL', 'TYPE', 'normal', 'SKIPME', 'yes'); // every connection but ours: the API reconnects
    await waitUntil(async () => /"setting":"maxmemory-policy".*volatile-lru/.test(api.log()), 30_000, 'the API to log the evicting policy');
    const line = JSON.parse(api.log().split('\n').find((l) => l.includes('volatile-lru'))!) as { level: number; msg: string };
    assert.equal(line.level, 50, 'an error, not fatal: the running API goes on');
    assert.ok(!exited(api), 'still running');
  } finally {
    await redis.client.config('SET', 'maxmemory-policy', 'noeviction');
  }
});

test('noeviction, then CONFIG SET maxmemory-policy allkeys-random on the live server: the running API logs it as an error, once', async () => {
  const { process: api } = await startApi('api-recheck', env());
  started.push(api);
  await redis.client.config('SET', 'maxmemory-policy', 'allkeys-random');
  try {
    await waitUntil(async () => /"setting":"maxmemory-policy".*allkeys-random/.test(api.log()), 30_000, 'the API to log the evicting policy');
    assert.ok(!exited(api), 'still running');
  } finally {
    await redis.client.config('SET', 'maxmemory-policy', 'noeviction');
  }
  assert.equal(api.log().split('\n').filter((l) => l.includes('allkeys-random')).length, 1, 'logged once, not at every check');
});
