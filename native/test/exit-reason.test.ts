/**
 * A job's exit reason from what the launcher reports (native/index.ts toExitInfo), at the edges a
 * real job only reaches by timing: a limit's timer that fires as the command exits by itself, and
 * OOM kills of a process that was not the command (cgroup v1).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { toExitInfo, type NativeExit } from '../index.ts';

const exit = (x: Partial<NativeExit>): NativeExit => ({
  exitCode: null, signal: null, commandStatusKnown: true, cpuNs: 0, memoryPeakBytes: 0, oomKills: 0,
  pidsMaxEvents: 0, cpuThrottledNs: 0, wallNs: 0, leftoverProcesses: 0, ...x,
});

test('a timeout that fired as the command exited by itself keeps the command\'s own outcome; one that stopped it is a timeout', () => {
  // `sleep 0.997; echo done` under timeoutMs 1000: exit code 0, no signal, the timer a little late.
  assert.equal(toExitInfo(exit({ exitCode: 0 }), 'timeout').reason, 'exited');
  assert.equal(toExitInfo(exit({ exitCode: 3 }), 'timeout').reason, 'exited');
  assert.equal(toExitInfo(exit({ signal: 'SIGKILL' }), 'timeout').reason, 'timeout', 'killed by the limit');
  assert.equal(toExitInfo(exit({ exitCode: 0 }), 'timeout', true).reason, 'timeout', 'it exited when the stop signal asked it to (stopGraceMs)');
});

test('a cancel (kill or stop) that came as the command exited by itself leaves its outcome; one that ended it is killed', () => {
  // DELETE as `sh -c 'sleep 0.3; exit 7'` exits: sbx-init had reported exit 7 when the SIGKILL came.
  assert.equal(toExitInfo(exit({ exitCode: 7 }), 'killed').reason, 'exited', 'before: killed, so the job ended cancelled with exit code 7');
  assert.equal(toExitInfo(exit({ exitCode: 0 }), 'killed').reason, 'exited');
  assert.equal(toExitInfo(exit({ signal: 'SIGKILL' }), 'killed').reason, 'killed', 'killed by the cancel');
  assert.equal(toExitInfo(exit({ signal: 'SIGKILL', commandStatusKnown: false }), 'killed').reason, 'killed', 'sbx-init itself killed first');
  assert.equal(toExitInfo(exit({ exitCode: 0 }), 'killed', true).reason, 'killed', 'it exited when the stop signal asked it to (DELETE ?graceMs)');
});

test('oom only when the OOM kills ended the command; a command that outlived them keeps its outcome, oomKilled set', () => {
  const survived = toExitInfo(exit({ exitCode: 0, oomKills: 1 }), null);
  assert.deepEqual([survived.reason, survived.oomKilled], ['exited', true]);
  const ended = toExitInfo(exit({ signal: 'SIGKILL', oomKills: 1 }), null);
  assert.deepEqual([ended.reason, ended.oomKilled], ['oom', true]);
});
