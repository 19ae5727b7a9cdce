/**
 * The isolation as a job sees it through the whole path (HTTP → queue → worker → launcher), with the
 * attack probe image: what the worker passes to the launcher is what protects the host. The
 * launcher's own tests (native/test/) attack each property with the launcher alone; these check the
 * worker's wiring of them, each with a control from a worker configured the other way.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { defaultJobsMemoryBytes, defaultJobsPids } from '../../core/src/config.ts';
import { probeHost } from '../../native/index.ts';
import type { ManagedProcess } from '../harness/stack.ts';
import { useStack } from '../harness/use-stack.ts';

const PROBE = '/probes/probe';
const e2e = useStack({ workers: 0 });


async function probe(args: string[]): Promise<Map<string, string>> {
  const { status, body } = await e2e.api.submit({ image: e2e.stack.images.probe, command: [PROBE, ...args] }, { wait: true });
  assert.equal(status, 200);
  assert.equal(body.status, 'succeeded', JSON.stringify(body));
  const out = new Map<string, string>();
  for (const line of body.output!.stdout.split('\n')) {
    const m = /^([^=:\t]+)[=:]\s*(.*)$/.exec(line);
    if (m) out.set(m[1]!, m[2]!.trim());
  }
  return out;
}

/** The worker's cgroup parent in a v1 hierarchy or the v2 tree. */
function parentFile(workerId: string, controller: string, file: string): string {
  const rel = `${e2e.stack.env.SBX_CGROUP_PARENT}/${workerId}`;
  return readFileSync(probeHost().cgroup === 'v2' ? `/sys/fs/cgroup/${rel}/${file}` : `/sys/fs/cgroup/${controller}/${rel}/${file}`, 'utf8').trim();
}

describe('a worker configured strictly (file locks denied, aggregate limits)', () => {
  let worker: ManagedProcess;
  before(async () => {
    worker = await e2e.stack.startWorker({ SBX_WORKER_ID: 'strict', SBX_JOB_FILE_LOCKS: 'deny', SBX_JOBS_MEMORY_BYTES: String(1 << 30), SBX_JOBS_PIDS: '300' });
  });
  after(async () => {
    await worker.kill('SIGTERM');
  });

  it('runs the job with no capability, no_new_privs, seccomp, reset signals and only fds 0-2', async () => {
    const m = await probe(['status']);
    for (const k of ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb']) assert.equal(m.get(k), '0000000000000000', k);
    assert.equal(m.get('NoNewPrivs'), '1');
    assert.equal(m.get('Seccomp'), '2');
    assert.equal(m.get('SigIgn'), '0000000000000000');
    assert.equal(m.get('SigBlk'), '0000000000000000');
    assert.equal(m.get('Fds'), '0 1 2', 'no Redis socket or other worker fd reaches the job');
    assert.equal(m.get('SessionLeader'), '1');
  });

  it('denies the dangerous syscalls (EPERM) and unknown ones (ENOSYS)', async () => {
    const m = await probe(['syscalls']);
    for (const k of ['keyctl', 'bpf', 'mount', 'unshare_user', 'ptrace', 'io_uring_setup', 'kexec_load', 'init_module']) assert.equal(m.get(k), 'EPERM', k);
    assert.equal(m.get('clone3'), 'ENOSYS');
    assert.equal(m.get('getpid'), 'ok');
  });

  it('SBX_JOB_FILE_LOCKS=deny: flock and fcntl record locks fail, F_GETLK works', async () => {
    const m = await probe(['lock', 'try', '/dev/null']);
    for (const k of ['flock', 'fcntl_setlk', 'fcntl_ofd_setlk']) assert.equal(m.get(k), 'EPERM', k);
    assert.equal(m.get('fcntl_getlk'), 'ok');
  });

  it('SBX_JOBS_MEMORY_BYTES and SBX_JOBS_PIDS are the limits of all its jobs together (its cgroup parent)', () => {
    assert.equal(parentFile('strict', 'memory', probeHost().cgroup === 'v2' ? 'memory.max' : 'memory.limit_in_bytes'), String(1 << 30));
    assert.equal(parentFile('strict', 'pids', 'pids.max'), '300');
  });
});

describe('control: a worker with the defaults', () => {
  let worker: ManagedProcess;
  before(async () => {
    worker = await e2e.stack.startWorker({ SBX_WORKER_ID: 'defaults' });
  });
  after(async () => {
    await worker.kill('SIGTERM');
  });

  it('lets jobs take file locks (the default), with the same probe', async () => {
    const m = await probe(['lock', 'try', '/dev/null']);
    for (const k of ['flock', 'fcntl_setlk', 'fcntl_ofd_setlk', 'fcntl_getlk']) assert.equal(m.get(k), 'ok', k);
  });

  it('bounds all jobs together by the RAM less a reserve and by half of the host\'s pids', () => {
    const mem = Number(parentFile('defaults', 'memory', probeHost().cgroup === 'v2' ? 'memory.max' : 'memory.limit_in_bytes'));
    // v1 rounds the limit down to a page multiple.
    assert.ok(Math.abs(mem - defaultJobsMemoryBytes()) < 4096, `${mem} vs ${defaultJobsMemoryBytes()}`);
    // 8 slots x 4096 pids each would be this host's whole pid_max: the default aggregate cap is not.
    const pids = parentFile('defaults', 'pids', 'pids.max');
    assert.equal(pids, String(defaultJobsPids()));
    assert.ok(Number(pids) <= Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8')) / 2);
  });
});
