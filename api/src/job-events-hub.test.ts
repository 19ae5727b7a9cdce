/**
 * The Doorbell that event streams, `?wait=true` and attach sockets sleep on between reads of a
 * job's events. Its wait ends on a ring, on its timeout, or on its caller's signal; a signal that
 * aborted while the caller was elsewhere (reading Redis, writing) ends the next wait at once
 * (before: the wait ran its whole timeout, up to 5 s for a running job, holding the tenant's
 * stream place and the job's subscription after the client had gone). And the API's inbox (the
 * channel ?wait=true jobs ping at their end), subscribed also when Redis came after the API.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadConfig } from '../../core/src/config.ts';
import { connectRedis } from '../../core/src/redis.ts';
import { startRedis, waitUntil } from '../../test/harness/redis.ts';
import { startTcpGate } from '../../test/harness/tcp-gate.ts';
import { Doorbell, JobEventsHub } from './job-events-hub.ts';

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

test('the API inbox is subscribed once Redis is there, also when it was not at the first try (an API started before its Redis)', async () => {
  const redis = await startRedis();
  const gate = await startTcpGate(redis.port, { open: false });
  const sub = connectRedis(loadConfig({ SBX_REDIS_URL: `redis://127.0.0.1:${gate.port}`, SBX_HEARTBEAT_MS: '500' }).env, 'inbox-test-sub');
  sub.on('error', () => {});
  const hub = new JobEventsHub(sub);
  const failures: string[] = [];
  try {
    hub.keepInbox('sbx:api:test:inbox', (err) => failures.push(err.message));
    await waitUntil(async () => failures.length > 0, 10_000, 'the first try to fail');
    assert.equal(hub.inbox, null);
    gate.open();
    // Before: never tried again; hub.inbox stayed null for the API's life.
    await waitUntil(async () => hub.inbox === 'sbx:api:test:inbox', 10_000, 'the inbox to be subscribed');
    const admin = redis.client();
    assert.deepEqual(await admin.call('PUBSUB', 'CHANNELS', 'sbx:api:test:inbox'), ['sbx:api:test:inbox']);
    admin.disconnect();
  } finally {
    sub.disconnect();
    await gate.close();
    await redis.stop();
  }
});
