/**
 * `npm run bench:output`: a job's large output end to end. The job writes N MiB of text lines
 * (`yes … | head -c N`, busybox); the bench takes it two ways, each a sequential request:
 *   - `POST /v1/jobs?wait=true`: the document with the whole output in it (the API writes a long
 *     output page by page, api/src/job-output-response.ts), to the answer's last byte;
 *   - `POST /v1/jobs?stream=true`: the output as Server-Sent Events, to the exit event;
 * and, beside them, the same command on the host with its stdout read by this process (spawned and
 * waited for): the command's own time and a pipe, what no service can beat. Interleaved in rounds
 * (host, ?wait, SSE), medians of --runs each, and each way's ratio to the host. Every answer is
 * checked: `succeeded`, and exactly N bytes of stdout.
 * Starts a stack of its own (test harness: private Redis and registry, API and worker as separate
 * processes run from source) and stops it at the end.
 * Flags: --mib 1,4,16 (each at most 16, the largest limits.outputBytes by default)  --runs N (default 10)  --json
 */
import { spawn } from 'node:child_process';
import { parseArgs } from 'node:util';
import { Agent, request } from 'undici';
import { parseServerSentEvents } from '../client/src/sse.ts';
import { ensureTools } from './lib/bench-peers.ts';
import { percentile, r2 } from './lib/stats.ts';

const { values } = parseArgs({
  options: {
    mib: { type: 'string', default: '1,4,16' },
    runs: { type: 'string', default: '10' },
    json: { type: 'boolean', default: false },
  },
});
const MiB = 2 ** 20;
const runs = Number(values.runs);
const sizes = values.mib!.split(',').map((s) => Number(s.trim()));
const log = (s: string) => (values.json ? process.stderr : process.stdout).write(`${s}\n`);
const HOST_BUSYBOX = '/bin/busybox';
const dispatcher = new Agent({ keepAliveTimeout: 60_000, connections: 4 });

/** The job's command: N bytes of 27-byte lines, as a test runner or a build prints them. */
const command = (bytes: number): string[] => ['sh', '-c', `yes abcdefghijklmnopqrstuvwxyz | head -c ${bytes}`];

interface Timed {
  ms: number;
  error?: string;
}

async function viaWait(api: string, image: string, bytes: number): Promise<Timed> {
  const t0 = performance.now();
  const res = await request(`${api}/v1/jobs?wait=true`, { method: 'POST', dispatcher, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ image, command: command(bytes), limits: { outputBytes: 16 * MiB } }) });
  const text = await res.body.text();
  const ms = performance.now() - t0;
  const doc = JSON.parse(text) as { status?: string; output?: { stdout?: string } };
  const got = doc.output?.stdout?.length ?? -1;
  if (res.statusCode !== 200 || doc.status !== 'succeeded' || got !== bytes) return { ms, error: `${res.statusCode} ${doc.status}, ${got} of ${bytes} bytes: ${text.slice(0, 200)}` };
  return { ms };
}

async function viaStream(api: string, image: string, bytes: number): Promise<Timed> {
  const t0 = performance.now();
  const res = await request(`${api}/v1/jobs?stream=true`, { method: 'POST', dispatcher, headers: { 'content-type': 'application/json', accept: 'text/event-stream' }, body: JSON.stringify({ image, command: command(bytes), limits: { outputBytes: 16 * MiB } }) });
  if (res.statusCode !== 200) return { ms: performance.now() - t0, error: `${res.statusCode} ${(await res.body.text()).slice(0, 200)}` };
  let got = 0;
  let exit: { status?: string } | null = null;
  for await (const e of parseServerSentEvents(res.body)) {
    if (e.event === 'stdout') got += (JSON.parse(e.data) as { data: string }).data.length;
    else if (e.event === 'exit') {
      exit = JSON.parse(e.data) as { status?: string };
      break;
    }
  }
  const ms = performance.now() - t0;
  res.body.destroy();
  if (exit?.status !== 'succeeded' || got !== bytes) return { ms, error: `exit ${JSON.stringify(exit)}, ${got} of ${bytes} bytes` };
  return { ms };
}

function onHost(bytes: number): Promise<Timed> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(HOST_BUSYBOX, command(bytes), { stdio: ['ignore', 'pipe', 'ignore'] });
    let got = 0;
    child.stdout.on('data', (b: Buffer) => (got += b.length));
    child.on('error', reject);
    child.on('close', (code) => {
      const ms = performance.now() - t0;
      resolve(code === 0 && got === bytes ? { ms } : { ms, error: `host exit ${code}, ${got} of ${bytes} bytes` });
    });
  });
}

const summary = (xs: number[]) => ({ median_ms: r2(percentile(xs, 50)), p90_ms: r2(percentile(xs, 90)) });

async function main(): Promise<void> {
  if (!(runs >= 1)) throw new Error(`--runs must be a positive number, got ${values.runs}`);
  for (const m of sizes) if (!(m > 0 && m <= 16)) throw new Error(`--mib: each size must be above 0 and at most 16 (MiB), got ${m}`);
  ensureTools({ busybox: 'busybox-static', 'redis-server': 'redis-server', 'docker-registry': 'docker-registry' }, log);
  const { startStack } = await import('../test/harness/stack.ts');
  const stack = await startStack();
  const rows = [];
  let errors = 0;
  let firstError: string | undefined;
  const check = (t: Timed, into: number[]) => {
    into.push(t.ms);
    if (t.error) {
      errors++;
      firstError ??= t.error;
    }
  };
  try {
    const api = stack.apiUrl;
    const image = stack.images.busybox;
    // The image pulled, every code path run once.
    for (const way of [viaWait, viaStream]) {
      const w = await way(api, image, MiB);
      if (w.error) throw new Error(`warm-up job failed: ${w.error}`);
    }
    for (const mib of sizes) {
      const bytes = Math.round(mib * MiB);
      const host: number[] = [];
      const wait: number[] = [];
      const sse: number[] = [];
      check(await onHost(bytes), []);
      check(await viaWait(api, image, bytes), []);
      check(await viaStream(api, image, bytes), []);
      for (let i = 0; i < runs; i++) {
        check(await onHost(bytes), host);
        check(await viaWait(api, image, bytes), wait);
        check(await viaStream(api, image, bytes), sse);
      }
      const row = {
        mib,
        host: summary(host),
        wait: { ...summary(wait), ratio: r2(percentile(wait, 50) / percentile(host, 50)), mb_per_s: r2(bytes / 1e6 / (percentile(wait, 50) / 1000)) },
        sse: { ...summary(sse), ratio: r2(percentile(sse, 50) / percentile(host, 50)), mb_per_s: r2(bytes / 1e6 / (percentile(sse, 50) / 1000)) },
      };
      rows.push(row);
      log(`${mib} MiB of output, n=${runs}: host ${row.host.median_ms} ms; ?wait=true ${row.wait.median_ms} ms (${row.wait.ratio}×, ${row.wait.mb_per_s} MB/s); SSE ${row.sse.median_ms} ms (${row.sse.ratio}×, ${row.sse.mb_per_s} MB/s)`);
    }
  } finally {
    await stack.stop();
    await dispatcher.close();
  }
  if (errors > 0) log(`errors: ${errors}, first: ${firstError}`);
  if (values.json) process.stdout.write(`${JSON.stringify({ runs, command: command(0).join(' ').replace(' 0', ' N'), sizes: rows, errors, date: new Date().toISOString() })}\n`);
  if (errors > 0) process.exitCode = 1;
}

main().catch((e: unknown) => {
  process.stderr.write(`bench:output: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
