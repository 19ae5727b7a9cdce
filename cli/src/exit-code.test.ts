/** sbx run / sbx wait's exit code for a finished job, by Docker's conventions (exit-code.ts). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Job } from '../../client/src/index.ts';
import { exitCodeOf } from './exit-code.ts';

const job = (j: Partial<Job>): Job => ({ status: 'failed', exitCode: null, signal: null, ...j }) as Job;

test('128 + the signal that ended the command, real-time ones included (they gave 1); our own SIGINT or SIGTERM that cancelled it', () => {
  assert.equal(exitCodeOf(job({ signal: 'SIGUSR1' })), 138);
  assert.equal(exitCodeOf(job({ signal: 'SIGRTMIN+0' })), 162);
  assert.equal(exitCodeOf(job({ signal: 'SIGRTMIN+30' })), 192);
  assert.equal(exitCodeOf(job({ signal: 'SIG32' })), 160);
  assert.equal(exitCodeOf(job({ exitCode: 7 })), 7);
  assert.equal(exitCodeOf(job({ status: 'cancelled' }), { interruptedBy: 'SIGINT' }), 130);
  assert.equal(exitCodeOf(job({ status: 'cancelled' }), { interruptedBy: 'SIGTERM' }), 143);
  assert.equal(exitCodeOf(job({ status: 'cancelled' })), 137);
});
