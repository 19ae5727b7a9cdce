// npm run bench waits for a quiet machine between benches (loadtest/lib/settle.ts): it stops
// waiting at once when the machine is below the threshold, and gives up after its limit otherwise,
// saying the machine was still busy. (No assertion here depends on how busy this host is.)
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { settle } from '../../loadtest/lib/settle.ts';

describe('bench settle', () => {
  it('a threshold any machine meets ends the wait after one window', async () => {
    const s = await settle({ idleBelow: 1.01, windowMs: 50, maxMs: 5_000 });
    assert.equal(s.quiet, true);
    assert.ok(s.seconds < 5, `waited ${s.seconds} s`);
    assert.ok(s.busy >= 0 && s.busy <= 1, `busy share ${s.busy}`);
  });

  it('a threshold no machine meets gives up after the limit and says the machine was busy', async () => {
    const s = await settle({ idleBelow: 0, windowMs: 50, maxMs: 300 });
    assert.equal(s.quiet, false);
    assert.ok(s.seconds >= 0.3, `gave up after ${s.seconds} s`);
    assert.ok(s.busy >= 0 && s.busy <= 1, `busy share ${s.busy}`);
  });
});
