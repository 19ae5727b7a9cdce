/**
 * Chaos: a worker host SIGKILLed at a random phase of a job, 20 times over three hosts (each its own
 * worker id, state directory and image cache, cgroup subtree). Phases: `pulling` (a blob held by the
 * registry mid-transfer), `starting` (image ready, held before the exec by a Redis write pause), `running`
 * (the command sleeps), `streaming` (the command writes output). Each phase is detected from the job
 * document, the worker's metrics or the job's events, never by sleeping. After each kill:
 *   - a job that had not started its command runs again on another host and says so (`attempts: 2`,
 *     `history` naming the lost worker); one that had started ends `error` / `worker_lost`;
 *   - nothing is left non-final, and no host (the restarted one included) keeps a job cgroup, a
 *     process in its cgroup subtree, or a mount of its state directory.
 * Phases come from a seeded generator: the seed is printed; SBX_CHAOS_SEED=<n> replays a run.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ServerResponse } from 'node:http';
import { after, before, test } from 'node:test';
import { Redis } from 'ioredis';
import type { Job } from '../../client/src/index.ts';
import { startFakeRegistry, type FakeRegistry } from '../fixtures/fake-registry.ts';
import { busyboxImage } from '../fixtures/build-images.ts';
import { buildLayer } from '../fixtures/oci-builder.ts';
import { SbxClient } from '../harness/api-client.ts';
import { waitUntil } from '../harness/redis.ts';
import { seededRandom } from '../harness/seeded-random.ts';
import { startStack, type ManagedProcess, type Stack } from '../harness/stack.ts';

const ROUNDS = 20;
const PHASES = ['pulling', 'starting', 'running', 'streaming'] as const;
type Phase = (typeof PHASES)[number];
const FINAL: string[] = ['succeeded', 'failed', 'timeout', 'oom', 'cancelled', 'error'];
const SEED = Number(process.env.SBX_CHAOS_SEED ?? Math.floor(Math.random() * 2 ** 31));

interface Host {
  id: string;
  stateDir: string;
  process: ManagedProcess;
  /** Set while the host is being restarted after a kill (rounds go on meanwhile); its leftovers are checked once it is back. */
  restarting: Promise<void> | null;
}

let stack: Stack;
let api: SbxClient;
let fake: FakeRegistry;
let redis: Redis;
const hosts: Host[] = [];
const allJobs: string[] = [];


before(async () => {
  fake = await startFakeRegistry();
  stack = await startStack({
    workers: 0,
    egressAllow: [fake.host],
    env: { SBX_WORKER_SLOTS: '1', SBX_PULL_CONCURRENCY: '1', SBX_HEARTBEAT_MS: '300' },
  });
  api = new SbxClient(stack.apiUrl);
  redis = new Redis(stack.env.SBX_REDIS_URL!);
  for (let i = 1; i <= 3; i++) {
    const stateDir = await mkdtemp(join(tmpdir(), `sbx-chaos-host${i}-`));
    const id = `chaos-${i}/1`;
    hosts.push({ id, stateDir, process: await startHost(id, stateDir), restarting: null });
  }
});
after(async () => {
  fake.hook = null;
  redis?.disconnect();
  await stack?.stop();
  await fake?.stop();
  for (const h of hosts) await rm(h.stateDir, { recursive: true, force: true });
});

/** Worker process → its metrics port (logged at start; read once, before the log buffer can drop it). */
const metricsPorts = new WeakMap<ManagedProcess, number>();

async function startHost(id: string, stateDir: string): Promise<ManagedProcess> {
  const p = await stack.startWorker({ SBX_WORKER_ID: id, SBX_STATE_DIR: stateDir, SBX_WORKER_METRICS_PORT: '0', SBX_LOG_LEVEL: 'info' });
  await waitUntil(async () => /"port":\d+[^\n]*worker metrics listening/.test(p.log()), 10_000, `${id} to log its metrics port`);
  metricsPorts.set(p, Number(/"port":(\d+)[^\n]*worker metrics listening/.exec(p.log())![1]));
  return p;
}

const restartMs: number[] = [];

/** Starts the killed host again in the background: its start sweeps what the killed process left and settles its jobs. */
function restart(host: Host): void {
  const t0 = Date.now();
  host.restarting = startHost(host.id, host.stateDir).then((p) => {
    host.process = p;
    host.restarting = null;
    restartMs.push(Date.now() - t0);
  });
  host.restarting.catch(() => {}); // awaited later (settleRestarts), where a failed start fails the test
}

/** Until at most `atMost` hosts are still restarting. */
async function settleRestarts(atMost: number): Promise<void> {
  for (;;) {
    const pending = hosts.map((h) => h.restarting).filter((p) => p !== null);
    if (pending.length <= atMost) return;
    await Promise.race(pending);
  }
}

const hostOf = (worker: string | null) => hosts.find((h) => h.id === worker);

async function submit(job: Record<string, unknown>): Promise<string> {
  const res = await api.submit(job);
  assert.equal(res.status, 202, JSON.stringify(res.body));
  allJobs.push(res.body.id);
  return res.body.id;
}

async function doc(id: string): Promise<Job> {
  return (await api.get(id)).body;
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  await waitUntil(check, timeoutMs, what);
}

/** The worker's own count of image acquisitions (cache hits and pulls), from its metrics port. */
async function acquisitions(host: Host): Promise<number> {
  const port = metricsPorts.get(host.process);
  const text = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(2000) }).then((r) => r.text(), () => '');
  return [...text.matchAll(/^sbx_image_pulls_total\{[^}]*result="(?:hit|pulled)"[^}]*\} (\d+)/gm)].reduce((n, m) => n + Number(m[1]), 0);
}

/** Every cgroup node below this stack's parent, in every hierarchy. */
function cgroupNodes(): string[] {
  const nodes: string[] = [];
  const walk = (dir: string) => {
    nodes.push(dir);
    for (const d of readdirSync(dir, { withFileTypes: true })) if (d.isDirectory()) walk(join(dir, d.name));
  };
  for (const h of readdirSync('/sys/fs/cgroup')) {
    const root = `/sys/fs/cgroup/${h}/${stack.env.SBX_CGROUP_PARENT}`;
    if (existsSync(root)) walk(root);
  }
  return nodes;
}

/**
 * What a host left that it should not have: job cgroups and the processes in them, mounts of its
 * state. A live worker's pre-made launch setups (`pool-<its pid>-<n>`, native/src/zygote.cc) are
 * its own; a pool of a process that is gone is a leak like any other group.
 */
function leftovers(): string[] {
  const found: string[] = [];
  const up = hosts.filter((h) => h.restarting === null);
  const dirOf = (h: Host) => h.id.replace(/[^A-Za-z0-9._-]/g, '_'); // worker/src/main.ts
  const live = new Set(up.map((h) => String(h.process.child.pid)));
  for (const node of cgroupNodes()) {
    const rel = (node.split(`/${stack.env.SBX_CGROUP_PARENT}`)[1] ?? '').split('/').filter(Boolean);
    if (rel.length > 0 && !up.some((h) => dirOf(h) === rel[0])) continue; // a host on its way back: checked once it is
    const pool = /^pool-(\d+)-\d+$/.exec(rel[1] ?? '');
    if (pool && live.has(pool[1]!)) continue;
    if (rel.length > 1) found.push(`cgroup ${node}`); // <parent>/<worker>/<job>
    const procs = existsSync(join(node, 'cgroup.procs')) ? readFileSync(join(node, 'cgroup.procs'), 'utf8').trim() : '';
    if (procs) found.push(`processes ${procs.split('\n').join(',')} in ${node}`);
  }
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n');
  for (const h of up) for (const m of mounts) if (m.includes(h.stateDir)) found.push(`mount ${m}`);
  return found;
}

async function assertNoLeftovers(what: string): Promise<void> {
  await until(`${what}: no leftovers on any host`, async () => leftovers().length === 0, 10_000).catch(() => {
    assert.deepEqual(leftovers(), [], `${what} (seed ${SEED}): leftovers`);
  });
}

async function assertNothingNonFinal(): Promise<void> {
  const docs = await Promise.all(allJobs.map(doc));
  const open = docs.filter((d) => !FINAL.includes(d.status));
  assert.deepEqual(open.map((d) => `${d.id} ${d.status} on ${d.worker}`), [], 'jobs left non-final');
}

/** A fresh image (its own layer) whose layer blob the registry holds mid-transfer until released. */
async function heldImage(round: number): Promise<{ image: string; started: Promise<void>; release(): void }> {
  const extra = await buildLayer([{ type: 'file', path: `round-${round}`, content: `round ${round}\n` }], {});
  const built = await busyboxImage({ extraLayers: [extra] });
  const repo = `chaos/r${round}`;
  fake.add(repo, 'latest', built);
  let held = true;
  let started: () => void = () => {};
  const startedP = new Promise<void>((r) => (started = r));
  const waiting: ServerResponse[] = [];
  fake.hook = (req, res) => {
    if (!held || req.url !== `/v2/${repo}/blobs/${extra.digest}`) return false;
    res.on('error', () => {}); // the worker may be killed mid-transfer
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': extra.bytes.length });
    res.write(extra.bytes.subarray(0, 1)); // then nothing until released: the pull is in progress
    waiting.push(res);
    started();
    return true;
  };
  const release = () => {
    held = false;
    for (const res of waiting.splice(0)) if (!res.destroyed) res.end(extra.bytes.subarray(1));
  };
  return { image: `${fake.host}/${repo}:latest`, started: startedP, release };
}

/**
 * After a loss: the lost job is back in the queue and taken by another host (its own host stays down
 * until then, so "another" is certain), then the lost host comes back (restart runs in the background).
 */
async function expectRequeued(id: string, lost: Host): Promise<void> {
  await until(`job ${id} to be taken again after ${lost.id} died`, async () => {
    const d = await doc(id);
    if (FINAL.includes(d.status) && d.worker === lost.id) {
      assert.fail(`job ${id} had not started its command on ${lost.id}, yet it ended ${JSON.stringify({ status: d.status, error: d.error, attempts: d.attempts })} instead of running again`);
    }
    return d.worker !== null && d.worker !== lost.id;
  });
  restart(lost);
}

/** Ran again: attempt 2 on another host, the lost attempt in its history. */
async function expectRan(id: string, lost: Host, phase: Phase): Promise<Job> {
  const d = await api.waitFinished(id, 30_000);
  const what = `${phase}: ${JSON.stringify({ status: d.status, error: d.error, worker: d.worker, attempts: d.attempts, history: d.history })}`;
  assert.equal(d.status, 'succeeded', what);
  assert.notEqual(d.worker, lost.id, what);
  assert.equal(d.attempts, 2, what);
  assert.equal(d.history?.[0]?.worker, lost.id, what);
  assert.equal(d.history?.[0]?.error.code, 'worker_lost', what);
  return d;
}

async function expectLost(id: string, lost: Host, phase: Phase): Promise<void> {
  const d = await api.waitFinished(id, 30_000);
  const what = `${phase}: ${JSON.stringify({ status: d.status, error: d.error, worker: d.worker, attempts: d.attempts })}`;
  assert.equal(d.status, 'error', what);
  assert.equal(d.error?.code, 'worker_lost', what);
  assert.equal(d.worker, lost.id, what);
  assert.equal(d.attempts ?? 1, 1, what);
}

async function round(n: number, phase: Phase): Promise<void> {
  const busybox = stack.images.busybox;
  if (phase === 'pulling') {
    const held = await heldImage(n);
    const id = await submit({ image: held.image, command: ['echo', `pulled ${n}`] });
    await held.started;
    await until(`job ${id} pulling`, async () => (await doc(id)).status === 'pulling');
    const lost = hostOf((await doc(id)).worker)!;
    await lost.process.kill('SIGKILL');
    held.release();
    await expectRequeued(id, lost);
    await expectRan(id, lost, phase);
  } else if (phase === 'starting') {
    // Image ready, command not executed: the pull is held until Redis pauses writes, then released;
    // the worker finishes the pull (its acquisition count moves) and stops at its next write, which
    // at the latest is the start record before exec (job-attempts.ts). Killed there.
    const held = await heldImage(n);
    const id = await submit({ image: held.image, command: ['echo', `started ${n}`] });
    await held.started;
    await until(`job ${id} pulling`, async () => (await doc(id)).status === 'pulling');
    const lost = hostOf((await doc(id)).worker)!;
    const before = await acquisitions(lost);
    await redis.call('CLIENT', 'PAUSE', '20000', 'WRITE');
    try {
      held.release();
      await until(`job ${id}: image ready on ${lost.id}`, async () => (await acquisitions(lost)) > before).catch((e: Error) => {
        throw new Error(`${e.message} (acquisitions ${before}; its log ends:\n${lost.process.log().slice(-3000)})`);
      });
      await lost.process.kill('SIGKILL');
    } finally {
      await redis.call('CLIENT', 'UNPAUSE');
    }
    await expectRequeued(id, lost);
    await expectRan(id, lost, phase);
  } else {
    const command = phase === 'running'
      ? ['sh', '-c', `echo up; exec sleep ${2000 + n}`]
      : ['sh', '-c', 'while :; do echo tick; sleep 0.02; done'];
    const id = await submit({ image: busybox, command });
    let ticks = 0;
    await api.events(id, { until: (e) => e.event === 'stdout' && ++ticks >= (phase === 'streaming' ? 5 : 1) });
    const d = await doc(id);
    assert.equal(d.status, 'running');
    const lost = hostOf(d.worker)!;
    await lost.process.kill('SIGKILL');
    // Settled by whichever comes first: an API read once the heartbeat expired, or the restarted
    // host, whose start sweeps what the killed process left and settles its jobs.
    restart(lost);
    await expectLost(id, lost, phase);
  }
}

test(`${ROUNDS} SIGKILLs at random phases (seed ${SEED})`, { timeout: 240_000 }, async (t) => {
  t.diagnostic(`chaos seed ${SEED}: rerun with SBX_CHAOS_SEED=${SEED}`);
  process.stdout.write(`# chaos seed ${SEED}: rerun with SBX_CHAOS_SEED=${SEED}\n`);
  const next = seededRandom(SEED);
  for (let n = 1; n <= ROUNDS; n++) {
    const phase = PHASES[Math.floor(next() * PHASES.length)]!;
    const started = Date.now();
    await settleRestarts(1); // a host killed last round may still be coming back: two stay up
    await round(n, phase);
    await assertNothingNonFinal();
    await assertNoLeftovers(`round ${n} (${phase})`);
    t.diagnostic(`round ${n}: ${phase} ok in ${Date.now() - started} ms`);
  }
  await settleRestarts(0);
  await assertNothingNonFinal();
  await assertNoLeftovers('after every host is back');
  t.diagnostic(`host restarts: median ${restartMs.sort((a, b) => a - b)[restartMs.length >> 1]} ms`);
});
