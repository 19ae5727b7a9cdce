/**
 * P53 against a real redis-server: a tenant makes at most its quota's `requestsPerSecond` requests per
 * second on an API process (bursts of `requestBurst`). Past it a request is 429 rate_limited with the
 * wait in Retry-After, before anything is read from Redis; other tenants go on. Without the bound one
 * tenant polling its job as fast as the API answers took Redis (shared by every tenant) from the others.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createTestApp } from '../../../test/harness/api-app.ts';
import { startRedis, waitUntil, type RunningRedis } from '../../../test/harness/redis.ts';
import { monitorRedis } from '../../../test/harness/redis-monitor.ts';
import type { JobDocument } from '../../../core/src/job-spec.ts';

const A = 'aaaaaaaaaaaaaaaa1';
const B = 'bbbbbbbbbbbbbbbb1';
const RATE = 5;
const BURST = 10;
const FLOOD = 200;

let redis: RunningRedis;
let t: ReturnType<typeof createTestApp>;
before(async () => {
  redis = await startRedis();
  t = createTestApp(redis, {
    SBX_API_KEYS: JSON.stringify([{ key: A, tenant: 'team-a', quota: { requestsPerSecond: RATE, requestBurst: BURST } }, { key: B, tenant: 'team-b' }]),
  });
});
after(async () => {
  await t?.close();
  await redis?.stop();
});

const get = (path: string, key: string) => t.app.request(path, { headers: { authorization: `Bearer ${key}` } });

/**
 * The commands Redis ran while `work` ran (MONITOR), less those scripts ran and the API's own in the
 * background: the reports of the tenant's admitted requests to its shared bucket (every 100 ms,
 * api/src/tenant-request-rate.ts) and the fleet view's reads after a submission (every 100 ms for 5 s,
 * core/src/placement/fleet-snapshot.ts). Those are as many as `work` is long, not as it has requests:
 * Redis's own count of every command took them in, past the bound once a busy host made the flood
 * last about 0.7 s (on a loaded CI machine it took 4 s).
 */
async function requestCommands<T>(work: () => Promise<T>): Promise<{ result: T; commands: string[][] }> {
  const { keys, queue } = t.deps;
  const background = ([name, key, ...rest]: string[]) =>
    (name!.startsWith('eval') && rest.includes(keys.tenantRequestRate('team-a'))) || (name === 'hgetall' && key === keys.workerCapacity()) || (name === 'zrange' && key === queue.waitingKey);
  const end = `end of the flood ${Math.random()}`;
  const marker = redis.client();
  await marker.ping();
  let ended = false;
  const commands: string[][] = [];
  const monitor = await monitorRedis(redis.url, ({ source, args }) => {
    const command = [args[0]!.toLowerCase(), ...args.slice(1)];
    if (command[0] === 'echo' && command[1] === end) ended = true;
    else if (!ended && source !== 'lua' && !background(command)) commands.push(command);
  });
  try {
    const result = await work();
    await marker.echo(end); // MONITOR reports in order: every command before it is in once it is
    await waitUntil(async () => ended, 10_000, 'MONITOR to report the end of the flood');
    return { result, commands };
  } finally {
    await monitor.stop();
  }
}

test('past its rate a tenant\'s requests are 429 with the wait in Retry-After and reach no Redis; other tenants go on; the rate comes back', async () => {
  const submitted = await t.app.request('/v1/jobs', {
    method: 'POST',
    headers: { authorization: `Bearer ${A}`, 'content-type': 'application/json' },
    body: JSON.stringify({ image: '127.0.0.1:5000/test/busybox:latest', command: ['true'] }),
  });
  assert.equal(submitted.status, 202, await submitted.clone().text());
  const { id } = (await submitted.json()) as JobDocument;

  let seconds = 0;
  const { result: answers, commands: sent } = await requestCommands(async () => {
    const started = performance.now();
    const all = await Promise.all(Array.from({ length: FLOOD }, () => get(`/v1/jobs/${id}`, A)));
    seconds = (performance.now() - started) / 1000;
    return all;
  });
  const commands = sent.length;
  const ok = answers.filter((r) => r.status === 200).length;
  const refused = answers.filter((r) => r.status === 429);
  // The burst less the submission's token, plus what the rate refilled while the flood ran.
  const allowed = BURST - 1 + Math.ceil(RATE * seconds);
  assert.ok(ok >= BURST - 1 && ok <= allowed, `${ok} of ${FLOOD} answered in ${seconds.toFixed(3)} s; at most ${allowed} may be`);
  assert.equal(ok + refused.length, FLOOD, 'every other answer is 429');
  const first = refused[0]!;
  const body = (await first.json()) as { error: { code: string; message: string } };
  assert.equal(body.error.code, 'rate_limited');
  assert.match(body.error.message, /tenant team-a may make 5 requests per second on this API server \(bursts of 10\), its quota \(requestsPerSecond\); retry in 1 s/);
  assert.equal(first.headers.get('retry-after'), '1', 'the next token is at most 0.2 s away: Retry-After rounds up to 1 s');
  // Each answered GET reads Redis; the refused ones read nothing (before the bound: at least one command each).
  assert.ok(commands <= ok * 4, `Redis ran ${commands} commands for ${ok} answered and ${refused.length} refused requests: ${[...new Set(sent.map((c) => c[0]))].join(', ')}`);

  const other = await get(`/v1/jobs`, B);
  assert.equal(other.status, 200, 'another tenant is not held back by team-a\'s rate');
  // Still past its rate: more at once than a full bucket holds (however long the flood took on a
  // busy machine, and however many tokens came back meanwhile) meet 429s.
  const more = await Promise.all(Array.from({ length: BURST * 3 }, () => get(`/v1/jobs/${id}`, A)));
  assert.ok(more.some((r) => r.status === 429), `still past its rate: ${more.filter((r) => r.status === 429).length} of ${more.length} at once refused`);

  await new Promise((r) => setTimeout(r, 1000)); // Retry-After
  const again = await get(`/v1/jobs/${id}`, A);
  assert.equal(again.status, 200, 'after Retry-After the tenant\'s requests are answered again');
});

test('behind a load balancer the rate holds across the API processes together, not on each', async (ctx) => {
  // A second API process on the same Redis: the tenant's requests alternate between the two.
  const second = createTestApp(redis, { SBX_API_KEYS: JSON.stringify([{ key: A, tenant: 'team-c', quota: { requestsPerSecond: RATE, requestBurst: BURST } }]) });
  const first = createTestApp(redis, { SBX_API_KEYS: JSON.stringify([{ key: A, tenant: 'team-c', quota: { requestsPerSecond: RATE, requestBurst: BURST } }]) });
  try {
    const SECONDS = 4;
    const started = performance.now();
    let answered = 0;
    let refused = 0;
    let retryAfter: string | null = null;
    let message = '';
    for (let i = 0; performance.now() - started < SECONDS * 1000; i++) {
      const res = await (i % 2 ? second : first).app.request('/v1/jobs', { headers: { authorization: `Bearer ${A}` } });
      if (res.status === 200) answered++;
      else {
        assert.equal(res.status, 429);
        refused++;
        const body = (await res.json()) as { error: { message: string } };
        if (/across the API servers together/.test(body.error.message)) [message, retryAfter] = [body.error.message, res.headers.get('retry-after')];
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    // Each process alone would answer its burst and its rate: 2 × (10 + 5 × 4) = 60. Together they
    // may overshoot by what each admits before the first report (a burst each).
    const most = 2 * BURST + RATE * SECONDS;
    ctx.diagnostic(`${answered} answered, ${refused} refused in ${SECONDS} s`);
    assert.ok(answered <= most, `${answered} answered (${refused} refused) in ${SECONDS} s by two API processes; at most ${most} may be`);
    assert.ok(answered >= BURST + RATE, `only ${answered} answered: the tenant is refused more than its rate`);
    assert.match(message, /^tenant team-c may make 5 requests per second \(bursts of 10\) across the API servers together, its quota \(requestsPerSecond\); retry in \d s$/);
    assert.match(retryAfter ?? '', /^[1-3]$/);
  } finally {
    await Promise.all([first.close(), second.close()]);
  }
});
