/**
 * transitionJob-2.lua, a job's end with an API waiting (`waiter`): the script inlines the output in
 * its ping only when it is small (≤ 64 events, ≤ 64 KiB), and must find that out without copying a
 * big output into the script. Before: one `XRANGE … COUNT 65` read up to 65 whole appends (a 16 MiB
 * binary output: ~64 MiB of JSON into Lua, 237 ms with Redis blocked for every tenant and worker, per
 * job's end; 7 such jobs ending together stopped a worker's heartbeats for 2.5–5 s). Asserted by
 * what the script asks Redis for (MONITOR), never by time.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { Redis } from 'ioredis';
import { useRedis } from '../../test/harness/use-redis.ts';
import { monitorRedis, type MonitoredCommand } from '../../test/harness/redis-monitor.ts';

const redis = useRedis();
const SCRIPT = readFileSync(new URL('./lua/transitionJob-2.lua', import.meta.url), 'utf8');

async function endJob(id: string, appends: string[]): Promise<{ xranges: string[][]; pings: string[] }> {
  const r = redis.client;
  const [state, events, inbox] = [`t:{${id}}:state`, `t:{${id}}:events`, `inbox-${id}`];
  await r.hset(state, 'status', 'running', 'doc', '{}', 'waiter', inbox);
  for (const data of appends) await r.xadd(events, '*', 'type', 'stdout', 'data', JSON.stringify({ data }));
  const sub = new Redis(redis.server.url);
  const pings: string[] = [];
  sub.on('message', (_c: string, m: string) => pings.push(m));
  await sub.subscribe(inbox);
  const seen: MonitoredCommand[] = [];
  const monitor = await monitorRedis(redis.server.url, (c) => seen.push(c));
  try {
    assert.equal(await r.eval(SCRIPT, 2, state, events, 'running', 'succeeded', '{"status":"succeeded"}', 'exit', '{}', `n-${id}`, 0, ''), 'ok');
    await r.ping();
    for (let i = 0; i < 100 && pings.length < (appends.length && appends.join('').length <= 65536 ? 2 : 1); i++) await new Promise((ok) => setTimeout(ok, 10));
  } finally {
    await monitor.stop();
    sub.disconnect();
  }
  const xranges = seen.filter((c) => c.source === 'lua' && c.args[0]!.toUpperCase() === 'XRANGE').map((c) => c.args);
  return { xranges, pings };
}

test('a big output at a job\'s end: the script reads one entry past 64 KiB, not 65 appends whole', async () => {
  const { xranges, pings } = await endJob('big', Array.from({ length: 40 }, () => 'x'.repeat(200_000)));
  const counts = xranges.map((a) => Number(a[a.length - 1]));
  assert.ok(counts.every((n) => n === 1), `every read inside the script is of one entry: ${JSON.stringify(xranges)}`);
  assert.equal(xranges.length, 1, 'the first append (200 KB) is already past 64 KiB: no second read');
  assert.deepEqual(pings, ['n-big'], 'only the plain ping: the API reads the output itself');
});

test('control: a small output is still inlined in the waiter\'s ping, every event read', async () => {
  const { pings } = await endJob('small', ['hello\n', 'world\n']);
  assert.equal(pings.length, 2);
  const inline = JSON.parse(pings[0]!.slice(pings[0]!.indexOf('\n') + 1)) as { output: Array<[string, { data: string }]> };
  assert.deepEqual(inline.output, [['stdout', { data: 'hello\n' }], ['stdout', { data: 'world\n' }]]);
  assert.equal(pings[1], 'n-small');
});
