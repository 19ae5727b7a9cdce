/**
 * `npm run bench:e2e`: end-to-end figures against a running stack (`npm run up`), warm image cache.
 *   1. submit with ?wait=true of `true`, sequential: p50/p90/p99 over --runs jobs (>= 200)
 *   2. submit → first stdout event over SSE, sequential, over --sse-runs jobs
 *   3. throughput with --concurrency clients submitting ?wait=true for --seconds
 * Every answer is checked (status 200 and `succeeded`); anything else counts as an error.
 * Flags: --api URL  --image REF  --runs N  --sse-runs N  --concurrency N  --seconds S  --own-stack  --json
 * --own-stack starts a stack of its own (test harness: private Redis and registry, API and worker
 * as separate processes) and stops it at the end, instead of using `npm run up`'s.
 */
import { parseArgs } from 'node:util';
import { Agent, setGlobalDispatcher } from 'undici';
import { parseServerSentEvents } from '../client/src/sse.ts';

const { values } = parseArgs({
  options: {
    api: { type: 'string', default: process.env.BASE_URL ?? 'http://127.0.0.1:8080' },
    image: { type: 'string', default: '127.0.0.1:5000/demo/busybox:latest' },
    runs: { type: 'string', default: '300' },
    'sse-runs': { type: 'string', default: '100' },
    concurrency: { type: 'string', default: '16' },
    seconds: { type: 'string', default: '10' },
    'own-stack': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
  },
});
setGlobalDispatcher(new Agent({ connections: 64, keepAliveTimeout: 30_000 }));
let api = values.api!;
let image = values.image!;
const log = (s: string) => (values.json ? process.stderr : process.stdout).write(`${s}\n`);

async function submitWait(command: string[]): Promise<{ ms: number; ok: boolean; detail?: string }> {
  const t0 = performance.now();
  const res = await fetch(`${api}/v1/jobs?wait=true`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ image, command }) });
  const body = (await res.json()) as { status?: string; error?: unknown };
  const ms = performance.now() - t0;
  const ok = res.status === 200 && body.status === 'succeeded';
  return { ms, ok, detail: ok ? undefined : `${res.status} ${JSON.stringify(body).slice(0, 200)}` };
}

async function submitToFirstStdout(): Promise<number> {
  const t0 = performance.now();
  const res = await fetch(`${api}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ image, command: ['echo', 'first'] }) });
  const { id } = (await res.json()) as { id: string };
  const ctl = new AbortController();
  const events = await fetch(`${api}/v1/jobs/${id}/events`, { signal: ctl.signal });
  try {
    for await (const e of parseServerSentEvents(events.body!)) {
      if (e.event === 'stdout') return performance.now() - t0;
      if (e.event === 'exit') throw new Error(`job ended without stdout: ${e.data}`);
    }
  } finally {
    ctl.abort();
  }
  throw new Error('stream ended without stdout');
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
};
const r2 = (x: number) => Math.round(x * 100) / 100;

async function main() {
  if (!values['own-stack']) return measure();
  const { startStack } = await import('../test/harness/stack.ts');
  const stack = await startStack();
  api = stack.apiUrl;
  image = stack.images.busybox;
  try {
    await measure();
  } finally {
    await stack.stop();
  }
}

async function measure() {
  const health = await fetch(`${api}/readyz`).catch(() => null);
  if (!health?.ok) throw new Error(`no ready API at ${api}: start the stack with npm run up`);
  // Warm up: the image is pulled once, code paths are JITed.
  for (let i = 0; i < 20; i++) {
    const w = await submitWait(['true']);
    if (!w.ok) throw new Error(`warm-up job failed: ${w.detail}`);
  }

  const runs = Number(values.runs);
  const lat: number[] = [];
  let seqErrors = 0;
  for (let i = 0; i < runs; i++) {
    const r = await submitWait(['true']);
    lat.push(r.ms);
    if (!r.ok) seqErrors++;
  }
  const waitStats = { runs, p50_ms: r2(pct(lat, 50)), p90_ms: r2(pct(lat, 90)), p99_ms: r2(pct(lat, 99)), errors: seqErrors };
  log(`submit ?wait=true of \`true\`, sequential: n=${runs} p50 ${waitStats.p50_ms} ms  p90 ${waitStats.p90_ms} ms  p99 ${waitStats.p99_ms} ms  errors ${seqErrors}`);

  const sseRuns = Number(values['sse-runs']);
  const first: number[] = [];
  for (let i = 0; i < sseRuns; i++) first.push(await submitToFirstStdout());
  const sseStats = { runs: sseRuns, p50_ms: r2(pct(first, 50)), p90_ms: r2(pct(first, 90)), p99_ms: r2(pct(first, 99)) };
  log(`submit → first stdout event over SSE: n=${sseRuns} p50 ${sseStats.p50_ms} ms  p90 ${sseStats.p90_ms} ms  p99 ${sseStats.p99_ms} ms`);

  const concurrency = Number(values.concurrency);
  const deadline = performance.now() + Number(values.seconds) * 1000;
  let done = 0;
  let errors = 0;
  let firstError: string | undefined;
  const tput: number[] = [];
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) {
        const r = await submitWait(['true']).catch((e: Error) => ({ ms: 0, ok: false, detail: e.message }));
        done++;
        tput.push(r.ms);
        if (!r.ok) {
          errors++;
          firstError ??= r.detail;
        }
      }
    }),
  );
  const elapsed = (performance.now() - t0) / 1000;
  const tputStats = { concurrency, jobs: done, seconds: r2(elapsed), jobs_per_s: r2(done / elapsed), p50_ms: r2(pct(tput, 50)), p99_ms: r2(pct(tput, 99)), errors };
  log(`throughput at concurrency ${concurrency}: ${tputStats.jobs} jobs in ${tputStats.seconds} s = ${tputStats.jobs_per_s} jobs/s  (latency p50 ${tputStats.p50_ms} ms, p99 ${tputStats.p99_ms} ms)  errors ${errors}${firstError ? ` first: ${firstError}` : ''}`);
  if (values.json) process.stdout.write(`${JSON.stringify({ wait: waitStats, first_stdout: sseStats, throughput: tputStats })}\n`);
  if (errors + seqErrors > 0) process.exitCode = 1;
}

main().catch((e) => {
  process.stderr.write(`bench:e2e: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
