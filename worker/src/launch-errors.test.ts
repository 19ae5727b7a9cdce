/** Every kind of launcher error maps to one SbxError class and the job error code the runner records. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import {
  CommandNotFoundError, HostExhaustedError, HostUnsupportedError, InvalidRequestError, LaunchFailedError, NotFoundError, type SbxError,
} from '../../core/src/errors.ts';
import { LaunchError, launch } from '../../native/index.ts';
import { baseSpec, buildBusyboxRootfs, makeTempDir, removeParent, testUidBase, uniqueParent } from '../../native/test/helpers.ts';
import { fromLaunchError, UnenterableWorkdirError } from './launch-errors.ts';

const cases: Array<{ kind: string; error: LaunchError; cls: new (...a: never[]) => SbxError; code: string; message: RegExp; retryable: boolean }> = [
  {
    kind: 'invalid_spec',
    error: new LaunchError('spec `cwd: must be absolute`: EINVAL', { code: 'invalid_spec', errno: 22, stage: 'spec' }),
    cls: InvalidRequestError, code: 'invalid_request', message: /^spec `cwd: must be absolute`: EINVAL$/, retryable: false,
  },
  {
    kind: 'invalid_spec at the working directory (chdir)',
    error: new LaunchError('cwd: chdir `/etc/passwd`: ENOTDIR', { code: 'invalid_spec', errno: 20, syscall: 'chdir', path: '/etc/passwd', stage: 'cwd' }),
    cls: UnenterableWorkdirError, code: 'invalid_request', message: /^workdir "\/etc\/passwd" cannot be the job's working directory: it, or a directory on its path, is not a directory \(chdir ENOTDIR\)$/, retryable: false,
  },
  {
    kind: 'invalid_spec at the working directory (mkdir)',
    error: new LaunchError('cwd: mkdir `/srv`: EACCES', { code: 'invalid_spec', errno: 13, syscall: 'mkdir', path: '/srv', stage: 'cwd' }),
    cls: UnenterableWorkdirError, code: 'invalid_request', message: /^workdir "\/srv" is not in the image and could not be made by the job's user: the job's user may not write there \(mkdir EACCES\)$/, retryable: false,
  },
  {
    kind: 'invalid_spec at an input file',
    error: new LaunchError('files: open `main.py`: ELOOP', { code: 'invalid_spec', errno: 40, syscall: 'open', path: 'main.py', stage: 'files' }),
    cls: InvalidRequestError, code: 'invalid_request', message: /^files: "main\.py" could not be written in the job: the image has a symbolic link there \(files are not written through one\) \(open ELOOP\)$/, retryable: false,
  },
  {
    kind: 'invalid_spec at an input file\'s directory',
    error: new LaunchError('files: mkdir `/srv`: EACCES', { code: 'invalid_spec', errno: 13, syscall: 'mkdir', path: '/srv', stage: 'files' }),
    cls: InvalidRequestError, code: 'invalid_request', message: /^files: the directory "\/srv" could not be written in the job: the job's user may not write there \(mkdir EACCES\)$/, retryable: false,
  },
  {
    kind: 'command_not_found',
    error: new LaunchError('exec: execve `no-such`: ENOENT', { code: 'command_not_found', errno: 2, syscall: 'execve', path: 'no-such', stage: 'exec' }),
    cls: CommandNotFoundError, code: 'command_not_found', message: /^command "no-such" could not be started: no such file in the image \(ENOENT\)$/, retryable: false,
  },
  {
    kind: 'host_unsupported',
    error: new LaunchError('cgroup-create: `/sys/fs/cgroup`: ENOSYS', { code: 'host_unsupported', errno: 38, stage: 'cgroup-create' }),
    cls: HostUnsupportedError, code: 'host_unsupported', message: /^this host cannot run jobs: cgroup-create/, retryable: false,
  },
  {
    kind: 'an errno name',
    error: new LaunchError('clone: clone3: ENOMEM', { code: 'ENOMEM', errno: 12, syscall: 'clone3', stage: 'clone' }),
    cls: LaunchFailedError, code: 'launch_failed', message: /^starting the job failed: clone: clone3: ENOMEM$/, retryable: true,
  },
  {
    kind: 'EMFILE (the worker\'s open files ran out)',
    error: new LaunchError('sync: socketpair: EMFILE', { code: 'EMFILE', errno: 24, syscall: 'socketpair', stage: 'sync' }),
    cls: HostExhaustedError, code: 'host_exhausted', message: /^the worker ran out of open files \(EMFILE: the worker process's RLIMIT_NOFILE\) starting this job; its command did not run: submit it again$/, retryable: true,
  },
  {
    kind: 'ENFILE (the host\'s open files ran out)',
    error: new LaunchError('fds: pipe2: ENFILE', { code: 'ENFILE', errno: 23, syscall: 'pipe2', stage: 'fds' }),
    cls: HostExhaustedError, code: 'host_exhausted', message: /open files \(ENFILE: the host's fs\.file-max\)/, retryable: true,
  },
  {
    kind: 'EAGAIN of a clone (a pids limit)',
    error: new LaunchError('clone: clone3: EAGAIN', { code: 'EAGAIN', errno: 11, syscall: 'clone3', stage: 'clone' }),
    cls: HostExhaustedError, code: 'host_exhausted', message: /processes \(EAGAIN: a pids limit/, retryable: true,
  },
  {
    kind: 'launch_failed',
    error: new LaunchError('the job ended before its command started', { code: 'launch_failed' }),
    cls: LaunchFailedError, code: 'launch_failed', message: /^starting the job failed: the job ended before its command started$/, retryable: true,
  },
];

for (const c of cases) {
  test(`launcher error ${c.kind} → ${c.cls.name} (${c.code})`, () => {
    const e = fromLaunchError(c.error);
    assert.ok(e instanceof c.cls, `${e.constructor.name}`);
    assert.equal(e.code, c.code);
    assert.match(e.message, c.message);
    assert.equal(e.retryable, c.retryable);
  });
}

test('an error that is not the launcher\'s: SbxErrors pass through, anything else is launch_failed with its cause', () => {
  const sbx = new NotFoundError('x');
  assert.equal(fromLaunchError(sbx), sbx);
  // The working directory the job was launched with is named, with the step of it that could not be made.
  const deep = fromLaunchError(new LaunchError('cwd: mkdir `/srv`: EACCES', { code: 'invalid_spec', errno: 13, syscall: 'mkdir', path: '/srv', stage: 'cwd' }), '/srv/app/data');
  assert.equal(deep.message, 'workdir "/srv/app/data" is not in the image and could not be made by the job\'s user, "/srv" on its path: the job\'s user may not write there (mkdir EACCES)');
  assert.deepEqual(deep.details, [{ path: 'workdir', message: deep.message.slice('workdir '.length) }]);
  const plain = new TypeError('boom');
  const e = fromLaunchError(plain);
  assert.ok(e instanceof LaunchFailedError);
  assert.equal(e.cause, plain);
});

test('a real invalid_spec from the launcher maps to invalid_request', async () => {
  const spec = {
    id: '../escape', slot: 0, lowerDirs: ['/nonexistent'], argv: ['true'], env: [], cwd: '/', uid: 0, gid: 0, hostname: 'x', stdin: null,
    limits: { memoryBytes: 64 << 20, pids: 16, cpus: 1, timeoutMs: 1000, diskBytes: 1 << 20 },
  };
  const err = await launch(spec, { cgroupParent: 'sbx-launch-errors-test' }).then(() => assert.fail('launched'), (e: unknown) => e);
  assert.ok(err instanceof LaunchError && err.code === 'invalid_spec', String(err));
  assert.equal(fromLaunchError(err).code, 'invalid_request');
});

test('arguments longer than execve takes (E2BIG, as the image\'s own env can make them) say so as invalid_request', async (t) => {
  const dir = makeTempDir('launch-errors');
  const parent = uniqueParent('launch-errors');
  t.after(() => {
    removeParent(parent);
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const rootfs = buildBusyboxRootfs(path.join(dir, 'rootfs'));
  const opts = { cgroupParent: parent, stateDir: path.join(dir, 'state'), uidBase: await testUidBase() };
  const ok = await launch(baseSpec([rootfs], { argv: ['true', 'a'.repeat(131_071)] }), opts);
  assert.equal((await ok.exited).exitCode, 0, 'EXEC_BOUNDS.stringBytes is what the kernel takes');
  const err = await launch(baseSpec([rootfs], { argv: ['true', 'a'.repeat(131_072)] }), opts).then(() => assert.fail('launched'), (e: unknown) => e);
  const e = fromLaunchError(err);
  assert.equal(e.code, 'invalid_request', String(err));
  assert.match(e.message, /longer than the kernel lets a program start with \(E2BIG/);
});
