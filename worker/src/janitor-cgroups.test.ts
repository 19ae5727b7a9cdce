/**
 * The cgroup subtrees of workers gone for good (SIGKILLed, never back under their id) are removed by
 * any worker of the host (at start and at each janitor pass), never a live worker's, never one with a
 * process in it, never groups that are not sbx's. Before, only a worker's own subtree was swept (at its
 * start), so a gone worker's empty job groups stayed for ever. Real cgroup hierarchies (root; v1,
 * hybrid or v2: groups made in every mounted hierarchy, as the launcher does).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, realpathSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { removeCgroupTree } from './cgroup-parent.ts';
import { liveWorkerCgroupNames, removeGoneWorkerCgroups, workerCgroupName } from './janitor-cgroups.ts';
import { RedisKeys } from '../../core/src/redis-keys.ts';
import { useRedis } from '../../test/harness/use-redis.ts';

const redis = useRedis();

const ROOT = '/sys/fs/cgroup';
const v2 = existsSync(join(ROOT, 'cgroup.controllers'));
const mounts = v2 ? [ROOT] : [...new Set(readdirSync(ROOT).map((e) => realpathSync(join(ROOT, e))))].filter((m) => existsSync(join(m, 'cgroup.procs')));
const skip = process.getuid?.() !== 0 ? 'needs root (cgroups)' : mounts.length === 0 ? 'no cgroup hierarchy mounted' : false;

test('a gone worker\'s empty subtree is removed; a live one\'s, a busy one\'s, a foreign one and our own are not', { skip }, async () => {
  const parent = `sbx-test-gone-${process.pid}`;
  const made = (rel: string) => mounts.forEach((m) => mkdirSync(join(m, parent, rel), { recursive: true }));
  const exists = (name: string) => mounts.filter((m) => existsSync(join(m, parent, name))).length;
  const sleeper = spawn('sleep', ['600'], { stdio: 'ignore' });
  try {
    made('w-dead/j_01DEAD00000000000000000000');
    made('w-dead/pool-123-4');
    made('w-dead2/j_01DEAD20000000000000000000'); // another, gone with one job's group left
    made('w-empty'); // no group in it: could be anyone's under a shared parent
    made('w-live/j_01LIVE00000000000000000000');
    made('w-busy/j_01BUSY00000000000000000000');
    made('w-foreign/some.service');
    made('w-self/j_01SELF00000000000000000000');
    made('w-late/j_01LATE00000000000000000000'); // came up between the two looks at the live set
    // A process left in w-busy's job group (in the first hierarchy: enough to keep it).
    writeFileSync(join(mounts[0]!, parent, 'w-busy/j_01BUSY00000000000000000000/cgroup.procs'), String(sleeper.pid));
    // Times ahead of Date.now() (a group made this millisecond reads so: the kernel's mtimes are finer
    // than Date.now()'s whole milliseconds; or the clock stepped back): no age was asked (0), so
    // neither is left as young. Before, one in ~15 runs left w-empty out of both lists.
    const ahead = (Date.now() + 1000) / 1000;
    for (const name of ['w-dead', 'w-empty']) mounts.forEach((m) => utimesSync(join(m, parent, name), ahead, ahead));
    let looks = 0;
    const live = async () => (++looks === 1 ? new Set(['w-live']) : new Set(['w-live', 'w-late']));
    const r = await removeGoneWorkerCgroups(parent, 'w-self', live, ROOT, 0);
    console.log(`removed: ${r.removed.sort().join(' ')}; left: ${r.left.sort().join(' ')}; live set read ${looks} times`);
    assert.deepEqual(r.removed.sort(), ['w-dead', 'w-dead2']);
    assert.deepEqual(r.left.sort(), ['w-busy', 'w-empty', 'w-foreign']);
    assert.equal(exists('w-dead'), 0, 'the gone worker\'s subtree is gone from every hierarchy');
    assert.equal(exists('w-dead2'), 0);
    assert.equal(exists('w-live'), mounts.length, 'a live worker\'s subtree is untouched');
    assert.equal(exists('w-live/j_01LIVE00000000000000000000'), mounts.length);
    assert.equal(exists('w-busy/j_01BUSY00000000000000000000'), mounts.length, 'a subtree with a process is left whole');
    assert.equal(exists('w-foreign/some.service'), mounts.length, 'groups that are not sbx\'s are left');
    assert.equal(exists('w-empty'), mounts.length, 'an empty group is not known to be sbx\'s: left');
    assert.equal(exists('w-self/j_01SELF00000000000000000000'), mounts.length, 'our own subtree is the native sweep\'s');
    assert.equal(exists('w-late'), mounts.length, 'a worker live by the second look keeps its subtree');
  } finally {
    sleeper.kill('SIGKILL');
    await new Promise((r) => sleeper.once('exit', r));
    for (let i = 0; i < 50 && existsSync(join(mounts[0]!, parent)); i++) {
      removeCgroupTree(parent);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
});

test('a subtree made in the last two minutes is left: its worker may be starting, not heartbeating yet', { skip }, async () => {
  const parent = `sbx-test-gone-young-${process.pid}`;
  mounts.forEach((m) => mkdirSync(join(m, parent, 'w-starting'), { recursive: true }));
  try {
    const r = await removeGoneWorkerCgroups(parent, 'w-self', async () => new Set());
    assert.deepEqual(r, { removed: [], left: [] });
    assert.equal(mounts.filter((m) => existsSync(join(m, parent, 'w-starting'))).length, mounts.length);
  } finally {
    removeCgroupTree(parent);
  }
});

test('nothing to do: no sibling subtree, no look at Redis', { skip }, async () => {
  const parent = `sbx-test-gone-none-${process.pid}`;
  mounts.forEach((m) => mkdirSync(join(m, parent, 'w-self'), { recursive: true }));
  try {
    let looks = 0;
    const r = await removeGoneWorkerCgroups(parent, 'w-self', async () => (looks++, new Set()));
    assert.deepEqual(r, { removed: [], left: [] });
    assert.equal(looks, 0);
  } finally {
    removeCgroupTree(parent);
  }
});

test('worker ids map to subtree names as the worker names its own', () => {
  assert.equal(workerCgroupName('host-a/1'), 'host-a_1');
  assert.equal(workerCgroupName('w.1_x-2'), 'w.1_x-2');
});

test('the live set: workers in the index whose heartbeat key is there, by subtree name', async () => {
  const keys = new RedisKeys('gone');
  const c = redis.client;
  for (const id of ['host-a/1', 'host-b/1']) await c.zadd(keys.workers(), Date.now(), id);
  await c.set(keys.worker('host-a/1'), '{}', 'PX', 60_000); // host-b/1's heartbeat expired
  assert.deepEqual([...(await liveWorkerCgroupNames(c, keys))], ['host-a_1']);
});
