import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AbandonedError, SingleFlight } from './single-flight.ts';

/** A run that settles only when told, and records how its signal ended. */
function controllable() {
  let finish: (v: string) => void = () => {};
  let signal: AbortSignal | undefined;
  let runs = 0;
  const work = (s: AbortSignal) => {
    runs++;
    signal = s;
    return new Promise<string>((resolve, reject) => {
      finish = resolve;
      s.addEventListener('abort', () => reject(s.reason), { once: true });
    });
  };
  return { work, finish: (v: string) => finish(v), signal: () => signal!, runs: () => runs };
}

test('callers of one key share one run; the next call after it settles runs anew', async () => {
  const flights = new SingleFlight<string>();
  const c = controllable();
  const a = flights.run('k', c.work);
  const b = flights.run('k', c.work);
  c.finish('done');
  assert.deepEqual(await Promise.all([a, b]), ['done', 'done']);
  assert.equal(c.runs(), 1);
  const again = flights.run('k', c.work);
  c.finish('again');
  assert.equal(await again, 'again');
  assert.equal(c.runs(), 2);
});

test('when every caller with a signal stopped waiting, the run is aborted and forgotten', async () => {
  const flights = new SingleFlight<string>();
  const c = controllable();
  const one = new AbortController();
  const two = new AbortController();
  const a = flights.run('k', c.work, one.signal);
  const b = flights.run('k', c.work, two.signal);
  one.abort(new Error('one left'));
  await assert.rejects(a, /one left/);
  assert.equal(c.signal().aborted, false, 'another caller still waits');
  two.abort(new Error('two left'));
  await assert.rejects(b, /two left/);
  assert.ok(c.signal().reason instanceof AbandonedError);
  assert.equal(flights.size, 0);
  await flights.idle();
});

test('a caller without a signal keeps the run going after the others left', async () => {
  const flights = new SingleFlight<string>();
  const c = controllable();
  const leaving = new AbortController();
  const a = flights.run('k', c.work, leaving.signal);
  const kept = flights.run('k', c.work);
  leaving.abort(new Error('left'));
  await assert.rejects(a, /left/);
  assert.equal(c.signal().aborted, false);
  c.finish('pre-pulled');
  assert.equal(await kept, 'pre-pulled');
});

test('an already aborted signal neither starts nor joins a run', async () => {
  const flights = new SingleFlight<string>();
  const c = controllable();
  await assert.rejects(flights.run('k', c.work, AbortSignal.abort(new Error('gone'))), /gone/);
  assert.equal(c.runs(), 0);
});
