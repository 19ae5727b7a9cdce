/**
 * `npm run bench:e2e`: end-to-end figures against a running stack (`npm run up`), warm image cache.
 *   0. a fresh stack: 20 sequential jobs (the image pulled once), then --fresh-runs sequential ones
 *      measured as in 1 below (p50/p90/p99, CPU), then --warm-up jobs at concurrency 8 (default 2000, about
 *      10 s): the steady state the rest measures. V8 compiles the API's and the worker's hot code on
 *      its background threads over the first thousand or so jobs (BENCHMARKS.md, seventeenth
 *      session), which 20 jobs do not reach: both figures are printed, the targets are read at the
 *      steady state.
 *   1. submit with ?wait=true of `true`, sequential: p50/p90/p99 over --runs jobs (>= 200), and
 *      where the time went (medians of the job documents' timings), for all and for the slowest 1 %
 *   2. submit → first stdout event over SSE, sequential, over --sse-runs jobs, two ways in turn: POST
 *      then GET /v1/jobs/{id}/events (the contract's two requests), and POST ?stream=true (one request).
 *      The client is undici's request(), as in 1 and as the sbx client library (client/src/http.ts);
 *      the two requests are also timed with WHATWG fetch(), whose streams add client-side time
 *      (about 1 ms here, BENCHMARKS.md twentieth session), printed beside them.
 *   3. throughput with --concurrency clients submitting ?wait=true for --seconds
 * For phases 1 and 3: the cost per job — CPU ms of the API, the workers, redis-server, the jobs'
 * own processes (the workers' reaped children) and this client, from /proc/<pid>/stat; the whole
 * machine's from /proc/stat; Redis commands and socket reads (≈ round trips) per job from INFO.
 * Every answer is checked (status 200 and `succeeded`); anything else counts as an error.
 * Flags: --api URL  --redis URL  --image REF  --runs N  --sse-runs N  --concurrency N  --seconds S
 *        --fresh-runs N (0: skip)  --warm-up N
 *        --api-key K (or SBX_API_KEY): sent as `Authorization: Bearer K`
 *        --keyed (own stack): the stack has API keys and the bench is one key's tenant, as in a
 *        deployment: authentication, the tenant's quotas and its storage budget on every job (the
 *        rate and count quotas set past what the bench sends, so they are checked but never bite)
 *        --own-stack  --log-level L (own stack; default info, as `npm run up`)  --stack-env K=V,… (own stack)  --json
 *        --curve [--curve-concurrency 1,4,16,64] [--curve-workers 1,2] [--curve-seconds 5]: the scaling
 *        curve instead (jobs/s, p50/p99, CPU and Redis per job at each concurrency, with one worker
 *        process and then more); always on a stack of its own.
 *        --trace N: instead of timing, the Redis commands N sequential ?wait jobs send, per job and by
 *        connection (MONITOR), e.g. `npm run bench:e2e -- --own-stack --trace 20`.
 * --own-stack starts a stack of its own (test harness: private Redis and registry, API and worker
 * as separate processes run from source) and stops it at the end, instead of using `npm run up`'s.
 * Without it the pids come from `.sbx/run/*.pid` (`npm run up`) and Redis from --redis.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { Agent, request, setGlobalDispatcher } from 'undici';
import { parseServerSentEvents } from '../client/src/sse.ts';
import { CostMeter, costPerJob, formatCost, redisPid, traceCommands } from './lib/e2e-cost.ts';
import { inLanes } from './lib/lanes.ts';
import { percentile, r2 } from './lib/stats.ts';

const { values } = parseArgs({
  options: {
    api: { type: 'string', default: process.env.BASE_URL ?? 'http://127.0.0.1:8080' },
    redis: { type: 'string', default: `redis://127.0.0.1:${process.env.SBX_DEV_REDIS_PORT ?? '6399'}` },
    image: { type: 'string', default: '127.0.0.1:5000/demo/busybox:latest' },
    runs: { type: 'string', default: '300' },
    'sse-runs': { type: 'string', default: '100' },
    concurrency: { type: 'string', default: '16' },
    seconds: { type: 'string', default: '10' },
    'own-stack': { type: 'boolean', default: false },
    'log-level': { type: 'string', default: 'info' },
    'stack-env': { type: 'string', default: '' },
    curve: { type: 'boolean', default: false },
    trace: { type: 'string' },
    'curve-concurrency': { type: 'string', default: '1,4,16,64' },
    'curve-workers': { type: 'string', default: '1,2' },
    'curve-seconds': { type: 'string', default: '5' },
    'warm-up': { type: 'string', default: '2000' },
    'api-key': { type: 'string', default: process.env.SBX_API_KEY },
    keyed: { type: 'boolean', default: false },
    'fresh-runs': { type: 'string', default: '200' },
    json: { type: 'boolean', default: false },
  },
});
setGlobalDispatcher(new Agent({ connections: 128, keepAliveTimeout: 30_000 }));
let api = values.api!;
let apiKey = values['api-key'];
let image = values.image!;
let meter: CostMeter;
let meterRedisUrl: string | null = null;
const log = (s: string) => (values.json ? process.stderr : process.stdout).write(`${s}\n`);
const load = () => loadavg().map((x) => Math.round(x * 100) / 100);

interface Answer {
  ms: number;
  ok: boolean;
  detail?: string;
  /** Client clock (Date.now()) when the request went out, and the job document's timings. */
  sentAt?: number;
  doc?: { timings?: { createdAt: string; startedAt: string | null; finishedAt: string | null; queueMs: number | null; pullMs: number | null; startMs: number | null } };
}

/** The request headers (JSON body or none), with the API key when there is one. */
const headers = (json = true): Record<string, string> => ({ ...(json ? { 'content-type': 'application/json' } : {}), ...(apiKey ? { authorization: `Bearer ${apiKey}` } : {}) });

// undici's request(), not fetch(): the client shares the 2 cores with the stack it measures, and
// fetch's WHATWG layer costs it about twice the CPU per request (BENCHMARKS.md, 2026-12-03).
async function submitWait(command: string[]): Promise<Answer> {
  const sentAt = Date.now();
  const t0 = performance.now();
  const res = await request(`${api}/v1/jobs?wait=true`, { method: 'POST', headers: headers(), body: JSON.stringify({ image, command }) });
  const body = (await res.body.json()) as { status?: string; error?: unknown } & Answer['doc'];
  const ms = performance.now() - t0;
  const ok = res.statusCode === 200 && body.status === 'succeeded';
  return { ms, ok, sentAt, doc: body, detail: ok ? undefined : `${res.statusCode} ${JSON.stringify(body).slice(0, 200)}` };
}

/** POST, then GET /v1/jobs/{id}/events, over undici's request() (the client library's transport). */
async function submitToFirstStdout(): Promise<number> {
  const t0 = performance.now();
  const res = await request(`${api}/v1/jobs`, { method: 'POST', headers: headers(), body: JSON.stringify({ image, command: ['echo', 'first'] }) });
  const { id } = (await res.body.json()) as { id: string };
  const ctl = new AbortController();
  return firstStdout((await request(`${api}/v1/jobs/${id}/events`, { headers: headers(false), signal: ctl.signal })).body, ctl, t0);
}

/** The same two requests over WHATWG fetch(), for comparison. */
async function submitToFirstStdoutFetch(): Promise<number> {
  const t0 = performance.now();
  const res = await fetch(`${api}/v1/jobs`, { method: 'POST', headers: headers(), body: JSON.stringify({ image, command: ['echo', 'first'] }) });
  const { id } = (await res.json()) as { id: string };
  const ctl = new AbortController();
  return firstStdout((await fetch(`${api}/v1/jobs/${id}/events`, { headers: headers(false), signal: ctl.signal })).body!, ctl, t0);
}

/** POST ?stream=true: the answer is the job's event stream (one request). */
async function submitStreamToFirstStdout(): Promise<number> {
  const t0 = performance.now();
  const ctl = new AbortController();
  const res = await request(`${api}/v1/jobs?stream=true`, { method: 'POST', headers: headers(), body: JSON.stringify({ image, command: ['echo', 'first'] }), signal: ctl.signal });
  const type = String(res.headers['content-type'] ?? '');
  if (!/text\/event-stream/.test(type)) {
    ctl.abort();
    throw new Error(`POST ?stream=true answered ${res.statusCode} ${type}: this API has no one-request stream`);
  }
  return firstStdout(res.body, ctl, t0);
}

/** ms from `t0` to the first stdout event of an event stream's body; `ctl` closes it. */
async function firstStdout(body: AsyncIterable<Uint8Array | string>, ctl: AbortController, t0: number): Promise<number> {
  try {
    for await (const e of parseServerSentEvents(body)) {
      if (e.event === 'stdout') return performance.now() - t0;
      if (e.event === 'exit') throw new Error(`job ended without stdout: ${e.data}`);
    }
  } finally {
    ctl.abort();
  }
  throw new Error('stream ended without stdout');
}


async function main() {
  if (values.curve) return curve();
  if (!values['own-stack']) {
    const run = new URL('../.sbx/run/', import.meta.url).pathname;
    const pidOf = (n: string) => (existsSync(`${run}${n}.pid`) ? Number(readFileSync(`${run}${n}.pid`, 'utf8').trim()) : undefined);
    meter = new CostMeter({ api: pidOf('api'), 'worker-1': pidOf('worker'), redis: (await redisPid(values.redis!)) ?? pidOf('redis') }, values.redis!);
    meterRedisUrl = values.redis!;
    return measure().finally(() => meter.close());
  }
  const stack = await ownStack(1);
  try {
    await measure();
  } finally {
    await meter.close();
    await stack.stop();
  }
}

/**
 * --keyed: one API key for the bench's tenant (its rate and count quotas past what the bench sends,
 * its storage budget as configured) and an admin key, which the harness uses to see the workers.
 */
function benchKeys(): { env: Record<string, string>; adminKey: string } {
  apiKey = `bench-${randomBytes(16).toString('hex')}`;
  const adminKey = `bench-admin-${randomBytes(16).toString('hex')}`;
  const quota = { submitsPerSecond: 100_000, submitBurst: 100_000, activeJobs: 100_000, requests: 100_000, requestsPerSecond: 100_000, requestBurst: 100_000, streams: 100_000 };
  return { env: { SBX_API_KEYS: JSON.stringify([{ key: apiKey, tenant: 'bench', quota }, { key: adminKey, tenant: 'ops', role: 'admin' }]) }, adminKey };
}

type Stack = Awaited<ReturnType<typeof import('../test/harness/stack.ts').startStack>>;

async function ownStack(workers: number): Promise<Stack> {
  const { startStack } = await import('../test/harness/stack.ts');
  const extra = Object.fromEntries(values['stack-env']!.split(',').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
  const keyed = values.keyed ? benchKeys() : null;
  const stack = await startStack({ workers, ...(keyed ? { adminKey: keyed.adminKey } : {}), env: { SBX_LOG_LEVEL: values['log-level']!, ...keyed?.env, ...extra } });
  api = stack.apiUrl;
  image = stack.images.busybox;
  meterFor(stack);
  return stack;
}

function meterFor(stack: Stack): void {
  const pids: Record<string, number | undefined> = { api: stack.api.child.pid };
  stack.workers.forEach((w, i) => (pids[`worker-${i + 1}`] = w.child.pid));
  // The harness's standalone redis-server (RunningRedis) has its process.
  pids.redis = (stack.redis as { process?: { pid?: number } }).process?.pid;
  meter = new CostMeter(pids, stack.env.SBX_REDIS_URL ?? null);
  meterRedisUrl = stack.env.SBX_REDIS_URL ?? null;
}

async function warmUp(): Promise<void> {
  const health = await fetch(`${api}/readyz`).catch(() => null);
  if (!health?.ok) throw new Error(`no ready API at ${api}: start the stack with npm run up`);
  // The image is pulled once, every code path runs.
  for (let i = 0; i < 20; i++) {
    const w = await submitWait(['true']);
    if (!w.ok) throw new Error(`warm-up job failed: ${w.detail}`);
  }
}

/** --warm-up jobs by 8 clients at once: the stack's code compiled by V8's optimizing tiers. */
async function warmToSteadyState(total = Number(values['warm-up'])): Promise<{ jobs: number; seconds: number }> {
  const t0 = performance.now();
  await inLanes(8, total, async () => {
    const w = await submitWait(['true']);
    if (!w.ok) throw new Error(`warm-up job failed: ${w.detail}`);
  });
  return { jobs: total, seconds: r2((performance.now() - t0) / 1000) };
}

/** Medians of where a sequential job's time went (ms), from the job documents' timings. */
function breakdown(answers: Answer[]) {
  const cols: Record<string, number[]> = { to_created: [], queue: [], pull: [], start: [], run: [], after_finish: [] };
  for (const a of answers) {
    const t = a.doc?.timings;
    if (!t || !a.sentAt || !t.startedAt || !t.finishedAt) continue;
    const created = Date.parse(t.createdAt);
    const finished = Date.parse(t.finishedAt);
    cols.to_created!.push(created - a.sentAt);
    cols.queue!.push(t.queueMs ?? NaN);
    cols.pull!.push(t.pullMs ?? NaN);
    cols.start!.push(t.startMs ?? NaN);
    cols.run!.push(finished - Date.parse(t.startedAt));
    cols.after_finish!.push(a.sentAt + a.ms - finished);
  }
  return Object.fromEntries(Object.entries(cols).map(([k, v]) => [k, r2(percentile(v, 50))]));
}

async function sequential(runs: number) {
  const answers: Answer[] = [];
  const before = await meter.snapshot();
  for (let i = 0; i < runs; i++) answers.push(await submitWait(['true']));
  const cost = costPerJob(before, await meter.snapshot(), runs);
  const lat = answers.map((a) => a.ms);
  const errors = answers.filter((a) => !a.ok).length;
  // The tail: the slowest 1 % (at least 2), and where their time went, to tell what makes the p99.
  const slowest = [...answers].sort((a, b) => b.ms - a.ms).slice(0, Math.max(2, Math.ceil(runs / 100)));
  const tail = { jobs: slowest.length, from_ms: r2(slowest.at(-1)?.ms ?? NaN), breakdown_ms: breakdown(slowest), each_ms: slowest.map((a) => ({ total: r2(a.ms), ...breakdown([a]) })) };
  return { runs, p50_ms: r2(percentile(lat, 50)), p90_ms: r2(percentile(lat, 90)), p99_ms: r2(percentile(lat, 99)), errors, breakdown_ms: breakdown(answers), tail, cost };
}

async function throughput(concurrency: number, seconds: number) {
  const deadline = performance.now() + seconds * 1000;
  let done = 0;
  let errors = 0;
  let firstError: string | undefined;
  const lat: number[] = [];
  const before = await meter.snapshot();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) {
        const r = await submitWait(['true']).catch((e: Error): Answer => ({ ms: 0, ok: false, detail: e.message }));
        done++;
        lat.push(r.ms);
        if (!r.ok) {
          errors++;
          firstError ??= r.detail;
        }
      }
    }),
  );
  const elapsed = (performance.now() - t0) / 1000;
  const cost = costPerJob(before, await meter.snapshot(), done);
  return { concurrency, jobs: done, seconds: r2(elapsed), jobs_per_s: r2(done / elapsed), p50_ms: r2(percentile(lat, 50)), p99_ms: r2(percentile(lat, 99)), errors, first_error: firstError, cost };
}

async function measure() {
  await warmUp();
  if (values.trace !== undefined) {
    const url = meterRedisUrl;
    if (!url) throw new Error('--trace needs Redis: --own-stack or --redis URL');
    const t = await traceCommands(url, Number(values.trace) || 20, () => submitWait(['true']));
    for (const [name, c] of Object.entries(t.per_job)) log(`${name.padEnd(18)} ${String(c.total).padStart(6)}  ${Object.entries(c.commands).map(([k, v]) => `${k} ${v}`).join(', ')}`);
    log(`top-level Redis commands per ?wait=true job: ${t.top_level} (+ ${t.in_scripts} inside scripts), over ${t.jobs} sequential jobs`);
    if (values.json) process.stdout.write(`${JSON.stringify({ trace: t, date: new Date().toISOString() })}\n`);
    return;
  }
  const loadBefore = load();
  const freshRuns = Number(values['fresh-runs']);
  const fresh = freshRuns > 0 ? await sequential(freshRuns) : null;
  if (fresh) {
    log(`fresh stack (after 20 jobs), ?wait=true of \`true\`, sequential: n=${fresh.runs} p50 ${fresh.p50_ms} ms  p90 ${fresh.p90_ms} ms  p99 ${fresh.p99_ms} ms  errors ${fresh.errors}`);
    log(formatCost(fresh.cost));
  }
  const warm = await warmToSteadyState();
  log(`warm-up to the steady state: ${warm.jobs} jobs at concurrency 8 in ${warm.seconds} s`);
  const waitStats = await sequential(Number(values.runs));
  log(`submit ?wait=true of \`true\`, sequential: n=${waitStats.runs} p50 ${waitStats.p50_ms} ms  p90 ${waitStats.p90_ms} ms  p99 ${waitStats.p99_ms} ms  errors ${waitStats.errors}`);
  log(`  where the time went (medians, ms): ${Object.entries(waitStats.breakdown_ms).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  const phases = (b: Record<string, number>) => Object.entries(b).map(([k, v]) => `${k} ${v}`).join(', ');
  log(`  the slowest ${waitStats.tail.jobs} (from ${waitStats.tail.from_ms} ms), medians: ${phases(waitStats.tail.breakdown_ms)}`);
  for (const { total, ...b } of waitStats.tail.each_ms) log(`    ${total} ms: ${phases(b)}`);
  log(formatCost(waitStats.cost));

  const sseRuns = Number(values['sse-runs']);
  const first: number[] = [];
  const firstFetch: number[] = [];
  const firstOne: number[] = [];
  for (let i = 0; i < sseRuns; i++) {
    first.push(await submitToFirstStdout());
    firstFetch.push(await submitToFirstStdoutFetch());
    firstOne.push(await submitStreamToFirstStdout());
  }
  const stats = (xs: number[]) => ({ runs: xs.length, p50_ms: r2(percentile(xs, 50)), p90_ms: r2(percentile(xs, 90)), p99_ms: r2(percentile(xs, 99)) });
  const sseStats = stats(first);
  const sseOneStats = stats(firstOne);
  const sseFetchStats = stats(firstFetch);
  log(`submit → first stdout event over SSE (POST, then GET /events): n=${sseRuns} p50 ${sseStats.p50_ms} ms  p90 ${sseStats.p90_ms} ms  p99 ${sseStats.p99_ms} ms`);
  log(`  the same two requests with WHATWG fetch() as the client: p50 ${sseFetchStats.p50_ms} ms  p90 ${sseFetchStats.p90_ms} ms  p99 ${sseFetchStats.p99_ms} ms`);
  log(`submit → first stdout event over SSE (POST ?stream=true, one request): n=${sseRuns} p50 ${sseOneStats.p50_ms} ms  p90 ${sseOneStats.p90_ms} ms  p99 ${sseOneStats.p99_ms} ms`);

  const tputStats = await throughput(Number(values.concurrency), Number(values.seconds));
  log(`throughput at concurrency ${tputStats.concurrency}: ${tputStats.jobs} jobs in ${tputStats.seconds} s = ${tputStats.jobs_per_s} jobs/s  (latency p50 ${tputStats.p50_ms} ms, p99 ${tputStats.p99_ms} ms)  errors ${tputStats.errors}${tputStats.first_error ? ` first: ${tputStats.first_error}` : ''}`);
  log(formatCost(tputStats.cost));
  const loadavgs = { before: loadBefore, after: load() };
  log(`load average (1, 5, 15 min) before ${loadavgs.before.join(' ')}, after ${loadavgs.after.join(' ')}`);
  if (values.json) process.stdout.write(`${JSON.stringify({ warm_up: warm, wait_fresh: fresh, wait: waitStats, first_stdout: sseStats, first_stdout_fetch: sseFetchStats, first_stdout_one_request: sseOneStats, throughput: tputStats, loadavg: loadavgs, date: new Date().toISOString() })}\n`);
  if (tputStats.errors + waitStats.errors + (fresh?.errors ?? 0) > 0) process.exitCode = 1;
}

/** Jobs/s and latency at each concurrency, with one worker process and then more (issue 13, item 4). */
async function curve() {
  const levels = values['curve-concurrency']!.split(',').map(Number);
  const workerCounts = values['curve-workers']!.split(',').map(Number).sort((a, b) => a - b);
  const seconds = Number(values['curve-seconds']);
  const stack = await ownStack(workerCounts[0]!);
  const rows: Array<{ workers: number; concurrency: number; jobs_per_s: number; p50_ms: number; p99_ms: number; errors: number; cpu_ms_per_job: number; redis_commands_per_job: number | null; loadavg: number[] }> = [];
  try {
    await warmUp();
    await warmToSteadyState();
    for (const workers of workerCounts) {
      if (stack.workers.length < workers) {
        while (stack.workers.length < workers) await stack.startWorker();
        // The workers just started are measured warm too, as the first ones are: --warm-up jobs for
        // each worker (they share them), so that each new one serves about as many as the first did.
        await warmToSteadyState(Number(values['warm-up']) * workers);
      }
      await meter.close(); // the new meter counts every worker process
      meterFor(stack);
      for (const concurrency of levels) {
        const t = await throughput(concurrency, seconds);
        rows.push({ workers, concurrency, jobs_per_s: t.jobs_per_s, p50_ms: t.p50_ms, p99_ms: t.p99_ms, errors: t.errors, cpu_ms_per_job: t.cost.stack_cpu_ms, redis_commands_per_job: t.cost.redis?.commands ?? null, loadavg: load() });
        log(`workers ${workers}  concurrency ${String(concurrency).padStart(3)}: ${String(t.jobs_per_s).padStart(7)} jobs/s  p50 ${t.p50_ms} ms  p99 ${t.p99_ms} ms  errors ${t.errors}  stack CPU ${t.cost.stack_cpu_ms} ms/job${t.first_error ? `  first error: ${t.first_error}` : ''}`);
      }
    }
  } finally {
    await meter.close();
    await stack.stop();
  }
  log('\n| workers | concurrency | jobs/s | p50 ms | p99 ms | errors | stack CPU ms/job | Redis cmds/job | load (1 min) |');
  log('| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const r of rows) log(`| ${r.workers} | ${r.concurrency} | ${r.jobs_per_s} | ${r.p50_ms} | ${r.p99_ms} | ${r.errors} | ${r.cpu_ms_per_job} | ${r.redis_commands_per_job ?? '–'} | ${r.loadavg[0]} |`);
  if (values.json) process.stdout.write(`${JSON.stringify({ curve: rows, seconds, date: new Date().toISOString() })}\n`);
  if (rows.some((r) => r.errors > 0)) process.exitCode = 1;
}

main().catch((e) => {
  process.stderr.write(`bench:e2e: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
