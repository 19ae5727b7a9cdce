/**
 * The Doorbell that event streams, `?wait=true` and attach sockets sleep on between reads of a
 * job's events. Its wait ends on a ring, on its timeout, or on its caller's signal; a signal that
 * aborted while the caller was elsewhere (reading Redis, writing) ends the next wait at once
 * (before: the wait ran its whole timeout, up to 5 s for a running job, holding the tenant's
 * stream place and the job's subscription after the client had gone).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Doorbell } from './job-events-hub.ts';

const LONG = 60_000;

/** What `wait` came to, or 'pending' when it has not settled once the timers and I/O due now ran. */
async function settled(wait: Promise<boolean>): Promise<boolean | 'pending'> {
  return Promise.race([wait, new Promise<'pending'>((resolve) => setTimeout(() => resolve('pending'), 20))]);
}

test('a ring that came before the wait ends it at once, as a ring, and only that wait', async () => {
  const bell = new Doorbell();
  bell.ring();
  assert.equal(await settled(bell.wait(LONG)), true);
  const next = bell.wait(LONG);
  assert.equal(await settled(next), 'pending');
  bell.ring();
  assert.equal(await next, true);
});

test('a wait ends after its timeout, not a ring', async () => {
  assert.equal(await new Doorbell().wait(5), false);
});

test('a signal aborting during the wait ends it', async () => {
  const abort = new AbortController();
  const wait = new Doorbell().wait(LONG, abort.signal);
  assert.equal(await settled(wait), 'pending');
  abort.abort();
  assert.equal(await settled(wait), false);
});

test('a signal that aborted before the wait (the client left while its stream read Redis) ends it at once', async () => {
  const abort = new AbortController();
  abort.abort();
  assert.equal(await settled(new Doorbell().wait(LONG, abort.signal)), false, 'the wait ran on after its caller was gone');
});
