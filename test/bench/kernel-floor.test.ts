/**
 * The kernel-floor bench (native/bench/kernel-floor.ts, .c), which `npm run bench:throughput` runs
 * beside the launchers: it launches for real (namespaces, cgroups, mounts, exec), prints
 * launch-throughput.ts's JSON line, refuses what it does not know, and leaves no cgroup or temp dir.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { nodeArgsFor } from '../harness/node-args.ts';

const root = path.resolve(import.meta.dirname, '../..');
let tmp = '';
before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sbx-floor-test-'));
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

interface Run { code: number | null; stdout: string; stderr: string; pid: number }

function floor(args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...nodeArgsFor(path.join(root, 'native/bench/kernel-floor.ts')), ...args], { cwd: root, env: { ...process.env, TMPDIR: tmp } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr, pid: child.pid! }));
  });
}

/** What the bench made in TMPDIR and did not remove (tsx keeps its own cache there). */
const floorDirs = () => fs.readdirSync(tmp).filter((name) => name.startsWith('sbx-kernel-floor-'));

/** The bench's groups (its parent is named after its pid), in every hierarchy or the unified one. */
function groupsLeft(pid: number): string[] {
  return ['memory', 'pids', 'cpu', 'cpuacct', 'freezer', 'devices', '']
    .map((c) => path.join('/sys/fs/cgroup', c, `sbx-kernel-floor-${pid}`))
    .filter((dir) => fs.existsSync(dir));
}

test('the kernel floor launches /bin/nop 30 times at concurrency 2 and reports launches/s and CPU, leaving nothing behind', async () => {
  const r = await floor(['--launches', '30', '--warm-up', '2', '--concurrency', '2', '--command', 'nop']);
  assert.equal(r.code, 0, r.stderr);
  const result = JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
  assert.equal(result.command, '/bin/nop');
  assert.equal(result.without, '', 'every part of the floor');
  assert.equal(result.launches, 30);
  assert.equal(result.concurrency, 2);
  assert.equal(result.cgroup, fs.existsSync('/sys/fs/cgroup/memory/memory.limit_in_bytes') ? 'v1' : 'v2', 'the groups of the host\'s cgroup version');
  assert.ok(Number(result.launches_per_s) > 0, r.stdout);
  assert.ok(Number(result.machine_cpu_ms_per_launch) > 0, r.stdout);
  assert.deepEqual(groupsLeft(r.pid), []);
  assert.deepEqual(floorDirs(), [], 'its rootfs, state dir and binary are removed');
});

test('the kernel floor refuses what it does not know before it launches anything', async () => {
  const badWithout = await floor(['--launches', '5', '--warm-up', '1', '--without', 'net,disks']);
  assert.notEqual(badWithout.code, 0);
  assert.match(badWithout.stderr, /--without takes net, cgroups and mounts, not "disks"/);
  assert.deepEqual(groupsLeft(badWithout.pid), []);
  const badCount = await floor(['--launches', '0']);
  assert.notEqual(badCount.code, 0);
  assert.match(badCount.stderr, /--launches must be a positive integer/);
  const badCommand = await floor(['--command', 'sh']);
  assert.notEqual(badCommand.code, 0);
  assert.match(badCommand.stderr, /--command must be true or nop, not "sh"/);
  assert.deepEqual(floorDirs(), []);
});

/** The string literals of the C array `name` in `file`. */
function cStrings(file: string, name: string): string[] {
  const source = fs.readFileSync(path.join(root, file), 'utf8');
  const body = new RegExp(`${name}\\[[^\\]]*\\]\\s*=\\s*\\{([^}]*)\\}`).exec(source)?.[1];
  assert.ok(body, `${name} in ${file}`);
  return [...body.matchAll(/"([^"]*)"/g)].map((m) => m[1]!);
}

test('the floor masks the paths and allows the devices the launcher does (its copies of the lists have not drifted)', () => {
  for (const list of ['kMaskedPaths', 'kReadOnlyPaths']) {
    assert.deepEqual(cStrings('native/bench/kernel-floor.c', list), cStrings('native/src/mnt.cc', list), list);
  }
  const launcher = fs.readFileSync(path.join(root, 'native/src/cgroup.cc'), 'utf8');
  const allowed = /kAllowedDevices\[\d+\]\s*=\s*\{(.*)\};/.exec(launcher)?.[1] ?? '';
  const rules = [...allowed.matchAll(/\{(\d+), (-?\d+)\}/g)].map((m) => `c ${m[1]}:${m[2] === '-1' ? '*' : m[2]} rwm`);
  assert.equal(rules.length, 8);
  assert.deepEqual(cStrings('native/bench/kernel-floor.c', 'kDeviceRules'), rules);
});
