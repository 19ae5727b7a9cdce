/**
 * Cache-aware placement (issue 14, item 3): three worker "hosts" (each its own SBX_STATE_DIR, so its
 * own image cache holding about ONE of the images: SBX_IMAGE_CACHE_BYTES; its own SBX_WORKER_ID and
 * SBX_CGROUP_PARENT), three distinct images of ~12 MiB, and one stream of jobs at a constant
 * arrival rate over the three images (seeded, the same stream for each mode). Run once per mode on
 * fresh hosts, each with an API of its own: `on` (SBX_PLACEMENT_CACHE_AWARE=true everywhere: the API
 * queues a job on a holder's own queue when one has room, workers hand on what they took from the
 * shared queue to a holder with room), `off` (false everywhere: whichever host takes the job first
 * runs it), `workers` (only the workers' hand-offs: the design before placement at submission). Reports, after the warm-up: the cache hit rate (the job's host held its image
 * when it took it: placement.imageCached), queue time (submission → a host claims it, the job's
 * timings.queueMs) p50/p90/p99, start latency (submission → process started, pulls included),
 * hand-offs, errors.
 *
 *   npm run bench:placement [-- --jobs 200 --rate 10 --sleep 0 --slots 4 --warmup 40 --seed 1 --modes on,off[,workers] --json]
 *
 * SBX_BENCH_DEBUG=1 prints every job (queue time, pull, host, placement) on stderr.
 *
 * Target: hit rate on >= 0.9 (off: about a third) and p99 queue time on <= off.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { Job } from '../client/src/index.ts';
import { busyboxEntries, DEFAULT_PATH } from '../test/fixtures/build-images.ts';
import { buildImage, buildLayer, pushImage } from '../test/fixtures/oci-builder.ts';
import { SbxClient } from '../test/harness/api-client.ts';
import { seededRandom } from '../test/harness/seeded-random.ts';
import { startApi, startStack, type ManagedProcess, type Stack } from '../test/harness/stack.ts';

const { values } = parseArgs({
  options: {
    jobs: { type: 'string', default: '200' },
    rate: { type: 'string', default: '10' },
    sleep: { type: 'string', default: '0' },
    slots: { type: 'string', default: '4' },
    warmup: { type: 'string', default: '40' },
    seed: { type: 'string', default: '1' },
    modes: { type: 'string', default: 'on,off' },
    json: { type: 'boolean', default: false },
  },
});
const JOBS = Number(values.jobs);
const RATE = Number(values.rate);
const WARMUP = Number(values.warmup);
const MiB = 1024 * 1024;
const log = (s: string) => process.stderr.write(`${s}\n`);

/** Three images: busybox + 10 MiB of incompressible bytes of their own (so a pull moves real data). */
async function pushImages(registryHost: string): Promise<string[]> {
  const base = await buildLayer(busyboxEntries());
  const refs: string[] = [];
  for (const name of ['alpha', 'beta', 'gamma']) {
    const blob = Buffer.alloc(10 * MiB);
    for (let i = 0; i < blob.length; i += 4) blob.writeUInt32LE((Math.random() * 2 ** 32) >>> 0, i);
    const extra = await buildLayer([{ type: 'dir', path: 'data' }, { type: 'file', path: `data/${name}.bin`, content: blob }]);
    const image = buildImage({ layers: [base, extra], config: { Env: [DEFAULT_PATH], Cmd: ['sh'] } });
    await pushImage(`http://${registryHost}`, `bench/${name}`, 'latest', image);
    refs.push(`${registryHost}/bench/${name}:latest`);
  }
  return refs;
}


const quantile = (xs: number[], q: number) => {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!;
};

type Mode = 'on' | 'off' | 'workers';
const MODES: readonly Mode[] = ['on', 'off', 'workers'];

/** on: the API places at submission and the workers hand off; workers: only the workers hand off (no API placement); off: neither. */
async function runMode(stack: Stack, images: string[], mode: Mode) {
  const cacheAware = mode !== 'off';
  // An API of this mode's own (the placement at submission follows its SBX_PLACEMENT_CACHE_AWARE).
  const apiProc = await startApi(`api-${mode}`, { ...stack.env, SBX_PLACEMENT_CACHE_AWARE: String(mode === 'on') });
  const hosts: ManagedProcess[] = [];
  const stateDirs: string[] = [];
  for (let h = 1; h <= 3; h++) {
    const stateDir = await mkdtemp(join(tmpdir(), `sbx-bench-placement-h${h}-`));
    stateDirs.push(stateDir);
    hosts.push(await stack.startWorker({
      SBX_STATE_DIR: stateDir,
      SBX_CGROUP_PARENT: `${stack.env.SBX_CGROUP_PARENT}/h${h}`,
      SBX_WORKER_SLOTS: values.slots!,
      SBX_IMAGE_CACHE_BYTES: String(16 * MiB), // one image of ~12 MiB fits
      SBX_PLACEMENT_CACHE_AWARE: String(cacheAware),
    }));
  }
  const api = new SbxClient(apiProc.url);
  const next = seededRandom(Number(values.seed));
  const started = Date.now();
  const subs: Array<Promise<string>> = [];
  for (let i = 0; i < JOBS; i++) {
    const due = started + (i * 1000) / RATE;
    const wait = due - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const image = images[Math.floor(next() * images.length)]!;
    subs.push(api.submit({ image, command: ['sleep', values.sleep!] }).then((r) => {
      if (r.status !== 202) throw new Error(`submit answered ${r.status}: ${JSON.stringify(r.body)}`);
      return r.body.id;
    }));
  }
  const ids = await Promise.all(subs);
  const docs: Job[] = [];
  for (const id of ids) docs.push(await api.waitFinished(id, 120_000));
  const wallS = (Date.now() - started) / 1000;
  await Promise.all([...hosts, apiProc.process].map((h) => h.kill('SIGTERM')));
  await Promise.all(stateDirs.map((d) => rm(d, { recursive: true, force: true })));

  if (process.env.SBX_BENCH_DEBUG) {
    for (const d of docs) log(`${d.timings.createdAt} q=${d.timings.queueMs} pull=${d.timings.pullMs} start=${d.timings.startMs} ${d.worker} ${JSON.stringify(d.placement)} ${d.image.split('/').pop()}`);
  }
  const measured = docs.slice(WARMUP);
  const ok = measured.filter((d) => d.status === 'succeeded');
  const hits = ok.filter((d) => d.placement?.imageCached).length;
  const queue = ok.map((d) => d.timings.queueMs!);
  const start = ok.map((d) => Date.parse(d.timings.startedAt!) - Date.parse(d.timings.createdAt));
  const perHost: Record<string, number> = {};
  for (const d of ok) perHost[d.worker!] = (perHost[d.worker!] ?? 0) + 1;
  return {
    placement: mode,
    placedAtSubmit: ok.filter((d) => d.placement?.placedAtSubmit).length,
    jobs: docs.length,
    measured: measured.length,
    errors: docs.filter((d) => d.status !== 'succeeded').length,
    errorCodes: [...new Set(docs.filter((d) => d.status !== 'succeeded').map((d) => d.error?.code ?? d.status))],
    cacheHitRate: ok.length ? hits / ok.length : null,
    handedOff: ok.filter((d) => (d.placement?.hops ?? 0) > 0).length,
    queueMs: { p50: quantile(queue, 0.5), p90: quantile(queue, 0.9), p99: quantile(queue, 0.99), max: quantile(queue, 1) },
    startMs: { p50: quantile(start, 0.5), p90: quantile(start, 0.9), p99: quantile(start, 0.99) },
    pullMsMedian: { hit: quantile(ok.filter((d) => d.placement?.imageCached).map((d) => d.timings.pullMs!), 0.5), miss: quantile(ok.filter((d) => !d.placement?.imageCached).map((d) => d.timings.pullMs!), 0.5) },
    perHost,
    wallS,
  };
}

const stack = await startStack({ workers: 0, env: { SBX_LOG_LEVEL: 'warn' } });
let failed = false;
try {
  const images = await pushImages(stack.registry.host);
  const results = [];
  for (const mode of values.modes!.split(',') as Mode[]) {
    if (!MODES.includes(mode)) throw new Error(`--modes: unknown mode ${mode} (one of ${MODES.join(', ')})`);
    log(`placement ${mode}: ${JOBS} jobs at ${RATE}/s over 3 images, sleep ${values.sleep}s, 3 hosts x ${values.slots} slots…`);
    const r = await runMode(stack, images, mode);
    log(`  hit rate ${r.cacheHitRate?.toFixed(3)}, queue p50/p99 ${r.queueMs.p50}/${r.queueMs.p99} ms, start p50/p99 ${r.startMs.p50}/${r.startMs.p99} ms, placed at submit ${r.placedAtSubmit}, handed off ${r.handedOff}, errors ${r.errors} ${r.errorCodes.join(",")}`);
    results.push(r);
  }
  const on = results.find((r) => r.placement === 'on');
  const off = results.find((r) => r.placement === 'off');
  const summary = {
    bench: 'placement',
    config: { jobs: JOBS, rate: RATE, sleepS: Number(values.sleep), hosts: 3, slotsPerHost: Number(values.slots), images: 3, warmup: WARMUP, cacheBytesPerHost: 16 * MiB },
    results,
    ratios: on && off ? {
      cacheHitRate: on.cacheHitRate !== null && off.cacheHitRate ? on.cacheHitRate / off.cacheHitRate : null,
      queueP99: on.queueMs.p99 !== null && off.queueMs.p99 ? on.queueMs.p99 / off.queueMs.p99 : null,
      startP99: on.startMs.p99 !== null && off.startMs.p99 ? on.startMs.p99 / off.startMs.p99 : null,
    } : null,
    target: on && off ? { hitRateAtLeast90: (on.cacheHitRate ?? 0) >= 0.9, queueP99NoWorse: (on.queueMs.p99 ?? Infinity) <= (off.queueMs.p99 ?? 0), noErrors: on.errors === 0 && off.errors === 0 } : null,
    machine: { cores: (await import('node:os')).availableParallelism(), date: new Date().toISOString() },
  };
  failed = results.some((r) => r.errors > 0);
  if (values.json) process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
  else {
    for (const r of results) console.log(`placement ${r.placement}: hit rate ${r.cacheHitRate?.toFixed(3)} | queue ms p50 ${r.queueMs.p50} p90 ${r.queueMs.p90} p99 ${r.queueMs.p99} | start ms p50 ${r.startMs.p50} p99 ${r.startMs.p99} | placed at submit ${r.placedAtSubmit} | handed off ${r.handedOff} | errors ${r.errors} | per host ${JSON.stringify(Object.values(r.perHost))}`);
    if (summary.ratios) console.log(`on/off: hit rate ×${summary.ratios.cacheHitRate?.toFixed(2)}, queue p99 ×${summary.ratios.queueP99?.toFixed(2)}, start p99 ×${summary.ratios.startP99?.toFixed(2)}; target ${JSON.stringify(summary.target)}`);
  }
} finally {
  await stack.stop();
}
process.exit(failed ? 1 : 0);
