import assert from 'node:assert/strict';
import type { LookupAddress } from 'node:dns';
import { test } from 'node:test';
import { boundedLookup, processLookup, MAX_LOOKUPS_AT_ONCE } from './bounded-lookup.ts';

test('at most MAX_LOOKUPS_AT_ONCE lookups run at once; the rest wait their turn and all answer, each its own', async () => {
  let inFlight = 0;
  let most = 0;
  const pending: Array<() => void> = [];
  // A resolver whose every answer is held until the test lets it go (a slow DNS server).
  const slow = boundedLookup((hostname, _options, callback) => {
    inFlight++;
    most = Math.max(most, inFlight);
    pending.push(() => {
      inFlight--;
      callback(null, [{ address: `10.0.0.${hostname.length}`, family: 4 }]);
    });
  });
  const names = Array.from({ length: 10 }, (_, i) => 'n'.repeat(i + 1));
  const answers = names.map((n) => new Promise<LookupAddress[]>((resolve, reject) => slow(n, { all: true }, (err, a) => (err ? reject(err) : resolve(a)))));
  assert.equal(inFlight, MAX_LOOKUPS_AT_ONCE, 'the others wait');
  while (pending.length) {
    pending.shift()!();
    await new Promise((r) => setImmediate(r));
    assert.ok(inFlight <= MAX_LOOKUPS_AT_ONCE);
  }
  assert.equal(most, MAX_LOOKUPS_AT_ONCE);
  assert.deepEqual((await Promise.all(answers)).map((a) => a[0]!.address), names.map((n) => `10.0.0.${n.length}`));
});

test('an error answers its caller and frees its turn', async () => {
  const failing = boundedLookup((_h, _o, callback) => queueMicrotask(() => callback(Object.assign(new Error('no'), { code: 'ENOTFOUND' }), [])), 1);
  for (let i = 0; i < 3; i++) {
    const err = await new Promise((resolve) => failing('x', { all: true }, (e) => resolve(e)));
    assert.equal((err as NodeJS.ErrnoException).code, 'ENOTFOUND');
  }
});

test('the process\'s lookup resolves for real', async () => {
  const a = await new Promise<LookupAddress[]>((resolve, reject) => processLookup('localhost', { all: true }, (err, x) => (err ? reject(err) : resolve(x))));
  assert.ok(a.some((x) => x.address === '127.0.0.1' || x.address === '::1'), JSON.stringify(a));
});
