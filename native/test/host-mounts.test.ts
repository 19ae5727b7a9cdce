// A job's start must not grow with the host's mount table. unshare(CLONE_NEWNS) copies every mount
// of the caller's namespace (and pivot_root detaches every copy again): on a host with hundreds of
// mounts (container overlays, pod volumes) that was most of a setup's mount work. A setup child
// copies a two-mount base namespace instead (native/src/mnt_base.cc), pooled or not. Measured here
// by how many mounts the machine makes (the kernel's unique mount ids, Linux >= 6.8), not by time.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { nodeArgsFor } from '../../test/harness/node-args.ts';
import { closePool, sweep } from '../index.ts';
import { baseSpec, buildBusyboxRootfs, makeTempDir, poolReaches, removeParent, run, sweepStaleTestParents, testUidBase, uniqueParent } from './helpers.ts';

const fixtures = path.join(import.meta.dirname, 'fixtures');
const unique = execFileSync('python3', [path.join(fixtures, 'mount-ids.py')], { encoding: 'utf8' }).trim();
const skip = unique === 'unsupported' ? 'this kernel has no unique mount ids (STATX_MNT_ID_UNIQUE, Linux >= 6.8)' : false;

const withHostMounts = path.join(import.meta.dirname, '..', 'bench', 'with-host-mounts.py');

interface Result { windows: number[]; pooled: boolean[]; direct: unknown[]; hostMounts: number }

// One cgroup parent, rootfs and scratch for the whole file (each launch below gets its own state dir).
const parent = uniqueParent('hostmounts');
let tmp = '';
let rootfs = '';
let stack = '';
before(async () => {
  await sweepStaleTestParents();
  tmp = makeTempDir('hostmounts');
  rootfs = buildBusyboxRootfs(path.join(tmp, 'rootfs'));
  stack = path.join(tmp, 'stack');
  fs.mkdirSync(stack);
});
after(async () => {
  closePool();
  await sweep({ cgroupParent: parent });
  removeParent(parent);
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('a job\'s start and the host\'s mount table', { skip }, () => {
  // The launcher in a private mount namespace (unshare -m: the host sees none of it) with `extra`
  // more mounts than this one.
  const launchWith = async (extra: number, mode: 'pooled' | 'direct' | 'control'): Promise<Result> => {
    const { stdout } = await promisify(execFile)('unshare', ['--mount', '--propagation', 'private', '--',
      'python3', withHostMounts, stack, String(extra),
      process.execPath, ...nodeArgsFor(path.join(fixtures, 'host-mounts-launcher.ts')), rootfs, parent, path.join(tmp, `state-${mode}-${extra}`), mode]);
    const r = JSON.parse(stdout.trim()) as Result;
    assert.ok(r.hostMounts > extra, `the launcher saw ${r.hostMounts} mounts, expected more than ${extra}`);
    return r;
  };

  // Each window is one job (and, pooled, the next setup made): the fewest mounts the machine made
  // in any of three. Had a setup copied the launcher's table, every window would hold 1000 more.
  const fewest = (r: Result) => Math.min(...r.windows);

  it('pooled setups copy none of the host\'s mounts: with 1000 more, a job and its next setup make a few dozen', async () => {
    const r = await launchWith(1000, 'pooled');
    // A window whose job found no live setup went direct (the launcher's fallback) and was run again.
    assert.deepEqual(r.pooled, [true, true, true], `three jobs ran in a pooled setup; went direct: ${JSON.stringify(r.direct)}`);
    assert.ok(fewest(r) < 500, `mounts made per window: ${r.windows.join(', ')}`);
  });

  it('nor do launches without a pooled setup (the direct path)', async () => {
    const r = await launchWith(1000, 'direct');
    assert.deepEqual(r.pooled, [false, false, false]);
    assert.ok(fewest(r) < 500, `mounts made per window: ${r.windows.join(', ')}`);
  });

  it('the count sees copies: an `unshare -m` of that namespace makes 1000 mounts or more', async () => {
    const r = await launchWith(1000, 'control');
    assert.ok(fewest(r) >= 1000, `mounts made per window: ${r.windows.join(', ')}`);
  });
});

describe('the base mount namespace and the state dir\'s path', () => {
  it('a state dir named through a symlink and ".." works, pooled and direct', async () => {
    // `link/..` is `real` on the host (the kernel follows the link first), and the base namespace
    // (no symlinks in it) must still resolve the same literal path to the same directory.
    fs.mkdirSync(path.join(tmp, 'real', 'sub'), { recursive: true });
    fs.symlinkSync(path.join(tmp, 'real', 'sub'), path.join(tmp, 'link'));
    const opts = { cgroupParent: parent, stateDir: `${tmp}/link/../odd-state`, uidBase: await testUidBase() };
    const spec = () => baseSpec([rootfs], { slot: 9, argv: ['sh', '-c', 'echo ok; ls /'] });
    const direct = await run(spec(), { ...opts, pool: false });
    assert.equal(direct.exit.exitCode, 0, direct.stderr);
    assert.match(direct.stdout, /^ok\n/);
    assert.ok(fs.existsSync(path.join(tmp, 'real', 'odd-state', 'initlayer')), 'the state dir is where the host resolves it');
    await run(spec(), opts);
    assert.equal(await poolReaches(2), 2);
    const pooled = await run(spec(), opts);
    assert.equal(pooled.exit.exitCode, 0, pooled.stderr);
    assert.equal(pooled.stdout, direct.stdout, 'the same root from a pooled setup');
  });
});
