/**
 * v2ParentProblems(): the worker's start check of SBX_CGROUP_PARENT on cgroup v2, on a made-up
 * cgroup tree (the files the kernel shows). Before it, a worker whose SBX_CGROUP_PARENT held a
 * process (its own: the group of its systemd unit) started, registered and ended every job
 * `error`/launch_failed (writing cgroup.subtree_control: EBUSY). test/e2e/cgroup-v2-worker.test.ts
 * checks the worker itself on a real cgroup v2 kernel.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { v2ParentProblems } from './cgroup-parent.ts';

const scratch = mkdtempSync(join(tmpdir(), 'sbx-cgroup-parent-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** A cgroup v2 root (cgroup.controllers at its top) with `groups` (path -> cgroup.procs). */
function v2Tree(name: string, groups: Record<string, string>): string {
  const root = join(scratch, name);
  mkdirSync(root);
  writeFileSync(join(root, 'cgroup.controllers'), 'cpu memory pids\n');
  writeFileSync(join(root, 'cgroup.procs'), '1\n2\n'); // the root may hold processes
  for (const [path, procs] of Object.entries(groups)) {
    mkdirSync(join(root, path), { recursive: true });
    writeFileSync(join(root, path, 'cgroup.procs'), procs);
  }
  return root;
}

test('a parent without processes, or not made yet, is fine (the root holding processes too)', () => {
  const root = v2Tree('empty', { sbx: '', 'sbx/w_1': '', 'sbx/w_1/j_1': '42\n' });
  assert.deepEqual(v2ParentProblems('sbx/w_1', root), []);
  assert.deepEqual(v2ParentProblems('not/made/yet', root), []);
});

test('a group on the path that holds processes is named, with them, the worker itself said', () => {
  const root = v2Tree('busy', { 'system.slice/sbx.service': `${process.pid}\n77\n`, 'system.slice/sbx.service/w_1': '' });
  const problems = v2ParentProblems('system.slice/sbx.service/w_1', root);
  assert.equal(problems.length, 1, problems.join('\n'));
  assert.match(problems[0]!, new RegExp(`^the cgroup system\\.slice/sbx\\.service holds processes \\(pid ${process.pid} 77, this worker among them\\)`));
  assert.match(problems[0]!, /Set SBX_CGROUP_PARENT to a group that holds none/);
});

test('v1 (a directory of hierarchies) has no such rule: nothing to say', () => {
  const root = join(scratch, 'v1');
  mkdirSync(join(root, 'memory', 'sbx'), { recursive: true });
  writeFileSync(join(root, 'memory', 'sbx', 'cgroup.procs'), '42\n');
  assert.deepEqual(v2ParentProblems('sbx', root), []);
});

test('a private cgroup namespace (the top shows cgroup.type: not the host\'s root group) holding processes is named too', () => {
  const root = v2Tree('container', { sbx: '' });
  writeFileSync(join(root, 'cgroup.type'), 'domain\n');
  const problems = v2ParentProblems('sbx/w_1', root);
  assert.equal(problems.length, 1, problems.join('\n'));
  assert.match(problems[0]!, /^the top of .*, not the host's root group \(a private cgroup namespace: a container's group\), holds processes \(pid 1 2\)/);
  assert.match(problems[0]!, /cgroup: host/);
});
