import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PullBounds } from './pull-bounds.ts';
import { signalHolds } from '../../../../test/harness/signal-holds.ts';

test('pulls leave nothing on the store\'s closing signal, however many ran (it lives as long as the worker)', async () => {
  const closing = new AbortController();
  const bounds = new PullBounds({ pullConcurrency: 4 }, closing.signal);
  const before = signalHolds(closing.signal);
  await Promise.all(Array.from({ length: 500 }, (_, i) =>
    bounds.run(`reg/img${i % 7}:latest`, { tenant: `t${i % 3}` }, new AbortController().signal, async (signal) => {
      // What the puller and the registry client do with the signal they are given.
      const layers = AbortSignal.any([signal, new AbortController().signal]);
      assert.equal(layers.aborted, false);
      await new Promise((r) => setImmediate(r));
      return i;
    })));
  assert.equal(signalHolds(closing.signal), before, 'held by the closing signal after 500 pulls');
});

test('closing still aborts a pull waiting for its permit and one running', async () => {
  const closing = new AbortController();
  const bounds = new PullBounds({ pullConcurrency: 1 }, closing.signal);
  let runningSignal: AbortSignal | null = null;
  const running = bounds.run('reg/a:1', {}, new AbortController().signal, (signal) => {
    runningSignal = signal;
    return new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true }));
  });
  const waiting = bounds.run('reg/b:1', {}, new AbortController().signal, async () => 'ran');
  await new Promise((r) => setImmediate(r));
  closing.abort(new Error('store closed'));
  await assert.rejects(running, /store closed/);
  await assert.rejects(waiting);
  assert.equal(runningSignal!.aborted, true);
  assert.equal(signalHolds(closing.signal), 0);
});

test('a pull abandoned by everyone waiting for it is aborted with that reason', async () => {
  const closing = new AbortController();
  const bounds = new PullBounds({}, closing.signal);
  const abandoned = new AbortController();
  const pull = bounds.run('reg/a:1', {}, abandoned.signal, (signal) =>
    new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true })));
  await new Promise((r) => setImmediate(r));
  abandoned.abort(new Error('nobody waits'));
  await assert.rejects(pull, /nobody waits/);
  assert.equal(signalHolds(closing.signal), 0);
});
