// LaunchOptions.poolMinIdle (the worker's SBX_POOL_MIN_IDLE_PERCENT): pooled setups are made ahead
// only while the launcher's CPUs have time to spare (native/src/host_load.h). A launcher confined to
// one CPU beside a busy loop there (fixtures/busy-cpu-launcher.ts) stops making them and launches
// directly; the same launcher without the option keeps making them. (That a launcher whose CPUs
// are idle makes them is every other pooled test, and the first window here: before a share is
// known, they are made.)
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { nodeArgsFor } from '../../test/harness/node-args.ts';
import { launch, sweep, type LaunchOptions } from '../index.ts';
import { baseSpec, removeParent, uniqueParent, useBusyboxFixture } from './helpers.ts';

const execFileP = promisify(execFile);
const parent = uniqueParent('poolidle');
const opts: LaunchOptions = { cgroupParent: parent };

/** The last CPU this process may run on (/proc/self/status Cpus_allowed_list, e.g. "0-1,4"). */
function lastAllowedCpu(): number {
  const list = /Cpus_allowed_list:\s*(\S+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))![1]!;
  return Math.max(...list.split(',').map((r) => Number(r.split('-').pop())));
}

describe('pooled setups and the CPU to spare', () => {
  const fixture = useBusyboxFixture('poolidle', parent, opts);

  it('with poolMinIdle, a launcher whose only CPU is busy launches directly; without it, it keeps making setups', async () => {
    const fixtureParent = uniqueParent('poolidlefx');
    try {
      const out = await execFileP('taskset', ['-c', String(lastAllowedCpu()), process.execPath,
        ...nodeArgsFor(path.join(import.meta.dirname, 'fixtures', 'busy-cpu-launcher.ts')), fixture.rootfs, fixtureParent, path.join(fixture.tmp, 'state-busycpu')], { encoding: 'utf8', timeout: 60_000 });
      const r = JSON.parse(out.stdout.trim().split('\n').pop()!) as { launches: boolean[]; madeFirst: number; madeWhileBusy: number; madeWithout: number };
      assert.equal(r.madeFirst, 2, 'before a window is known, the setups are made');
      assert.equal(r.madeWhileBusy, 0, 'none made while the CPU had nothing to spare');
      assert.ok(r.madeWithout >= 1, 'the control (no poolMinIdle) made one on the same busy CPU');
      assert.deepEqual(r.launches, [false, true, true, false, false, true], 'direct, the two setups, direct; control: direct, pooled');
    } finally {
      await sweep({ cgroupParent: fixtureParent });
      removeParent(fixtureParent);
    }
  });

  it('refuses a poolMinIdle outside 0..1', async () => {
    for (const bad of [-0.1, 1.5, Number.NaN, '0.5'])
      await assert.rejects(launch(baseSpec([fixture.rootfs]), { ...opts, poolMinIdle: bad as number }), /poolMinIdle/);
  });
});
