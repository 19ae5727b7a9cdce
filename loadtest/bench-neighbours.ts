/**
 * `npm run bench:neighbours`: what one tenant's jobs do to another tenant's jobs and to the worker on
 * the same host (noisy neighbours), within the limits the service allows a job.
 *
 * A stack of its own (test harness: private Redis and registry, API, one worker with its /metrics
 * on a port) with two tenants. For each phase, the attacker keeps `slots - 1` jobs running (each a
 * lane that submits its next job with `?wait=true` as soon as the last one ended), so the victim
 * always finds a free slot: what is measured is interference, not queueing. Meanwhile:
 *   - the victim runs `true` with `?wait=true`, sequentially, --runs times (latency p50/p99); with
 *     `--victim busy` a CPU-bound job instead (a 100,000-step shell loop, ~120 ms alone): what the
 *     attacker takes of the CPU (worker/src/tenant-cpu-shares.ts) rather than of the service's path;
 *   - the bench GETs the worker's /metrics every 100 ms (its event loop: the answer's latency);
 *   - the bench reads the worker's `lastHeartbeat` every 100 ms from GET /v1/workers (the largest
 *     gap between two heartbeats seen; the stack's SBX_HEARTBEAT_MS is 500).
 * The first phase is the victim alone (the baseline); every other phase's figures are also given
 * as a ratio to it. Medians over --rounds rounds of all phases (rotating order is not needed: the
 * baseline is measured in every round).
 * Flags: --runs N (victim jobs per phase, default 40)  --rounds N (default 1)  --only a,b  --victim true|busy  --json
 */
import { parseArgs } from 'node:util';
import { Agent, request } from 'undici';
import { startStack, startWorkerWithMetrics } from '../test/harness/stack.ts';
import { percentile, r2, median } from './lib/stats.ts';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '40' },
    rounds: { type: 'string', default: '1' },
    only: { type: 'string', default: '' },
    slots: { type: 'string', default: '' },
    victim: { type: 'string', default: 'true' },
    json: { type: 'boolean', default: false },
  },
});
const VICTIMS: Record<string, string[]> = { true: ['true'], busy: ['sh', '-c', 'i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done'] };
const VICTIM = VICTIMS[values.victim!] ?? (() => { throw new Error(`--victim must be one of ${Object.keys(VICTIMS).join(', ')}, not ${values.victim}`); })();
const MiB = 2 ** 20;
const GiB = 2 ** 30;
const log = (s: string) => (values.json ? process.stderr : process.stdout).write(`${s}\n`);
const dispatcher = new Agent({ keepAliveTimeout: 60_000, connections: 64 });

const KEY_ATTACKER = 'key-bench-attacker-aaaaaaaaaaaaaaaa';
const KEY_VICTIM = 'key-bench-victim-bbbbbbbbbbbbbbbbbb';
const KEY_ADMIN = 'key-bench-admin-cccccccccccccccccc';

interface Attack {
  name: string;
  command: string[];
  limits: Record<string, number>;
}
const sh = (s: string) => ['sh', '-c', s];
/** Every attack within the default SBX_MAX_* (cpus = the host's CPUs, pids 4096, memory 4 GiB, disk 4 GiB, output 16 MiB). */
const ATTACKS: Attack[] = [
  { name: 'cpu', command: sh('for i in 1 2 3 4; do while :; do :; done & done; wait'), limits: { cpus: 2 } },
  { name: 'forks', command: sh('while :; do sleep 100 & done 2>/dev/null'), limits: { pids: 4096, memoryBytes: 1 * GiB } },
  { name: 'memory-anon', command: sh('while :; do head -c 1000000000 /dev/zero | sort >/dev/null; done'), limits: { memoryBytes: 1 * GiB } },
  { name: 'disk-flood', command: sh('while :; do dd if=/dev/zero of=/tmp/f bs=1M count=900 2>/dev/null; rm -f /tmp/f; done'), limits: { memoryBytes: 1 * GiB, diskBytes: 1 * GiB } },
  { name: 'fsync', command: sh('while :; do dd if=/dev/zero of=/tmp/f bs=4k count=1 conv=fsync 2>/dev/null; sync; done'), limits: {} },
  { name: 'output-lines', command: ['yes', 'abcdefghijklmnopqrstuvwxyz'], limits: { outputBytes: 16 * MiB } },
  { name: 'output-binary', command: ['cat', '/dev/urandom'], limits: { outputBytes: 16 * MiB } },
  { name: 'small-files', command: sh('i=0; while :; do : > /tmp/f$i; i=$((i+1)); done'), limits: { diskBytes: 1 * GiB, memoryBytes: 1 * GiB } },
  { name: 'stopped', command: sh('for i in 1 2 3; do sleep 100 & done; kill -STOP $$'), limits: {} },
];

type Posted = { ms: number; status: number; doc: { status?: string; error?: { code?: string } } };

async function post(api: string, key: string, body: unknown): Promise<Posted> {
  const t0 = performance.now();
  const res = await request(`${api}/v1/jobs?wait=true`, { method: 'POST', dispatcher, headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` }, body: JSON.stringify(body) });
  const text = await res.body.text();
  const ms = performance.now() - t0;
  let doc = {};
  try {
    doc = JSON.parse(text);
  } catch {
    // not JSON: counted by status
  }
  return { ms, status: res.statusCode, doc };
}

/**
 * An attacker's job, its whole answer read as the attacker would (its output in it) but not parsed:
 * its status and error code come from the document's start, which precedes `output`. Parsing 7
 * answers of 16 MiB of binary output (~40 MB of JSON each) blocked this process's event loop for
 * seconds, and its watchers then read that as the worker's stall (a "heartbeat gap" of 4 s).
 */
async function postAttacker(api: string, body: unknown): Promise<Posted> {
  const t0 = performance.now();
  const res = await request(`${api}/v1/jobs?wait=true`, { method: 'POST', dispatcher, headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY_ATTACKER}` }, body: JSON.stringify(body) });
  let head = '';
  for await (const chunk of res.body) if (head.length < 64 * 1024) head += (chunk as Buffer).toString('latin1');
  const start = head.split('"output"')[0]!;
  const doc = { status: /"status":"(\w+)"/.exec(start)?.[1] ?? 'unreadable', error: { code: /"error":\{"code":"(\w+)"/.exec(start)?.[1] } };
  return { ms: performance.now() - t0, status: res.statusCode, doc };
}

interface PhaseResult {
  name: string;
  p50: number;
  p99: number;
  errors: number;
  metricsP50: number;
  metricsP99: number;
  metricsMax: number;
  heartbeatGapMax: number;
  attackerJobs: number;
  attackerOutcomes: Record<string, number>;
}

async function phase(api: string, metricsUrl: string, image: string, lanes: number, attack: Attack | null, runs: number): Promise<PhaseResult> {
  let stop = false;
  const outcomes: Record<string, number> = {};
  let attackerJobs = 0;
  const laneRuns = attack
    ? Array.from({ length: lanes }, async () => {
        while (!stop) {
          const r = await postAttacker(api, { image, command: attack.command, limits: { timeoutMs: 8000, ...attack.limits } }).catch((e): Posted => ({ ms: 0, status: 0, doc: { status: String(e) } }));
          attackerJobs++;
          const k = `${r.status} ${r.doc.status}${r.doc.error?.code ? `/${r.doc.error.code}` : ''}`;
          outcomes[k] = (outcomes[k] ?? 0) + 1;
          if (r.status !== 200) await new Promise((ok) => setTimeout(ok, 200));
        }
      })
    : [];
  // Watchers: the worker's /metrics latency and its heartbeats as Redis holds them.
  const metricsMs: number[] = [];
  const beats: number[] = [];
  let watching = true;
  const watchMetrics = (async () => {
    while (watching) {
      const t0 = performance.now();
      await request(metricsUrl, { dispatcher }).then((r) => r.body.text()).catch(() => '');
      metricsMs.push(performance.now() - t0);
      await new Promise((ok) => setTimeout(ok, 100));
    }
  })();
  const watchBeats = (async () => {
    while (watching) {
      const r = await request(`${api}/v1/workers`, { dispatcher, headers: { authorization: `Bearer ${KEY_ADMIN}` } }).then((x) => x.body.json() as Promise<{ items: Array<{ lastHeartbeat: string }> }>).catch(() => null);
      const at = Date.parse(r?.items[0]?.lastHeartbeat ?? '');
      if (Number.isFinite(at) && at !== beats.at(-1)) beats.push(at);
      await new Promise((ok) => setTimeout(ok, 100));
    }
  })();
  if (attack) await new Promise((ok) => setTimeout(ok, 1500)); // the attacker's jobs under way
  const lat: number[] = [];
  let errors = 0;
  for (let i = 0; i < runs; i++) {
    const r = await post(api, KEY_VICTIM, { image, command: VICTIM });
    if (r.status !== 200 || r.doc.status !== 'succeeded') errors++;
    lat.push(r.ms);
  }
  stop = true;
  await Promise.all(laneRuns);
  watching = false;
  await Promise.all([watchMetrics, watchBeats]);
  const gaps = beats.slice(1).map((b, i) => b - beats[i]!);
  return {
    name: attack?.name ?? 'alone',
    p50: r2(percentile(lat, 50)), p99: r2(percentile(lat, 99)), errors,
    metricsP50: r2(percentile(metricsMs, 50)), metricsP99: r2(percentile(metricsMs, 99)), metricsMax: r2(Math.max(...metricsMs)),
    heartbeatGapMax: gaps.length ? Math.max(...gaps) : NaN,
    attackerJobs, attackerOutcomes: outcomes,
  };
}

const only = values.only ? new Set(values.only.split(',')) : null;
const attacks = ATTACKS.filter((a) => !only || only.has(a.name));
const stack = await startStack({
  workers: 0,
  adminKey: KEY_ADMIN,
  env: { SBX_API_KEYS: `${KEY_ATTACKER}:attacker,${KEY_VICTIM}:victim,${KEY_ADMIN}:ops:admin`, SBX_TENANT_ACTIVE_JOBS: '0', SBX_TENANT_SUBMITS_PER_SECOND: '0' },
});
const all: PhaseResult[][] = [];
try {
  const { metricsUrl } = await startWorkerWithMetrics(stack, { ...(values.slots ? { SBX_WORKER_SLOTS: values.slots } : {}), ...(process.env.BENCH_WORKER_NODE_OPTIONS ? { NODE_OPTIONS: process.env.BENCH_WORKER_NODE_OPTIONS } : {}) });
  const workers = await request(`${stack.apiUrl}/v1/workers`, { dispatcher, headers: { authorization: `Bearer ${KEY_ADMIN}` } }).then((x) => x.body.json() as Promise<{ items: Array<{ slots: { total: number } }> }>);
  const slots = workers.items[0]!.slots.total;
  const image = stack.images.busybox;
  log(`worker slots ${slots}; the attacker keeps ${slots - 1} jobs running; victim ${values.runs} sequential \`${VICTIM.join(' ')}\` per phase`);
  for (let i = 0; i < 20; i++) await post(stack.apiUrl, KEY_VICTIM, { image, command: VICTIM }); // warm-up
  for (let round = 0; round < Number(values.rounds); round++) {
    const results: PhaseResult[] = [];
    for (const a of [null, ...attacks]) {
      const r = await phase(stack.apiUrl, metricsUrl, image, slots - 1, a, Number(values.runs));
      results.push(r);
      log(`${r.name.padEnd(14)} victim p50 ${r.p50} p99 ${r.p99} ms (${r.errors} errors) | /metrics p50 ${r.metricsP50} p99 ${r.metricsP99} max ${r.metricsMax} ms | heartbeat gap max ${r.heartbeatGapMax} ms | attacker jobs ${r.attackerJobs} ${JSON.stringify(r.attackerOutcomes)}`);
    }
    all.push(results);
  }
} finally {
  await stack.stop();
}
// Medians over rounds, and ratios to the victim alone.
const names = all[0]!.map((r) => r.name);
const summary = names.map((name) => {
  const of = (k: keyof PhaseResult) => median(all.map((rs) => rs.find((r) => r.name === name)![k] as number));
  return { name, p50: of('p50'), p99: of('p99'), metricsP50: of('metricsP50'), metricsP99: of('metricsP99'), heartbeatGapMax: of('heartbeatGapMax'), errors: of('errors') };
});
const base = summary[0]!;
log('\n| phase | victim p50 ms (×alone) | victim p99 ms (×alone) | /metrics p50 / p99 ms | heartbeat gap max ms | victim errors |');
log('| --- | --- | --- | --- | --- | --- |');
for (const s of summary) log(`| ${s.name} | ${s.p50} (${r2(s.p50 / base.p50)}×) | ${s.p99} (${r2(s.p99 / base.p99)}×) | ${s.metricsP50} / ${s.metricsP99} | ${s.heartbeatGapMax} | ${s.errors} |`);
if (values.json) process.stdout.write(`${JSON.stringify({ rounds: all, summary })}\n`);
