/**
 * The Redis watchdog against a real redis-server, reached through a TCP relay that can hold every
 * byte in both directions (a dead link: nothing refused, nothing answered) and let them through
 * later. The heartbeat is written by the test on its own connection, as the worker's heartbeat does.
 */
import assert from 'node:assert/strict';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { after, before, test } from 'node:test';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { startRedis, waitUntil, type RunningRedis } from '../../test/harness/redis.ts';
import { createRegistry, workerMetrics } from '../../core/src/metrics.ts';
import { RedisWatchdog } from './redis-watchdog.ts';

const INTERVAL_MS = 50;
const LIMIT_MS = 500;

/** A relay to `port` whose links can be held (bytes kept, none delivered) and released. */
async function startRelay(port: number) {
  let held = false;
  const waiting: Array<() => void> = [];
  const pipe = (from: Socket, to: Socket) =>
    from.on('data', (d) => {
      if (held) waiting.push(() => to.write(d));
      else to.write(d);
    });
  const sockets: Socket[] = [];
  const server: Server = createServer((client) => {
    const upstream = connect(port, '127.0.0.1');
    sockets.push(client, upstream);
    pipe(client, upstream);
    pipe(upstream, client);
    for (const s of [client, upstream]) s.on('error', () => {}).on('close', () => (client.destroy(), upstream.destroy()));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as { port: number }).port,
    hold: () => void (held = true),
    release: () => {
      held = false;
      for (const w of waiting.splice(0)) w();
    },
    close: () => new Promise<void>((r) => (sockets.forEach((s) => s.destroy()), server.close(() => r()))),
  };
}

let redis: RunningRedis;
before(async () => {
  redis = await startRedis();
});
after(async () => {
  await redis?.stop();
});

function fakes() {
  const calls = { killAll: 0, pause: 0, resume: 0 };
  let running = ['job-a'];
  return {
    calls,
    jobs: { get runningIds() { return running; }, killAll: () => { calls.killAll++; running = []; } },
    queue: { pause: async () => void calls.pause++, resume: () => void calls.resume++ },
  };
}

/** Writes the heartbeat key every interval, like the worker's heartbeat, until stopped. */
function heartbeat(client: Redis, key: string, ttlMs: number) {
  const beat = () => void client.set(key, '{}', 'PX', ttlMs);
  beat();
  const t = setInterval(beat, INTERVAL_MS);
  return () => clearInterval(t);
}

test('heartbeats landing: nothing happens; the key expiring: jobs killed and the queue paused; seen again: resumed (and counted)', async () => {
  const writer = redis.client();
  const key = `wd:${Date.now()}:1`;
  const f = fakes();
  const registry = createRegistry('worker');
  const metrics = workerMetrics(registry);
  /** [sbx_worker_redis_unreachable_total, sbx_worker_redis_lost] */
  const counted = async () => Promise.all(['sbx_worker_redis_unreachable_total', 'sbx_worker_redis_lost'].map(async (name) => (await registry.getSingleMetric(name)?.get())?.values[0]?.value));
  const stopBeats = heartbeat(writer, key, LIMIT_MS);
  const probe = new Redis(redis.port, '127.0.0.1');
  const dog = new RedisWatchdog({ redis: probe, key, intervalMs: INTERVAL_MS, limitMs: LIMIT_MS, jobs: f.jobs, queue: f.queue, logger: pino({ level: 'silent' }), metrics }).start();
  try {
    await new Promise((r) => setTimeout(r, LIMIT_MS * 2));
    assert.deepEqual(f.calls, { killAll: 0, pause: 0, resume: 0 }, 'heartbeats landed: Redis is not lost');
    assert.deepEqual(await counted(), [0, 0]);
    stopBeats();
    await waitUntil(async () => dog.lost, 5000, 'the key to expire');
    assert.deepEqual(f.calls, { killAll: 1, pause: 1, resume: 0 });
    assert.deepEqual(await counted(), [1, 1], 'lost once, lost now');
    const stopAgain = heartbeat(writer, key, LIMIT_MS);
    await waitUntil(async () => !dog.lost, 5000, 'the heartbeat to be seen again');
    stopAgain();
    assert.deepEqual(f.calls, { killAll: 1, pause: 1, resume: 1 });
    assert.deepEqual(await counted(), [1, 0], 'lost once, back now');
  } finally {
    dog.stop();
    probe.disconnect();
  }
});

test('a dead link (bytes held, not refused): lost at the key\'s expiry; a probe that hung through it does not count as a sign of life', async () => {
  const relay = await startRelay(redis.port);
  const writer = redis.client();
  const key = `wd:${Date.now()}:2`;
  const f = fakes();
  // Heartbeats live a little longer than the limit: a probe held longer than that sees a key that has expired by the time it answers.
  const ttl = LIMIT_MS * 2;
  let stopBeats = heartbeat(writer, key, ttl);
  const probe = new Redis(relay.port, '127.0.0.1');
  await probe.ping();
  const dog = new RedisWatchdog({ redis: probe, key, intervalMs: INTERVAL_MS, limitMs: ttl, jobs: f.jobs, queue: f.queue, logger: pino({ level: 'silent' }) }).start();
  try {
    relay.hold();
    stopBeats(); // the link is down for the heartbeat too
    await waitUntil(async () => dog.lost, 5000, 'the watchdog to find Redis lost');
    assert.equal(f.calls.pause, 1);
    await new Promise((r) => setTimeout(r, ttl * 1.5)); // the held probe is older than a heartbeat's life
    stopBeats = heartbeat(writer, key, ttl); // heartbeats land again…
    relay.release(); // …and the probe that hung through the outage answers now
    await waitUntil(async () => !dog.lost, 5000, 'the watchdog to see the heartbeat again');
    await new Promise((r) => setTimeout(r, LIMIT_MS)); // many ticks, well within the fresh key's life
    assert.deepEqual(f.calls, { killAll: 1, pause: 1, resume: 1 }, 'back once, not back and lost again');
  } finally {
    stopBeats();
    dog.stop();
    probe.disconnect();
    await relay.close();
  }
});

test('the key from before the outage, with moments left, is not a sign of life: back only on a fresh heartbeat, and never lost twice', async () => {
  const writer = redis.client();
  const key = `wd:${Date.now()}:3`;
  const f = fakes();
  const probe = new Redis(redis.port, '127.0.0.1');
  // No heartbeat lands: lost at the limit.
  const dog = new RedisWatchdog({ redis: probe, key, intervalMs: INTERVAL_MS, limitMs: LIMIT_MS, jobs: f.jobs, queue: f.queue, logger: pino({ level: 'silent' }) }).start();
  try {
    await waitUntil(async () => dog.lost, 5000, 'the watchdog to find Redis lost');
    // The old key, about to expire, seen by a probe: not back (before the fix: back, then lost again).
    await writer.set(key, '{}', 'PX', LIMIT_MS / 4);
    await new Promise((r) => setTimeout(r, LIMIT_MS));
    assert.equal(dog.lost, true, 'still lost');
    const stopBeats = heartbeat(writer, key, LIMIT_MS);
    await waitUntil(async () => !dog.lost, 5000, 'a fresh heartbeat to be seen');
    await new Promise((r) => setTimeout(r, LIMIT_MS)); // many ticks within the fresh key's life
    stopBeats();
    assert.deepEqual(f.calls, { killAll: 1, pause: 1, resume: 1 }, 'lost once, back once');
  } finally {
    dog.stop();
    probe.disconnect();
  }
});
