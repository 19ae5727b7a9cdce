/**
 * Jobs on images with a hostile layer, through a whole stack: a seeded sweep of busybox images with
 * one more layer of 1-6 random entries (files, directories, symlinks, hard links, FIFOs, devices,
 * whiteouts, opaque markers) at paths the launcher and the job rely on (/, /bin/sh, /etc, /dev,
 * /proc, /tmp, ..), with odd modes (0, set-id, sticky), owners past the user namespace, empty and
 * escaping link targets, 256-byte names and xattrs the kernel refuses. Each job runs
 * `sh -c 'ls / >/dev/null; echo ok'` and must end with an outcome a user can act on: it ran, or
 * error with invalid_image (the layer's fault, naming it) or command_not_found (the layer broke
 * sh); never internal, launch_failed or worker_lost. Afterwards nothing is left mounted and a plain
 * job runs (P32; the single cases are in worker/src/images/layers/layer-unpack.security.test.ts).
 * SBX_HOSTILE_SEED=N runs another sweep.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { busyboxImage } from '../fixtures/build-images.ts';
import { buildImage, buildLayer, pushImage, type LayerEntry } from '../fixtures/oci-builder.ts';
import { seededRandom } from '../harness/seeded-random.ts';
import { useStack } from '../harness/use-stack.ts';

const SEED = Number(process.env.SBX_HOSTILE_SEED ?? 20261206);
const JOBS = 80;
const CONCURRENCY = 4;
const FINAL = ['succeeded', 'failed', 'timeout', 'oom', 'cancelled', 'error'];
const ACTIONABLE = new Set(['invalid_image', 'command_not_found']);

const e2e = useStack();
const rnd = seededRandom(SEED);
const pick = <T>(list: readonly T[]): T => list[Math.floor(rnd() * list.length)]!;

const PATHS = ['bin', 'bin/sh', 'bin/busybox', 'etc', 'etc/passwd', 'etc/hosts', 'etc/resolv.conf', 'etc/hostname', 'tmp', 'dev', 'dev/null', 'dev/pts', 'dev/shm', 'proc', 'proc/self', 'sys', 'sys/fs', '.', './', '/', '..', '../x', '/etc/shadow', 'usr/bin', 'a', 'a/b', 'a/b/c', 'lib', 'root', 'run', 'var/tmp', 'n'.repeat(256), `x${'/y'.repeat(3)}`];
const MODES = [0o000, 0o777, 0o4755, 0o2755, 0o1777, 0o644, 0o700, 0o111];
const OWNERS = [0, 1000, 65534, 70000, 2 ** 31];
const XATTRS: ReadonlyArray<Record<string, string>> = [{ 'security.capability': 'garbage' }, { 'user.a': 'b' }, { 'trusted.overlay.opaque': 'y' }, { 'user.big': 'v'.repeat(70_000) }, { 'security.selinux': 'x' }];

function hostileEntry(): LayerEntry {
  const path = pick(PATHS);
  const mode = pick(MODES);
  const uid = pick(OWNERS);
  switch (pick(['file', 'dir', 'symlink', 'hardlink', 'fifo', 'whiteout', 'opaque', 'device'] as const)) {
    case 'file': return { type: 'file', path, content: pick(['', 'x', '#!/bin/sh\necho hi\n']), mode, uid, gid: uid, ...(rnd() < 0.2 ? { xattrs: pick(XATTRS) } : {}) };
    case 'dir': return { type: 'dir', path, mode, uid, gid: uid };
    case 'symlink': return { type: 'symlink', path, target: pick(['/', '..', '../../..', '/proc/self/root', '/etc/shadow', 'bin/busybox', path, '/dev/sda', '']) };
    case 'hardlink': return { type: 'hardlink', path, target: pick(PATHS) };
    case 'fifo': return { type: 'fifo', path, mode };
    case 'whiteout': return { type: 'whiteout', path };
    case 'opaque': return { type: 'opaque', path };
    case 'device': return { type: 'raw', header: { name: path, type: pick(['character-device', 'block-device'] as const), mode, devmajor: 1, devminor: 3, size: 0 } };
  }
}

test(`${JOBS} jobs on images with a hostile layer (seed ${SEED}) each end with an outcome a user can act on; nothing is left mounted`, { timeout: 300_000 }, async () => {
  const { stack, api } = e2e;
  const base = await busyboxImage();
  const jobs = Array.from({ length: JOBS }, (_, i) => ({ i, entries: Array.from({ length: 1 + Math.floor(rnd() * 6) }, hostileEntry) }));
  const problems: string[] = [];
  const outcomes = new Map<string, number>();
  let next = 0;
  const runOne = async (j: (typeof jobs)[number]): Promise<void> => {
    const what = `#${j.i} [${j.entries.map((e) => `${e.type}:${'path' in e ? e.path : e.header.name}`.slice(0, 40)).join(' ')}]`;
    const image = buildImage({ layers: [...base.layers, await buildLayer(j.entries)], config: { Cmd: ['sh'], Env: ['PATH=/bin'] } });
    const repo = `hostile/layer-${j.i}`;
    await pushImage(stack.registry.url, repo, 'latest', image);
    const res = await api.submit({ image: `${stack.registry.host}/${repo}:latest`, command: ['sh', '-c', 'ls / >/dev/null; echo ok'], limits: { timeoutMs: 5000 } }, { wait: true });
    if (res.status !== 200) return void problems.push(`${what}: HTTP ${res.status} ${JSON.stringify(res.body).slice(0, 200)}`);
    let job = res.body;
    for (const started = Date.now(); !FINAL.includes(job.status) && Date.now() - started < 30_000;) {
      await new Promise((r) => setTimeout(r, 100));
      job = (await api.request<typeof job>('GET', `/v1/jobs/${job.id}`)).body;
    }
    const outcome = job.status === 'error' ? `error/${job.error?.code}` : job.status;
    outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    const ran = job.status === 'succeeded' || job.status === 'failed';
    if (!ran && !(job.status === 'error' && ACTIONABLE.has(job.error?.code ?? ''))) problems.push(`${what}: ${outcome}: ${JSON.stringify(job.error).slice(0, 300)}`);
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < jobs.length) await runOne(jobs[next++]!);
  }));
  assert.deepEqual(problems, [], `${problems.length} of ${JOBS} jobs broke the contract (seed ${SEED}); outcomes ${JSON.stringify(Object.fromEntries(outcomes))}`);
  assert.ok((outcomes.get('succeeded') ?? 0) > 0 && (outcomes.get('error/invalid_image') ?? 0) > 0, `the sweep reached both sides: ${JSON.stringify(Object.fromEntries(outcomes))}`);

  const mounted = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((m) => m.includes(stack.env.SBX_STATE_DIR!));
  assert.deepEqual(mounted, [], 'mounts of the jobs left on the host');
  const plain = await api.submit({ image: stack.images.busybox, command: ['echo', 'still here'] }, { wait: true });
  assert.equal(plain.body.output?.stdout, 'still here\n');
});
