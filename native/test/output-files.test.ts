// P56: a job's output files (LaunchSpec.outputFiles) are collected inside the job by its own
// sbx-init once the command has ended (or a limit ended it: the rest of the job is killed first,
// within a grace), as the job's user under its seccomp filter: what matched,
// byte for byte, within the budget; and whatever the job leaves at those paths (a symlink to a host
// file, a FIFO, a device, a root-only file, thousands of files) nothing of the host is read, nothing
// hangs, and the budget holds.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { closePool, type Launched, type LaunchOptions, type LaunchSpec, type OutputFile } from '../index.ts';
import {
  baseSpec, buildBusyboxRootfs, describeProcesses, directThenPooled, makeTempDir, processesIn, removeParent, run, sweepStaleTestParents, testUidBase, uniqueParent, waitFor,
} from './helpers.ts';

const parent = uniqueParent('outfiles');
const opts: LaunchOptions = { cgroupParent: parent, trace: true };
const direct: LaunchOptions = { ...opts, pool: false };
let tmp = '';
let rootfs = '';
let layer = '';
const HOST_SECRET = 'host secret, never to be read by a job';

const summary = (files: OutputFile[] | undefined) =>
  (files ?? []).map((f) => `${f.path} ${f.size} ${f.truncated ? 'truncated ' : ''}${f.skipped ? `(${f.skipped})` : JSON.stringify(f.data.toString('latin1'))}`);

describe('output files (P56)', () => {
  before(async () => {
    await sweepStaleTestParents();
    tmp = makeTempDir('outfiles');
    rootfs = buildBusyboxRootfs(path.join(tmp, 'rootfs'));
    const secret = path.join(tmp, 'host-secret');
    fs.writeFileSync(secret, HOST_SECRET);
    layer = path.join(tmp, 'layer');
    fs.mkdirSync(path.join(layer, 'work'), { recursive: true });
    fs.chownSync(path.join(layer, 'work'), 1000, 1000);
    fs.symlinkSync(secret, path.join(layer, 'work', 'leak')); // an image's symlink to a host file
    fs.writeFileSync(path.join(layer, 'root-only'), 'root only\n', { mode: 0o600 });
    opts.stateDir = direct.stateDir = path.join(tmp, 'state');
    opts.uidBase = direct.uidBase = await testUidBase();
  });
  after(() => {
    closePool();
    removeParent(parent);
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('collects what the patterns match once the command has ended: bytes, sizes, relative and absolute, a pattern with no match said so', async () => {
    const make = () => baseSpec([rootfs, layer], {
      slot: 6, uid: 1000, gid: 1000, cwd: '/work',
      argv: ['sh', '-c', 'mkdir -p out/sub && printf "A\\0\\377" > out/a.bin && echo bee > out/b.txt && echo abs > /tmp/abs.txt'],
      outputFiles: { patterns: ['out/*', '/tmp/abs.txt', 'missing/*.log'], maxBytes: 1 << 20 },
    });
    for (const { exit } of await directThenPooled(make, opts)) {
      const files = exit.outputFiles;
      assert.deepEqual(summary(files), [
        'out/a.bin 3 "A\\u0000ÿ"',
        'out/b.txt 4 "bee\\n"',
        '/tmp/abs.txt 4 "abs\\n"',
        'missing/*.log 0 (no match)',
      ], 'the directory out/sub is left out');
    }
  });

  it('the budget holds: a file past it is kept in part, those after it not at all', async () => {
    const spec = baseSpec([rootfs], {
      argv: ['sh', '-c', 'head -c 100 /dev/zero | tr "\\0" a > /tmp/big; echo small > /tmp/small'],
      outputFiles: { patterns: ['/tmp/big', '/tmp/small'], maxBytes: 10 },
    });
    const r = await run(spec, direct);
    assert.deepEqual(summary(r.exit.outputFiles), ['/tmp/big 100 truncated "aaaaaaaaaa"', '/tmp/small 6 truncated ""']);
  });

  it('a file two patterns match is collected once and spends the budget once', async () => {
    const spec = baseSpec([rootfs], {
      argv: ['sh', '-c', 'echo 12345 > /tmp/a.txt; echo 12 > /tmp/b.bin'],
      outputFiles: { patterns: ['/tmp/a.txt', '/tmp/*.txt', '/tmp/b.bin'], maxBytes: 9 },
    });
    const r = await run(spec, direct);
    // Before: a.txt twice (the second cut), and b.bin left out of a budget the duplicate had spent.
    assert.deepEqual(summary(r.exit.outputFiles), ['/tmp/a.txt 6 "12345\\n"', '/tmp/b.bin 3 "12\\n"']);
  });

  it('what the job leaves at the paths cannot make it read the host or hang: a symlink, a FIFO, a device, a root-only file, 1,500 matches', async () => {
    const spec = baseSpec([rootfs, layer], {
      uid: 1000, gid: 1000, cwd: '/work',
      argv: ['sh', '-c', 'mkfifo fifo && ln -s /dev/zero zero && mkdir many && cd many && i=0; while [ $i -lt 1500 ]; do : > f$i; i=$((i+1)); done'],
      outputFiles: { patterns: ['leak', 'fifo', 'zero', '/dev/null', '/root-only', 'many/*'], maxBytes: 1 << 20 },
    });
    const started = Date.now();
    const r = await run(spec, direct);
    assert.ok(Date.now() - started < 10_000, 'the FIFO did not block the collection');
    const files = r.exit.outputFiles!;
    assert.deepEqual(summary(files.slice(0, 5)), [
      'leak 0 (not a regular file)',
      'fifo 0 (not a regular file)',
      'zero 0 (not a regular file)',
      '/dev/null 0 (not a regular file)',
      '/root-only 0 (EACCES)',
    ]);
    assert.equal(files.length, 1000 + 1, 'at most 1,000 files, then one record saying the rest was left out');
    assert.deepEqual(summary(files.slice(-1)), ['many/* 0 (too many files)']);
    assert.ok(!files.some((f) => f.data.toString().includes(HOST_SECRET)));
  });

  it('a job that reaches its timeout still has its files: the rest of it (a loop forking writers) is killed first, then they are read; nothing is left', async () => {
    const make = () => baseSpec([rootfs], {
      argv: ['sh', '-c', 'echo partial > /tmp/result; (while :; do (echo more >> /tmp/log) & sleep 0.01; done) & sleep 30'],
      limits: { ...baseSpec([]).limits, timeoutMs: 1500 },
      outputFiles: { patterns: ['/tmp/result', '/tmp/log'], maxBytes: 1 << 20 },
    });
    for (const { exit } of await directThenPooled(make, opts)) {
      assert.equal(exit.reason, 'timeout');
      assert.equal(exit.signal, 'SIGKILL', 'the command was killed');
      const [result, log] = exit.outputFiles ?? [];
      assert.deepEqual(summary(result ? [result] : []), ['/tmp/result 8 "partial\\n"']);
      assert.match(log?.data.toString() ?? '', /^(more\n)+$/, 'the writers\' file, whole lines only');
      assert.ok(exit.usage.wallMs < 1500 + 2000, `ended within the grace: ${exit.usage.wallMs} ms`);
      assert.equal(exit.leftoverProcesses, 0);
    }
    const left = processesIn(parent);
    assert.deepEqual(left, [], `processes left: ${describeProcesses(left, parent)}`);
  });

  it('the collection after a stop is bounded: within the grace 1,000 files and a marker; past it the job is killed with none; kill() collects nothing', async () => {
    const spec = (over: Partial<LaunchSpec> = {}) => baseSpec([rootfs], {
      argv: ['sh', '-c', 'mkdir /tmp/many; i=0; while [ $i -lt 2000 ]; do echo $i > /tmp/many/$i; i=$((i+1)); done; echo ready; sleep 60'],
      limits: { ...baseSpec([]).limits, timeoutMs: 120_000 },
      outputFiles: { patterns: ['/tmp/many/*'], maxBytes: 1 << 20 },
      ...over,
    });
    const stopWhenReady = (how: 'stop' | 'kill') => (j: Launched) => { void waitFor(j.stdout, /ready/, 60_000).then(() => j[how]()); };
    const stopped = await run(spec(), direct, stopWhenReady('stop'));
    assert.equal(stopped.exit.reason, 'killed');
    assert.equal(stopped.exit.outputFiles?.length, 1000 + 1, 'at most 1,000 files, then the marker');
    // A collection that does not end within the grace: the job's init is held stopped (SIGSTOP) as
    // the stop is asked, so the grace passes with certainty (before, a 1 ms grace raced a collection
    // of small files, which a busy host's late timer sometimes let finish).
    const heldInit = (j: Launched) => { void waitFor(j.stdout, /ready/, 60_000).then(() => { process.kill(j.pid, 'SIGSTOP'); j.stop(); }); };
    const late = await run(spec(), { ...direct, outputFilesGraceMs: 1 }, heldInit);
    assert.equal(late.exit.reason, 'killed');
    assert.equal(late.exit.outputFiles, undefined, 'killed at the grace\'s end, nothing collected');
    const killed = await run(spec(), direct, stopWhenReady('kill'));
    assert.equal(killed.exit.outputFiles, undefined);
    const none = await run(baseSpec([rootfs], { argv: ['true'] }), direct);
    assert.equal(none.exit.outputFiles, undefined);
    const left = processesIn(parent);
    assert.deepEqual(left, [], `processes left: ${describeProcesses(left, parent)}`);
  });
});
