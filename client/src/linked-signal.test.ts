import { test } from 'node:test';
import assert from 'node:assert/strict';
import { linkedSignal } from './linked-signal.ts';
import { signalHolds } from '../../test/harness/signal-holds.ts';

test('the probe sees what AbortSignal.any() leaves on a long-lived source (the leak linkedSignal avoids)', () => {
  const shutdown = new AbortController().signal;
  for (let i = 0; i < 10; i++) AbortSignal.any([shutdown, new AbortController().signal]);
  assert.ok(signalHolds(shutdown) >= 10, `AbortSignal.any() left ${signalHolds(shutdown)} on its source`);
});

test('a released linked signal leaves nothing on its sources, however many were made', () => {
  const shutdown = new AbortController().signal;
  for (let i = 0; i < 1000; i++) {
    const linked = linkedSignal([shutdown, new AbortController().signal]);
    assert.equal(linked.signal.aborted, false);
    linked.release();
  }
  assert.equal(signalHolds(shutdown), 0);
});

test('it aborts with the first source to abort, and lets go of the others', () => {
  const a = new AbortController();
  const b = new AbortController();
  const linked = linkedSignal([a.signal, b.signal]);
  b.abort(new Error('b went'));
  assert.equal(linked.signal.aborted, true);
  assert.equal((linked.signal.reason as Error).message, 'b went');
  assert.equal(signalHolds(a.signal), 0);
  a.abort(new Error('a later'));
  assert.equal((linked.signal.reason as Error).message, 'b went');
  linked.release();
});

test('a source already aborted aborts it at once, with that reason, listening on nothing', () => {
  const a = new AbortController();
  const b = new AbortController();
  a.abort('gone');
  const linked = linkedSignal([b.signal, a.signal]);
  assert.equal(linked.signal.aborted, true);
  assert.equal(linked.signal.reason, 'gone');
  assert.equal(signalHolds(b.signal), 0);
});

test('many linked signals in flight at once on one source print no listener-leak warning (they are released, not leaked)', async () => {
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(`${w.name}: ${w.message}`);
  process.on('warning', onWarning);
  try {
    const shutdown = new AbortController().signal;
    const inFlight = Array.from({ length: 50 }, () => linkedSignal([shutdown, new AbortController().signal]));
    await new Promise((r) => setImmediate(r)); // warnings are emitted on the next tick
    assert.deepEqual(warnings, []);
    for (const l of inFlight) l.release();
    assert.equal(signalHolds(shutdown), 0);
  } finally {
    process.off('warning', onWarning);
  }
});
