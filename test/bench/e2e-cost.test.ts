// The end-to-end bench's CPU per job (loadtest/lib/e2e-cost.ts, machine-cpu.ts): what the kernel's
// own threads did is counted from kthreadd's children only, and the machine's busy time is split
// into the stack, the client, those threads and a rest, without counting interrupts twice.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { costPerJob, type Snapshot } from '../../loadtest/lib/e2e-cost.ts';
import { kernelThreadsCpu, TICK_MS } from '../../loadtest/lib/machine-cpu.ts';

/** A /proc/<pid>/stat line: pid (comm) state ppid, then zeros up to utime (field 14) and stime (15). */
function statLine(pid: number, comm: string, ppid: number, utime: number, stime: number): string {
  const fields = ['S', String(ppid), ...Array(9).fill('0'), String(utime), String(stime), '0', '0', '20', '0', '1'];
  return `${pid} (${comm}) ${fields.join(' ')}\n`;
}

describe('e2e bench: the CPU per job', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sbx-e2e-cost-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('kernel threads: kthreadd and its children only, whatever their names hold', () => {
    const procs: Array<[number, string, number, number, number]> = [
      [1, 'init', 0, 500, 500], // not a kernel thread
      [2, 'kthreadd', 0, 0, 3],
      [15, 'kworker/u8:1-events_unbound', 2, 0, 40],
      [17, 'rcu_exp_gp_kthread_worker', 2, 1, 6],
      [300, 'node) 2 (x', 1, 900, 900], // a process whose name looks like a kernel thread's fields
      [301, 'redis-server', 300, 700, 100],
    ];
    for (const [pid, comm, ppid, u, s] of procs) {
      fs.mkdirSync(path.join(dir, String(pid)));
      fs.writeFileSync(path.join(dir, String(pid), 'stat'), statLine(pid, comm, ppid, u, s));
    }
    fs.mkdirSync(path.join(dir, 'self'));
    assert.equal(kernelThreadsCpu(dir), (3 + 40 + 1 + 6) * TICK_MS);
    assert.equal(kernelThreadsCpu(path.join(dir, 'missing')), null);
  });

  it('per job: the rest is the machine minus the stack, the client and the kernel threads; interrupts are not subtracted again', () => {
    const snap = (k: number): Snapshot => ({
      at: 0,
      procs: { api: { user: 10 * k, sys: 5 * k, childUser: 0, childSys: 0, syscr: 0, syscw: 0 }, 'worker-1': { user: 20 * k, sys: 20 * k, childUser: 15 * k, childSys: 5 * k, syscr: 0, syscw: 0 } },
      machine: { busy: 100 * k, user: 50 * k, sys: 50 * k, irq: 4 * k, idle: 0 },
      kernelThreads: 8 * k,
      client: { user: 3000 * k, system: 1000 * k },
      redis: null,
    });
    const c = costPerJob(snap(1), snap(2), 2);
    assert.deepEqual(c.cpu_ms.jobs, { user: 7.5, sys: 2.5, total: 10 });
    assert.equal(c.stack_cpu_ms, 37.5); // api 7.5 + workers 20 + jobs 10, per job
    assert.equal(c.cpu_ms.client!.total, 2);
    assert.deepEqual(c.kernel_cpu_ms, { threads: 4, interrupts: 2 });
    assert.deepEqual(c.machine_cpu_ms, { busy: 50, user: 25, sys: 25 });
    assert.equal(c.rest_cpu_ms, 50 - 37.5 - 2 - 4);
    const unknown = costPerJob({ ...snap(1), kernelThreads: null }, snap(2), 2);
    assert.equal(unknown.kernel_cpu_ms, null);
    assert.equal(unknown.rest_cpu_ms, null);
  });
});
