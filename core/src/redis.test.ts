/**
 * How a connection made by connectRedis() comes back after Redis went away. A worker whose heartbeats
 * stop landing for 5 heartbeats kills its jobs (worker/src/redis-watchdog.ts), so it must try again
 * often enough to be connected well within that once Redis is back: at least twice a heartbeat.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { test } from 'node:test';
import { loadConfig, type Env } from './config.ts';
import { connectRedis, SentinelsUnreachableError } from './redis.ts';

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

test('behind Sentinels none of which answers: rounds of asking them at least twice a heartbeat; a fail-fast connection fails its commands each round, a waiting one holds them', async () => {
  // A "Sentinel" that hangs up on every connection: each round of asking ends "All sentinels are unreachable".
  const server = createServer((s) => s.destroy());
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address() as { port: number };
  const env = loadConfig({ SBX_REDIS_SENTINELS: `127.0.0.1:${port}`, SBX_HEARTBEAT_MS: '200' }).env;
  const failFast = connectRedis(env, 'sentinel-fail-fast');
  const waiting = connectRedis(env, 'sentinel-waiting', { waitWhileDown: true });
  const waits: number[] = [];
  failFast.on('error', (e: Error) => {
    const ms = /Retrying from scratch after (\d+)ms/.exec(e.message)?.[1];
    if (ms) waits.push(Number(ms));
  });
  waiting.on('error', () => {});
  try {
    const started = Date.now();
    await assert.rejects(failFast.ping(), (e: Error) => e instanceof SentinelsUnreachableError && /unreachable through its Sentinels: a round of them gave no master/.test(e.message));
    assert.ok(Date.now() - started < 1_000, `failed after ${Date.now() - started} ms`);
    let settled = false;
    void waiting.ping().then(() => (settled = true), () => (settled = true));
    await new Promise((r) => setTimeout(r, 1_500)); // ioredis's own waits grow by 10 ms a round, to 1 s: 160 ms by now
    assert.equal(settled, false, 'a waitWhileDown connection holds its commands until Redis is back');
    assert.ok(waits.length >= 10, `rounds: ${waits.join(', ')} ms apart`);
    assert.ok(Math.max(...waits) <= 100, `waits between rounds: ${waits.join(', ')} ms (at most half of a 200 ms heartbeat)`);
  } finally {
    failFast.disconnect();
    waiting.disconnect();
    server.close();
  }
});

test('a Cluster whose every node keeps hanging up tries again at least twice per heartbeat', async () => {
  // A "node" that hangs up on every connection; each try of the Cluster connects to it once.
  const tries: number[] = [];
  const server = createServer((s) => (tries.push(performance.now()), s.destroy()));
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address() as { port: number };
  const client = connectRedis(loadConfig({ SBX_REDIS_CLUSTER_NODES: `127.0.0.1:${port}`, SBX_HEARTBEAT_MS: '200' }).env, 'cluster-reconnect-test', { waitWhileDown: true });
  client.on('error', () => {});
  try {
    await new Promise((r) => setTimeout(r, 4_000)); // ioredis's own: 100 ms + 2 ms a try, ~170 ms apart by now
    // A try opens two connections a millisecond apart (the slots' refresh and the node's own): one try each.
    const starts = tries.filter((t, i) => i === 0 || t - tries[i - 1]! > 20);
    const late = starts.filter((t) => t > starts[0]! + 3_000);
    const gaps = late.slice(1).map((t, i) => Math.round(t - late[i]!)).sort((a, b) => a - b);
    assert.ok(gaps.length >= 4, `tries in the last second: ${gaps.length + 1}`);
    const median = gaps[Math.floor(gaps.length / 2)]!;
    assert.ok(median <= 125, `gaps between tries in the last second: ${gaps.join(', ')} ms (100 ms, and the loop's latency)`);
  } finally {
    client.disconnect();
    server.close();
  }
});
