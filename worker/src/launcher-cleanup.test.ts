/**
 * What the launcher reports at a job's exit reaches the worker: processes left in the job's cgroup
 * and a cgroup it could not remove are logged with the job id and counted, and a group left
 * behind is swept later — while another job runs, whose group every sweep must leave alone.
 * Real launcher, real cgroups: the removal fails because the test makes a child group inside the
 * job's group (rmdir of a group with children is EBUSY), and a process joins from outside.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { createRegistry, workerMetrics } from '../../core/src/metrics.ts';
import { launch, type LaunchOptions } from '../../native/index.ts';
import { baseSpec, buildBusyboxRootfs, cgroupDirs, controllerDir, makeTempDir, removeParent, sweepStaleTestParents, testUidBase, uniqueParent } from '../../native/test/helpers.ts';
import { LauncherCleanup } from './launcher-cleanup.ts';

const parent = uniqueParent('cleanup');
const opts: LaunchOptions = { cgroupParent: parent };
let tmp = '';
let rootfs = '';

function setup() {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({ write(chunk, _enc, cb) { lines.push(JSON.parse(String(chunk))); cb(); } });
  const logger = pino({ level: 'debug' }, sink);
  const registry = createRegistry('worker');
  const metrics = workerMetrics(registry);
  const cleanup = new LauncherCleanup({ launchOptions: opts, logger, metrics, retryMs: 100 });
  const value = async (name: string, labels: Record<string, string> = {}) =>
    (await registry.getSingleMetric(name)!.get()).values.find((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x))?.value ?? 0;
  return { lines, cleanup, value };
}

async function until(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('launcher exit data in the worker', () => {
  before(async () => {
    await sweepStaleTestParents();
    tmp = makeTempDir('cleanup');
    rootfs = buildBusyboxRootfs(path.join(tmp, 'rootfs'));
    opts.stateDir = path.join(tmp, 'state');
    opts.uidBase = await testUidBase();
  });
  after(() => {
    removeParent(parent);
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('a process left in the job\'s cgroup is logged with the job id and counted', async () => {
    const { lines, cleanup, value } = setup();
    const spec = baseSpec([rootfs], { argv: ['sleep', '30'] });
    const job = await launch(spec, opts);
    // A host process joins the job's pids group from outside its pid namespace: the kernel does not
    // kill it with the job's init, so the launcher finds it at exit.
    const outsider = spawn('sleep', ['60'], { stdio: 'ignore' });
    const outsiderGone = new Promise<string | null>((r) => outsider.on('exit', (_c, sig) => r(sig)));
    fs.writeFileSync(path.join(controllerDir('pids', parent, spec.id), 'cgroup.procs'), String(outsider.pid));
    job.kill();
    const exit = await job.exited;
    assert.equal(exit.leftoverProcesses, 1);
    assert.equal(exit.cleanupError, null);
    assert.equal(await outsiderGone, 'SIGKILL', 'the launcher killed it before removing the group');
    cleanup.report(spec.id, exit);
    assert.equal(await value('sbx_leftover_processes_total'), 1);
    const line = lines.find((l) => l.jobId === spec.id);
    assert.ok(line, JSON.stringify(lines));
    assert.equal(line.level, 40, 'warn');
    assert.equal(line.leftoverProcesses, 1);
    for (const d of cgroupDirs(parent, spec.id)) assert.equal(fs.existsSync(d), false, `${d} left`);
  });

  it('a cgroup the launcher could not remove is logged, counted and swept later; a running job\'s group is never swept', async () => {
    const { lines, cleanup, value } = setup();
    const running = await launch(baseSpec([rootfs], { argv: ['sleep', '60'] }), opts);
    const runningExit = running.exited;
    const spec = baseSpec([rootfs], { argv: ['sleep', '30'] });
    const job = await launch(spec, opts);
    const pidsDir = controllerDir('pids', parent, spec.id);
    const held = path.join(pidsDir, 'held');
    fs.mkdirSync(held);
    try {
      job.kill();
      const exit = await job.exited;
      assert.ok(exit.cleanupError, 'the removal failed');
      assert.equal(exit.cleanupError.code, 'EBUSY');
      assert.equal(exit.cleanupError.path, pidsDir);
      cleanup.report(spec.id, exit);
      assert.equal(await value('sbx_launcher_cleanup_failures_total', { kind: 'EBUSY' }), 1);
      const line = lines.find((l) => l.jobId === spec.id);
      assert.ok(line, JSON.stringify(lines));
      assert.equal(line.level, 40, 'warn');
      assert.equal(line.kind, 'EBUSY');
      assert.equal(fs.existsSync(pidsDir), true, 'left behind');

      // Sweeps run every 100 ms while the group is held; each one leaves the running job alone.
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(fs.existsSync(pidsDir), true, 'still held');
      assert.equal(await value('sbx_launcher_swept_cgroups_total'), 0);
      assert.equal(await Promise.race([runningExit.then(() => 'ended'), new Promise((r) => setTimeout(r, 10, 'running'))]), 'running', 'a sweep killed the running job');
    } finally {
      fs.rmdirSync(held);
    }
    // The cause is gone: the next scheduled sweep removes the group, and only that one.
    await until('the sweep to remove the left group', () => !fs.existsSync(pidsDir));
    for (const d of cgroupDirs(parent, spec.id)) assert.equal(fs.existsSync(d), false, `${d} left`);
    await until('the swept metric', () => lines.some((l) => l.msg === 'swept leftover job cgroups'));
    assert.equal(await value('sbx_launcher_swept_cgroups_total'), 1);
    assert.equal(await Promise.race([runningExit.then(() => 'ended'), new Promise((r) => setTimeout(r, 10, 'running'))]), 'running', 'a sweep killed the running job');
    running.kill();
    const ended = await runningExit;
    assert.equal(ended.reason, 'killed');
    assert.equal(ended.cleanupError, null);
    cleanup.stop();
  });
});
