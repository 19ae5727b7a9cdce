/**
 * Jobs on images whose config is hostile, through a whole stack: a seeded sweep of busybox images
 * whose User, WorkingDir, Env, Entrypoint and Cmd take odd or hostile values (wrong types, NULs,
 * lone surrogates, 200 KB strings, 5,000 entries, ids past the user namespace, /proc, files as
 * directories, names the image lacks), each run with and without a command of the request's.
 * Every job must reach a final status with an outcome a user can act on: it ran (succeeded or
 * failed, by its own exit code), or it ended `error` with invalid_image (the image's fault, naming
 * the field), invalid_request (the request's, or nothing to run) or command_not_found; never
 * internal, launch_failed or worker_lost. Afterwards nothing of the jobs is mounted on the host and
 * the worker still runs a plain job. SBX_HOSTILE_SEED=N runs another sweep.
 */
import { test } from 'node:test';
import { busyboxImage } from '../fixtures/build-images.ts';
import { MEDIA, sha256, type Blob, type BuiltImage } from '../fixtures/oci-builder.ts';
import { runHostileJobSweep, type SweepJob } from '../harness/hostile-job-sweep.ts';
import { hostileSeed, seededRandom } from '../harness/seeded-random.ts';
import { useStack } from '../harness/use-stack.ts';

const SEED = hostileSeed();
const JOBS = 60;
const CONCURRENCY = 4;
const ACTIONABLE = new Set(['invalid_image', 'invalid_request', 'command_not_found']);

const e2e = useStack();
const rnd = seededRandom(SEED);
const pick = <T>(list: readonly T[]): T => list[Math.floor(rnd() * list.length)]!;

const VALUES: Record<string, readonly unknown[]> = {
  User: [null, '', '0', '65534', 'nobody', 'root', '1000:1000', '99999:99999', 'root:wheel', 'x:y:z', 'a'.repeat(300), '4294967295', '-1', '0:-1', ':', ':1000', ' 0', '0x10', 7, ['0']],
  WorkingDir: [null, '', '/', '/tmp/x/y', 'relative', '../..', '/proc/self', '/dev/null', '/etc/passwd', '/a'.repeat(2100), '/x\u0000y', '/sys', '//', '/\ud800', 5],
  Env: [null, [], ['A'], ['=x'], ['PATH='], ['A=1', 'A=2'], Array(5000).fill('E=1'), ['X=' + 'y'.repeat(200_000)], ['A=\u0000'], ['A=\udc00'], [5], 'A=1', ['HOME=/nonexistent', 'PATH=/nowhere']],
  Entrypoint: [null, [], [''], ['/nonexistent'], ['sh', '-c'], ['sh', '-c', 'echo ep "$@"', 'x'], ['\u0000'], ['a'.repeat(5000)], 'sh', [null]],
  Cmd: [null, [], [''], ['echo', 'hi'], ['sh', '-c', 'exit 3'], ['/etc/passwd'], ['/dev/null'], ['/'], 'echo hi', ['x'.repeat(200_000)]],
};

/** The busybox image with some of its config's fields replaced (or deleted); and what was done. */
function hostileImage(base: BuiltImage): { image: BuiltImage; what: string } {
  const doc = JSON.parse(base.config.bytes.toString());
  const what: string[] = [];
  for (const [field, values] of Object.entries(VALUES)) {
    if (rnd() < 0.5) continue;
    const v = pick(values);
    if (v === null && rnd() < 0.5) delete doc.config[field];
    else doc.config[field] = v;
    what.push(`${field}=${JSON.stringify(v)?.slice(0, 40)}`);
  }
  const blob = (mediaType: string, bytes: Buffer): Blob => ({ mediaType, digest: sha256(bytes), size: bytes.length, bytes });
  const config = blob(MEDIA.ociConfig, Buffer.from(JSON.stringify(doc)));
  const manifest = JSON.parse(base.manifest.bytes.toString());
  manifest.config = { mediaType: config.mediaType, digest: config.digest, size: config.size };
  return { image: { ...base, config, manifest: blob(MEDIA.ociManifest, Buffer.from(JSON.stringify(manifest))) }, what: what.join(' ') || 'unchanged' };
}

test(`${JOBS} jobs on images with hostile configs (seed ${SEED}) each end with an outcome a user can act on; nothing is left mounted`, { timeout: 300_000 }, async () => {
  const base = await busyboxImage();
  const jobs = Array.from({ length: JOBS }, (_, i) => {
    const { image, what } = hostileImage(base);
    const command = rnd() < 0.5 ? ['sh', '-c', 'id -u; pwd; echo ok'] : undefined;
    const job: SweepJob = { what: `#${i} [${what}]${command ? ' with a command' : ''}`, image, request: { ...(command ? { command } : {}), limits: { timeoutMs: 5000 } } };
    return async () => job;
  });
  await runHostileJobSweep(e2e, jobs, { seed: SEED, concurrency: CONCURRENCY, actionable: ACTIONABLE, mustReach: ['succeeded', 'error/invalid_image'] });
});
