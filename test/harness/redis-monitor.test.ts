/**
 * The harness's MONITOR (redis-monitor.ts) against a real redis-server: it starts cleanly while Redis
 * is busy (where ioredis's monitor() can take the first traced line for a stray reply), and it gives
 * back every argument byte for byte.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { waitUntil } from './redis.ts';
import { monitorRedis, type MonitoredCommand } from './redis-monitor.ts';
import { useRedis } from './use-redis.ts';

const redis = useRedis();
/** A command's MONITOR line may come after its reply (another socket): wait for it. */
const sees = (seen: MonitoredCommand[], what: string, match: (c: MonitoredCommand) => boolean) => waitUntil(async () => seen.some(match), 5000, what);

test('MONITOR starts and stops again and again while another client keeps Redis busy', async () => {
  let flooding = true;
  const flood = (async () => {
    for (let i = 0; flooding; i++) await Promise.all(Array.from({ length: 50 }, (_, k) => redis.client.set(`flood:${k}`, String(i))));
  })();
  try {
    for (let round = 0; round < 20; round++) {
      const seen: MonitoredCommand[] = [];
      const monitor = await monitorRedis(redis.server.url, (c) => seen.push(c));
      await redis.client.ping(`round ${round}`);
      await sees(seen, `round ${round}'s ping`, (c) => c.args[0] === 'ping' && c.args[1] === `round ${round}`);
      // The ping shares the flood's connection and may reach Redis between two of its batches: the
      // next batch is seen soon after, not necessarily before the ping.
      await sees(seen, `round ${round}'s flood`, (c) => c.args[0] === 'set' && c.args[1]!.startsWith('flood:'));
      await monitor.stop();
      assert.ok(seen.every((c) => /^\d+\.\d+$/.test(c.time) && c.db === 0 && /^127\.0\.0\.1:\d+$/.test(c.source)), JSON.stringify(seen[0]));
    }
  } finally {
    flooding = false;
    await flood;
  }
});

test('arguments come back exactly: quotes, backslashes, control bytes, NUL and UTF-8; script calls are marked lua', async () => {
  const seen: MonitoredCommand[] = [];
  const monitor = await monitorRedis(redis.server.url, (c) => seen.push(c));
  const value = 'a "quoted" \\ back\nslash\r\t\x07\x08 nul\x00 end ✓ ünïcode';
  await redis.client.set('monitor:key with space', value);
  await redis.client.eval("return redis.call('get', KEYS[1])", 1, 'monitor:key with space');
  await sees(seen, 'the script\'s call', (c) => c.source === 'lua');
  await monitor.stop();
  const set = seen.find((c) => c.args[0] === 'set');
  assert.deepEqual(set?.args, ['set', 'monitor:key with space', value]);
  assert.deepEqual(seen.find((c) => c.source === 'lua')?.args, ['get', 'monitor:key with space']);
  const count = seen.length;
  await redis.client.set('monitor:after', 'x');
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(seen.length, count, 'nothing is reported after stop()');
});

test('a refused MONITOR (a wrong password) rejects with what Redis said', async () => {
  const url = new URL(redis.server.url);
  url.password = 'wrong';
  await assert.rejects(monitorRedis(url.toString(), () => {}), /monitorRedis: .*(AUTH|password)/i);
});
