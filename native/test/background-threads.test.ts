// The launcher's background threads (network-namespace filler, pooled-setup maker, janitor) run
// five nice steps below the process, so that the thread that launches and reports jobs comes first on
// a busy host (native/src/background.h); the jobs themselves still run at nice 0 (P1).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { describe, it } from 'node:test';
import { procStatFields } from '../../core/src/proc-stat.ts';
import { type LaunchOptions } from '../index.ts';
import { baseSpec, poolReaches, run, uniqueParent, useBusyboxFixture } from './helpers.ts';

const parent = uniqueParent('background');
const opts: LaunchOptions = { cgroupParent: parent };

/** Nice value of each thread of this process (/proc/self/task/<tid>/stat, field 19), by tid. */
function threadNices(): Map<number, number> {
  const nices = new Map<number, number>();
  for (const tid of fs.readdirSync('/proc/self/task')) {
    try {
      nices.set(Number(tid), Number(procStatFields(fs.readFileSync(`/proc/self/task/${tid}/stat`, 'utf8'))(19)));
    } catch {
      // a thread that ended meanwhile
    }
  }
  return nices;
}

describe('launcher background threads', () => {
  const fixture = useBusyboxFixture('background', parent, opts);

  it('the filler, the maker and the janitor run five nice steps below the launching thread; the jobs at nice 0', async () => {
    const base = threadNices().get(process.pid)!;
    const niceOfJob = () => run(baseSpec([fixture.rootfs], { slot: 2, argv: ['sh', '-c', 'cut -d" " -f19 /proc/self/stat'] }), opts);
    const first = await niceOfJob();
    assert.ok((await poolReaches(1)) >= 1, 'a setup is made ahead (the maker thread has run)');
    const pooled = await niceOfJob(); // a pooled setup's job: its mount namespace goes to the janitor
    assert.deepEqual([first.stdout, pooled.stdout], ['0\n', '0\n'], 'the jobs run at nice 0, direct and pooled');
    const lowered = Math.min(19, base + 5);
    const atLowered = () => [...threadNices().values()].filter((v) => v === lowered).length;
    // The janitor starts with the first namespace it is given, as the pooled job's teardown ends.
    for (let i = 0; i < 300 && atLowered() < 3; i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(atLowered() >= 3, `three threads at nice ${lowered} (this process: ${base}): ${JSON.stringify([...threadNices()])}`);
    assert.equal(threadNices().get(process.pid), base, 'the launching (main) thread keeps its nice');
  });
});
