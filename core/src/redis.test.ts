/**
 * How a connection made by connectRedis() comes back after Redis went away. A worker whose heartbeats
 * stop landing for 5 heartbeats kills its jobs (worker/src/redis-watchdog.ts), so it must try again
 * often enough to be connected well within that once Redis is back: at least twice a heartbeat.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { test } from 'node:test';
import type { Env } from './config.ts';
import { connectRedis } from './redis.ts';

test('a connection whose Redis keeps hanging up tries again at least twice per heartbeat, however long it lasts', async () => {
  // A "Redis" that accepts each connection and closes it at once: ioredis backs off between tries.
  const server = createServer((s) => s.destroy());
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address() as { port: number };
  const client = connectRedis({ SBX_REDIS_URL: `redis://127.0.0.1:${port}`, SBX_HEARTBEAT_MS: 500 } as Env, 'reconnect-test', { waitWhileDown: true });
  client.on('error', () => {});
  const waits: number[] = [];
  client.on('reconnecting', (ms: number) => waits.push(ms));
  try {
    await new Promise((r) => setTimeout(r, 3_000)); // with backoff doubling from 100 ms: 100, 200, 400, 800 (1.5 s), 1,600
    assert.ok(waits.length >= 6, `tries: ${waits.join(', ')} ms apart`);
    assert.ok(Math.max(...waits) <= 250, `waits between tries: ${waits.join(', ')} ms (at most half of a 500 ms heartbeat)`);
  } finally {
    client.disconnect();
    server.close();
  }
});
