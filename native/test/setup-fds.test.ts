// A setup child (the clone of the launcher that becomes a job's pid 1) closes every fd of the
// launcher's it does not use as its first step (child.cc closeUnused), not only at its exec of
// sbx-init: otherwise its copy of another job's mount namespace can be the last one, and that job's
// whole mount teardown runs in this setup, charged to this job's cgroups, before it is ready.
//
// Observed by freezing the test's parent group (v1 freezer): a setup child that joins its group under
// it stops there, before its exec, and its fd table is read from /proc. On cgroup v2 a setup child is
// cloned into its group (CLONE_INTO_CGROUP) and would freeze before its first instruction, so this
// runs on v1 hosts only.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { launch, type Launched, type LaunchOptions } from '../index.ts';
import { baseSpec, cgroupMode, controllerDir, pooledGroups, run, uniqueParent, useBusyboxFixture } from './helpers.ts';

const parent = uniqueParent('setupfds');
const opts: LaunchOptions = { cgroupParent: parent };
const onV2 = cgroupMode() === 'v2';

const freezerState = (dir: string, state: 'FROZEN' | 'THAWED') => fs.writeFileSync(path.join(dir, 'freezer.state'), state);

/** The first pid listed in `dir`'s tasks, waited for (bounded). */
async function firstTask(dir: string): Promise<number> {
  for (let i = 0; i < 500; i++) {
    try {
      const pid = Number(fs.readFileSync(path.join(dir, 'tasks'), 'utf8').split('\n')[0]);
      if (pid > 0) return pid;
    } catch { /* not made yet */ }
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`no task joined ${dir}`);
}

/** What each fd of `pid` refers to (readlink of /proc/<pid>/fd/*). */
function fdTargets(pid: number): string[] {
  return fs.readdirSync(`/proc/${pid}/fd`).map((fd) => {
    try { return fs.readlinkSync(`/proc/${pid}/fd/${fd}`); } catch { return '(closed)'; }
  });
}

/** The frozen setup child in `group` (a dir of the freezer hierarchy): still before its exec, and its fds. */
async function frozenSetup(group: string): Promise<{ comm: string; fds: string[] }> {
  const pid = await firstTask(group);
  for (let i = 0; i < 500 && fs.readFileSync(path.join(group, 'freezer.state'), 'utf8').trim() !== 'FROZEN'; i++) await new Promise((r) => setTimeout(r, 10));
  return { comm: fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim(), fds: fdTargets(pid) };
}

describe('setup children and the launcher\'s fds', { skip: onV2 ? 'cgroup v2: a setup child is cloned into its group, so freezing it stops it before it runs (observed on v1 hosts)' : false }, () => {
  const fixture = useBusyboxFixture('setupfds', parent, opts);

  it('a direct and a pooled setup, stopped before their exec, hold none of the launcher\'s other fds', async () => {
    await run(baseSpec([fixture.rootfs], { slot: 5 }), { ...opts, pool: false }); // makes the parent groups
    const freezer = controllerDir('freezer', parent);
    const canaryPath = path.join(fixture.tmp, `canary-${process.pid}`);
    const canary = fs.openSync(canaryPath, 'w'); // an fd of the launcher's process, as another job's namespace is
    const thawAll = () => freezerState(freezer, 'THAWED');
    try {
      // Direct: the child joins the job's group after its mount program, and freezes there.
      const direct = baseSpec([fixture.rootfs], { slot: 5 });
      freezerState(freezer, 'FROZEN');
      const launched = launch(direct, { ...opts, pool: false });
      const d = await frozenSetup(path.join(freezer, direct.id));
      thawAll();
      const dj = await launched;
      await dj.exited;

      // Pooled: the slot's next setups are asked for once a job's outcome is known, after its
      // `ended` has been settled; freezing there stops them as they join their pool groups.
      const first: Launched = await launch(baseSpec([fixture.rootfs], { slot: 5 }), opts);
      first.stdout.resume();
      first.stderr.resume();
      void first.ended.then(() => freezerState(freezer, 'FROZEN'));
      let pool: string[] = [];
      for (let i = 0; i < 500 && (pool = pooledGroups(parent)).length === 0; i++) await new Promise((r) => setTimeout(r, 10));
      assert.ok(pool.length > 0, 'the maker made a setup for the slot');
      const p = await frozenSetup(path.join(freezer, pool[0]!));
      thawAll();
      await first.exited;

      for (const [what, s] of [['direct', d], ['pooled', p]] as const) {
        assert.doesNotMatch(s.comm, /sbx-init/, `${what}: caught before its exec of sbx-init (comm ${s.comm})`);
        assert.ok(!s.fds.includes(canaryPath), `${what}: the launcher's own file is not among the setup's fds: ${JSON.stringify(s.fds)}`);
        assert.ok(s.fds.some((t) => t.startsWith('socket:')), `${what}: its own sync socket is: ${JSON.stringify(s.fds)}`);
      }
      assert.ok(fdTargets(process.pid).includes(canaryPath), 'the launcher still has it');
    } finally {
      thawAll();
      fs.closeSync(canary);
    }
  });
});
