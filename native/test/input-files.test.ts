// P55: a job's input files (LaunchSpec.files) are written inside the job by its own sbx-init, as the
// job's user under its seccomp filter, before the command starts: exact bytes and modes, directly
// launched and from a pooled setup; and whatever path or image symlink a tenant picks, nothing is
// written outside the job.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { closePool, type LaunchError, type LaunchFile, type LaunchOptions, type LaunchSpec } from '../index.ts';
import {
  assertCgroupsGone, baseSpec, buildBusyboxRootfs, describeProcesses, directThenPooled, makeTempDir, mountsUnder, processesIn, removeParent, run,
  sweepStaleTestParents, testUidBase, uniqueParent,
} from './helpers.ts';

const parent = uniqueParent('files');
const opts: LaunchOptions = { cgroupParent: parent, trace: true };
const direct: LaunchOptions = { ...opts, pool: false };
let tmp = '';
let rootfs = '';
/** A second layer: symlinks a tenant's image could hold, pointing at host-looking paths. */
let links = '';
/** A host directory the symlinks name: nothing may ever appear in it. */
let hostCanary = '';
let mountsBefore: string[] = [];

const file = (p: string, data: string | Buffer, mode = 0o644): LaunchFile => ({ path: p, mode, data: typeof data === 'string' ? Buffer.from(data) : data });

function assertNoLeftovers(id: string): void {
  assertCgroupsGone(parent, id);
  const left = processesIn(parent);
  assert.deepEqual(left, [], `processes left: ${describeProcesses(left, parent)}`);
  assert.deepEqual(mountsUnder([tmp]), mountsBefore, 'mounts left under the launcher\'s state dir or layers');
}

describe('input files (P55)', () => {
  before(async () => {
    await sweepStaleTestParents();
    tmp = makeTempDir('files');
    rootfs = buildBusyboxRootfs(path.join(tmp, 'rootfs'));
    hostCanary = path.join(tmp, 'host-canary');
    fs.mkdirSync(hostCanary);
    links = path.join(tmp, 'links');
    fs.mkdirSync(path.join(links, 'work'), { recursive: true });
    fs.chownSync(path.join(links, 'work'), 1000, 1000); // a workdir the unprivileged job user owns (id-mapped)
    fs.symlinkSync(hostCanary, path.join(links, 'escape')); // a directory symlink to a host path
    fs.symlinkSync(path.join(hostCanary, 'planted'), path.join(links, 'work', 'main.py')); // a file symlink
    opts.stateDir = direct.stateDir = path.join(tmp, 'state');
    opts.uidBase = direct.uidBase = await testUidBase();
    mountsBefore = mountsUnder([tmp]);
  });
  after(() => {
    closePool();
    removeParent(parent);
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('writes each file before the command starts: exact bytes, mode, the job user as owner, parents made', async () => {
    const binary = Buffer.from([0, 1, 2, 255, 10, 0, 13]);
    const make = () => baseSpec([rootfs, links], {
      slot: 5, uid: 1000, gid: 1000, cwd: '/work',
      argv: ['sh', '-c', 'cd /work && ./run.sh && stat -c "%a %u:%g %n" run.sh data.bin deep/er/notes.txt deep /tmp/abs.txt && od -An -tx1 data.bin && cat deep/er/notes.txt /tmp/abs.txt'],
      files: [
        file('run.sh', '#!/bin/sh\necho script ran as $(id -u)\n', 0o755),
        file('data.bin', binary, 0o600),
        file('deep/er/notes.txt', 'first\n'),
        file('deep/er/notes.txt', 'second wins\n'),
        file('/tmp/abs.txt', 'absolute\n', 0o640),
      ],
    });
    for (const r of await directThenPooled(make, opts)) {
      assert.equal(r.stderr, '');
      assert.equal(r.exit.exitCode, 0);
      assert.equal(r.stdout, [
        'script ran as 1000',
        '755 1000:1000 run.sh', '600 1000:1000 data.bin', '644 1000:1000 deep/er/notes.txt', '755 1000:1000 deep', '640 1000:1000 /tmp/abs.txt',
        ' 00 01 02 ff 0a 00 0d',
        'second wins', 'absolute', '',
      ].join('\n'));
    }
    assert.equal(fs.existsSync(path.join(links, 'work', 'run.sh')), false, 'the image layer is untouched (the writes went to the job\'s upper layer)');
  });

  it('a file symlink of the image at the path is refused, not followed (ELOOP): nothing reaches its target', async () => {
    const make = () => baseSpec([rootfs, links], { slot: 5, cwd: '/work', files: [file('main.py', 'print(1)\n')] });
    for (const o of [direct, opts]) {
      const spec = make();
      await assert.rejects(run(spec, o), (e: LaunchError) => {
        assert.deepEqual([e.code, e.stage, e.syscall, e.path], ['invalid_spec', 'files', 'open', 'main.py'], e.message);
        assert.match(e.message, /ELOOP/);
        return true;
      });
      assertNoLeftovers(spec.id);
    }
    assert.deepEqual(fs.readdirSync(hostCanary), []);
  });

  it('paths resolve inside the job: a directory symlink, .. and absolute host paths reach only the job\'s own root', async () => {
    const make = () => baseSpec([rootfs, links], {
      slot: 5, cwd: '/work',
      argv: ['sh', '-c', `cat ${hostCanary}/via-link ../../../../../${hostCanary.slice(1)}/dotdot; ls /escape/`],
      files: [
        file(`${hostCanary}/via-link`, 'a\n'), // the host path, which inside the job is a fresh directory
        file(`../../../../../${hostCanary.slice(1)}/dotdot`, 'b\n'),
      ],
    });
    for (const r of await directThenPooled(make, opts)) {
      assert.equal(r.stderr, '');
      assert.equal(r.stdout, 'a\nb\ndotdot\nvia-link\n', '/escape (the image\'s symlink to that path) shows the job\'s own files');
    }
    assert.deepEqual(fs.readdirSync(hostCanary), [], 'nothing on the host');
  });

  it('what the job user may not write fails the launch with the file named: permission, read-only /proc, the disk limit', async () => {
    const cases: Array<{ spec: Partial<LaunchSpec>; syscall: string; path: string; errno: RegExp }> = [
      { spec: { uid: 1000, gid: 1000, files: [file('/etc/passwd', 'x::0:0::/:/bin/sh\n')] }, syscall: 'open', path: '/etc/passwd', errno: /EACCES/ },
      { spec: { uid: 1000, gid: 1000, files: [file('/srv/new/x', 'x')] }, syscall: 'mkdir', path: '/srv', errno: /EACCES/ },
      { spec: { files: [file('/proc/sys/kernel/core_pattern', '|/tmp/x')] }, syscall: 'open', path: '/proc/sys/kernel/core_pattern', errno: /EROFS|EACCES/ },
      { spec: { files: [file('/big', Buffer.alloc(2 << 20))], limits: { ...baseSpec([]).limits, diskBytes: 1 << 20 } }, syscall: 'write', path: '/big', errno: /EFBIG|ENOSPC|EDQUOT/ },
    ];
    const corePattern = fs.readFileSync('/proc/sys/kernel/core_pattern', 'utf8');
    for (const o of [direct, opts]) {
      for (const c of cases) {
        const spec = baseSpec([rootfs, links], { slot: 5, ...c.spec });
        await assert.rejects(run(spec, o), (e: LaunchError) => {
          assert.deepEqual([e.code, e.stage, e.syscall, e.path], ['invalid_spec', 'files', c.syscall, c.path], e.message);
          assert.match(e.message, c.errno);
          return true;
        });
        assertNoLeftovers(spec.id);
      }
    }
    assert.equal(fs.readFileSync('/proc/sys/kernel/core_pattern', 'utf8'), corePattern);
  });

  it('refuses malformed files at the edge', async () => {
    const bad: Array<[unknown, RegExp]> = [
      ['nope', /files: must be an array/],
      [[{ path: 'a/', mode: 0o644, data: Buffer.from('x') }], /must name a file/],
      [[{ path: '', mode: 0o644, data: Buffer.from('x') }], /path: must not be empty/],
      [[{ path: 'a\0b', mode: 0o644, data: Buffer.from('x') }], /path: must not contain NUL/],
      [[{ path: 'a', mode: 0o4755, data: Buffer.from('x') }], /mode: out of range/],
      [[{ path: 'a', mode: 0o644, data: 'text' }], /data must be a Uint8Array/],
    ];
    for (const [files, message] of bad) {
      await assert.rejects(run(baseSpec([rootfs], { files: files as LaunchFile[] }), direct), (e: LaunchError) => {
        assert.equal(e.code, 'invalid_spec');
        assert.match(e.message, message);
        return true;
      });
    }
  });
});
