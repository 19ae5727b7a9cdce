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
import { test } from 'node:test';
import { busyboxImage } from '../fixtures/build-images.ts';
import { buildImage, buildLayer, type LayerEntry } from '../fixtures/oci-builder.ts';
import { runHostileJobSweep, type SweepJob } from '../harness/hostile-job-sweep.ts';
import { hostileSeed, seededRandom } from '../harness/seeded-random.ts';
import { useStack } from '../harness/use-stack.ts';

const SEED = hostileSeed();
const JOBS = 80;
const CONCURRENCY = 4;
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
  const base = await busyboxImage();
  const jobs = Array.from({ length: JOBS }, (_, i) => {
    const entries = Array.from({ length: 1 + Math.floor(rnd() * 6) }, hostileEntry);
    const what = `#${i} [${entries.map((e) => `${e.type}:${'path' in e ? e.path : e.header.name}`.slice(0, 40)).join(' ')}]`;
    return async (): Promise<SweepJob> => ({
      what,
      image: buildImage({ layers: [...base.layers, await buildLayer(entries)], config: { Cmd: ['sh'], Env: ['PATH=/bin'] } }),
      request: { command: ['sh', '-c', 'ls / >/dev/null; echo ok'], limits: { timeoutMs: 5000 } },
    });
  });
  await runHostileJobSweep(e2e, jobs, { seed: SEED, concurrency: CONCURRENCY, actionable: ACTIONABLE, mustReach: ['succeeded', 'error/invalid_image'] });
});
