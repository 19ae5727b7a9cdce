// LaunchOptions.trace: the phase times `npm run bench:launcher -- --phases` reads. The command's own
// start (initCmdExec, written by sbx-init's vfork child just before its execve) lies between sbx-init
// starting it and sbx-init resuming after the vfork, which may be long after: the vfork parent often
// gets a CPU only once the command has exited, so the resume alone says nothing about the exec.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type LaunchOptions } from '../index.ts';
import { baseSpec, directThenPooled, uniqueParent, useBusyboxFixture } from './helpers.ts';

const parent = uniqueParent('trace');
const opts: LaunchOptions = { cgroupParent: parent, trace: true };

/** The named phases, each at or after the one before it (ms since launch()). */
function assertInOrder(phases: Record<string, number> | undefined, names: string[], which: string): void {
  assert.ok(phases, `${which}: a traced launch reports its phases`);
  for (const n of names) assert.equal(typeof phases[n], 'number', `${which}: phase ${n} in ${JSON.stringify(phases)}`);
  for (let i = 1; i < names.length; i++) {
    assert.ok(phases[names[i]!]! >= phases[names[i - 1]!]!, `${which}: ${names[i - 1]} (${phases[names[i - 1]!]}) before ${names[i]} (${phases[names[i]!]})`);
  }
}

describe('traced launches: the command\'s start among the phases', () => {
  const fixture = useBusyboxFixture('trace', parent, opts);

  it('sbx-init starts the command, its child reaches execve, sbx-init resumes and reaps it, then the outcome (direct and pooled)', async () => {
    const runs = await directThenPooled(() => baseSpec([fixture.rootfs], { slot: 5, argv: ['true'] }), opts);
    for (const [r, which] of [[runs[0]!, 'direct'], [runs[2]!, 'pooled']] as const) {
      assert.equal(r.exit.exitCode, 0, `${which}: true succeeded`);
      assertInOrder(r.exit.phases, ['launch', 'initStart', 'initForked', 'initCmdExec', 'initExecOk'], which);
      assertInOrder(r.exit.phases, ['initCmdExec', 'initReaped', 'reaped', 'ended'], which);
    }
  });
});
